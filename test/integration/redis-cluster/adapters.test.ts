import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisFenceGuard, RedisLeaseManager } from '../../../adapters/redis/fencing.js';
import { RedisSessionStore } from '../../../adapters/redis/session-store.js';
import { RedisVersionedStore } from '../../../adapters/redis/versioned-store.js';
import { ErrorCode } from '../../../src/errors.js';
import { type RedisClusterHandle, startRedisCluster } from '../../harness/redis-cluster.js';

// A real Redis Cluster (three masters, one replica each) started for this file only.
let cluster: RedisClusterHandle;
let redis: Cluster;

beforeAll(async () => {
  cluster = await startRedisCluster();
  redis = new Cluster([...cluster.seeds]);
}, 60_000);

afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop();
});

/** How many keys each master holds: a spread over several shows the slots were really used. */
async function keysPerMaster(): Promise<number[]> {
  return Promise.all(redis.nodes('master').map((node) => node.dbsize()));
}

describe('Redis adapters on a Redis Cluster', () => {
  it('session store, versioned store, leases and fences work across the slots of three masters', async () => {
    const sessions = new RedisSessionStore({ redis, timeoutMs: 2000 });
    const versions = new RedisVersionedStore<number>({ redis, handler: 'siblings' });
    const leases = new RedisLeaseManager({ redis });
    const guard = new RedisFenceGuard({ redis });
    for (let i = 0; i < 24; i++) {
      const stream = (n: number) => ({ stream: `cluster-${n}`, epoch: 1, lsn: BigInt(i + n) });
      await sessions.set(`user-${i}`, { id: `s${i}`, writeFloor: stream(0) });
      await sessions.set(`user-${i}`, { id: `s${i}`, readFloor: stream(1) });
      expect(await sessions.get(`user-${i}`)).toEqual({
        id: `s${i}`,
        readFloor: stream(1),
        otherStreams: [{ writeFloor: stream(0) }],
      });

      await versions.put(`doc-${i}`, i, { actor: 'a' });
      const { context } = await versions.get(`doc-${i}`);
      expect((await versions.put(`doc-${i}`, i + 1, { actor: 'a', context })).values).toEqual([
        i + 1,
      ]);

      const resource = `job-${i}`;
      const first = await leases.acquire(resource, { ttlMs: 10_000 });
      await guard.setIfCurrent(resource, first.token, `{${resource}}:output`, 'first');
      await first.release();
      const second = await leases.acquire(resource, { ttlMs: 10_000 });
      expect(second.token).toBeGreaterThan(first.token);
      await guard.setIfCurrent(resource, second.token, `{${resource}}:output`, 'second');
      await expect(guard.check(resource, first.token)).rejects.toMatchObject({
        code: ErrorCode.STALE_FENCING_TOKEN,
      });
      expect(await redis.get(`{${resource}}:output`)).toBe('second');
    }
    const spread = await keysPerMaster();
    expect(spread.filter((count) => count > 0).length).toBe(3);
  }, 60_000);

  it('a graceful CLUSTER FAILOVER during a fencing workload: tokens never go backwards', async () => {
    const resource = 'failover-graceful';
    const { stop, tokens, errors } = fencingWorkload(resource);
    await waitFor(() => tokens.length >= 50);
    const before = await cluster.ownersOf(`{${resource}}`);
    expect(before.replica).toBeDefined();
    expect(await cluster.cli(before.replica!, 'CLUSTER', 'FAILOVER')).toBe('OK');
    await waitFor(async () => (await cluster.ownersOf(`{${resource}}`)).master === before.replica);
    const switchedAt = tokens.length;
    await waitFor(() => tokens.length >= switchedAt + 50);
    await stop();
    expect(goesBack(tokens)).toBe(0);
    expect(errors.length, errors.join('; ')).toBe(0);
    await cluster.waitUntilStable();
  }, 60_000);
});

/**
 * Acquires, fences and releases `resource` in a loop, recording every token granted in order
 * and every error; `stop()` ends the loop.
 */
function fencingWorkload(resource: string) {
  const leases = new RedisLeaseManager({ redis });
  const guard = new RedisFenceGuard({ redis });
  const tokens: bigint[] = [];
  const errors: string[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const lease = await leases.acquire(resource, { ttlMs: 5000 });
        tokens.push(lease.token);
        await guard.check(resource, lease.token);
        await lease.release();
      } catch (error) {
        errors.push(String(error));
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  })();
  return {
    tokens,
    errors,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** How many tokens are not above every token granted before them. */
function goesBack(tokens: readonly bigint[]): number {
  let newest = -1n;
  let back = 0;
  for (const token of tokens) {
    if (token <= newest) back++;
    else newest = token;
  }
  return back;
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
