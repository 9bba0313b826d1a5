import { afterEach, describe, expect, it } from 'vitest';
import { ENV_VARS, hasTestEnv, testEnv } from '../../harness/env.js';

const saved = { ...process.env };
afterEach(() => {
  for (const name of Object.values(ENV_VARS)) {
    if (saved[name] === undefined) delete process.env[name];
    else process.env[name] = saved[name];
  }
});

describe('test environment variables', () => {
  it('takes already-running servers from the CAUSEWAY_TEST_* variables', () => {
    // The global setup has set them all (from a cluster it started, or the user's own).
    expect(hasTestEnv()).toBe(true);
    const env = testEnv();
    expect(env.primaryUrl).toBe(process.env[ENV_VARS.primaryUrl]);
    expect(env.replicaDelayMs).toBeGreaterThan(0);
  });

  it('starts a cluster when none is set', () => {
    for (const name of Object.values(ENV_VARS)) delete process.env[name];
    expect(hasTestEnv()).toBe(false);
  });

  it('refuses a partial set, naming what is missing', () => {
    delete process.env[ENV_VARS.redisUrl];
    expect(() => hasTestEnv()).toThrow(/missing: CAUSEWAY_TEST_REDIS_URL/);
  });
});
