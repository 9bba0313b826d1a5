import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { type ClusterNodes, offload, runClusters } from '../../../bench/clusters-workload.js';
import { testEnv } from '../../harness/env.js';

// One session per simulated user over two independent clusters (the shared primary with its
// lagging replica, the second primary with its own), switching cluster on half of its
// operations. The history checker, not the router, judges what the sessions saw.
const env = testEnv();
const TABLE = `clusters_${randomBytes(4).toString('hex')}`;
const primary2ReplicaUrl = env.primary2ReplicaUrl;
const clusters: ClusterNodes[] = [
  {
    name: 'A',
    primaryUrl: env.primaryUrl,
    replicas: [{ name: 'lagging', url: env.laggingReplicaUrl }],
  },
  {
    name: 'B',
    primaryUrl: env.primary2Url,
    replicas:
      primary2ReplicaUrl === undefined ? [] : [{ name: 'lagging', url: primary2ReplicaUrl }],
  },
];

afterAll(async () => {
  for (const url of [env.primaryUrl, env.primary2Url]) {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`DROP TABLE IF EXISTS ${TABLE}`);
    await admin.end();
  }
});

describe('a session over two clusters, each with a lagging replica', () => {
  it('keeps read-your-writes and monotonic reads on both while offloading reads to both', async () => {
    expect(primary2ReplicaUrl, 'the harness gives the second primary a replica').toBeDefined();
    const run = await runClusters({
      clusters,
      mode: 'per-stream',
      table: TABLE,
      sessions: 8,
      seconds: 6,
      seed: 14,
      switchShare: 0.5,
    });
    expect(run.errors).toBe(0);
    expect(run.check.counts['read-your-writes']).toBe(0);
    expect(run.check.counts['monotonic-reads']).toBe(0);
    expect(run.check.ok, JSON.stringify(run.check.violations[0])).toBe(true);
    for (const name of ['A', 'B']) {
      const counts = run.byCluster[name]!;
      expect(counts.writes, name).toBeGreaterThan(0);
      expect(offload(counts), name).toBeGreaterThan(0.3);
    }
  }, 60_000);
});
