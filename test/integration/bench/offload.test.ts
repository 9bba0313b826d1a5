import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BUSY,
  createRegisterTable,
  type OffloadNodes,
  runCell,
} from '../../../bench/offload-workload.js';
import { testEnv } from '../../harness/env.js';

// Keeps the read-offload benchmark honest without timing: its workload, run briefly against the
// shared cluster's lagging replica, must show what the benchmark claims to measure.
const env = testEnv();
const TABLE = `offload_${randomBytes(4).toString('hex')}`;
const nodes: OffloadNodes = {
  primaryUrl: env.primaryUrl,
  replicas: [{ name: 'lagging-replica', url: env.laggingReplicaUrl }],
};
let admin: pg.Pool;

beforeAll(async () => {
  admin = new pg.Pool({ connectionString: env.primaryUrl, max: 1 });
  await createRegisterTable(admin, TABLE);
});

afterAll(async () => {
  await admin?.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await admin?.end();
});

describe('read-offload workload', () => {
  it('finds stale reads under random replica routing and none under Causeway', async () => {
    const [random, causeway] = await runCell({
      nodes,
      table: TABLE,
      cell: 'test',
      sessions: 8,
      seconds: 2,
      seed: 7,
      profile: BUSY,
      strategies: ['random replica', 'Causeway'],
    });
    expect(random!.strategy).toBe('random replica');
    expect(causeway!.strategy).toBe('Causeway');
    for (const run of [random!, causeway!]) {
      expect(run.errors).toBe(0);
      expect(run.writes).toBeGreaterThan(0);
    }
    // Reads right after a write, on a replica that applies it seconds later: the checker must
    // see them, or the benchmark's zeros would mean nothing.
    expect(random!.replicaReads).toBe(random!.reads);
    expect(random!.check.counts['read-your-writes']).toBeGreaterThan(0);
    // Causeway: no broken guarantee, and still some reads served by the replica (the reads
    // before a session's first write), so the zero is not from reading the primary only.
    expect(causeway!.check.violations.slice(0, 3).map((v) => v.message)).toEqual([]);
    expect(causeway!.replicaReads).toBeGreaterThan(0);
    expect(causeway!.replicaReads).toBeLessThan(causeway!.reads);
  });
});
