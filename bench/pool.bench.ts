/**
 * What the routed pool costs per statement against real servers on 127.0.0.1: the same point
 * query through a plain `pg.Pool` and through `createReplicatedPool`, one at a time (latency)
 * and 16 in flight (throughput), in alternating rounds. The main cost is the position read
 * after each statement in a session (`pg_last_wal_replay_lsn()` after a replica read, the read
 * floor; `pg_current_wal_insert_lsn()` after a write, the write floor), run on the node's own
 * check connections and shared by every statement that completed before it started.
 * Run: npx tsx bench/pool.bench.ts   (uses CAUSEWAY_TEST_* servers if set, else starts a cluster;
 * BENCH_SECONDS=2 per round by default)
 */
import pg from 'pg';
import { createReplicatedPool } from '../adapters/pg/replicated-pool.js';
import { SessionContext, withSession } from '../src/session/context.js';
import { type Cluster, startCluster } from '../test/harness/cluster.js';
import { hasTestEnv, testEnv } from '../test/harness/env.js';
import { markdownTable, percentile, writeResults } from './util.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 2);
const ROUNDS = 3;
const CONCURRENCY = 16;

let cluster: Cluster | undefined;
let primaryUrl: string;
let replicaUrl: string;
if (hasTestEnv()) {
  ({ primaryUrl, replicaUrl } = testEnv());
} else {
  cluster = await startCluster();
  primaryUrl = cluster.primary.url;
  replicaUrl = cluster.replica.url;
}

const TABLE = `route_bench_${process.pid}`;
const max = CONCURRENCY;
const plainPrimary = new pg.Pool({ connectionString: primaryUrl, max });
const plainReplica = new pg.Pool({ connectionString: replicaUrl, max });
const routed = createReplicatedPool({
  primary: { config: { connectionString: primaryUrl, max } },
  replicas: [{ name: 'replica', config: { connectionString: replicaUrl, max } }],
});
await plainPrimary.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v text NOT NULL)`);
await plainPrimary.query(
  `INSERT INTO ${TABLE} SELECT i, md5(i::text) FROM generate_series(1, 1000) i`,
);
const created = await routed.replicaSet.writePosition();
if (!created || !(await routed.replicaSet.waitFor('replica', created, 10_000))) {
  throw new Error('the replica did not catch up');
}
await routed.replicaSet.refresh();

const READ = `SELECT v FROM ${TABLE} WHERE id = $1`;
const WRITE = `UPDATE ${TABLE} SET v = v WHERE id = $1`;
const id = (i: number) => (i % 1000) + 1;
// 'eventual' keeps every session read on the replica, so the measured difference is the extra
// position read, not a routing choice.
const readSession = new SessionContext({ id: 'bench-reader' }, 'eventual');
const writeSession = new SessionContext({ id: 'bench-writer' });

type Op = (i: number) => Promise<unknown>;
const cases: Record<string, Op> = {
  'read: pg.Pool on the replica': (i) => plainReplica.query(READ, [id(i)]),
  'read: routed pool, session (replica + replay LSN)': (i) =>
    withSession(readSession, () => routed.query(READ, [id(i)])),
  'read: pg.Pool on the primary': (i) => plainPrimary.query(READ, [id(i)]),
  'read: routed pool, no session (primary)': (i) => routed.query(READ, [id(i)]),
  'write: pg.Pool on the primary': (i) => plainPrimary.query(WRITE, [id(i)]),
  'write: routed pool, session (primary + insert LSN)': (i) =>
    withSession(writeSession, () => routed.query(WRITE, [id(i)])),
};

/** Latencies (ms) of one-at-a-time calls for `SECONDS`. */
async function sequential(op: Op): Promise<number[]> {
  const latencies: number[] = [];
  const end = performance.now() + SECONDS * 1000;
  for (let i = 0; performance.now() < end; i++) {
    const start = performance.now();
    await op(i);
    latencies.push(performance.now() - start);
  }
  return latencies;
}

/** Operations per second with `CONCURRENCY` calls in flight for `SECONDS`. */
async function concurrent(op: Op): Promise<number> {
  let done = 0;
  const end = performance.now() + SECONDS * 1000;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, worker) => {
      for (let i = worker; performance.now() < end; i += CONCURRENCY) {
        await op(i);
        done++;
      }
    }),
  );
  return (done * 1000) / (performance.now() - start);
}

const results: Record<string, { p50: number[]; mean: number[]; opsPerSec: number[] }> = {};
for (const name of Object.keys(cases)) results[name] = { p50: [], mean: [], opsPerSec: [] };
for (const op of Object.values(cases)) await sequential(op); // warm-up: connections, plans
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, op] of Object.entries(cases)) {
    const latencies = await sequential(op);
    const result = results[name]!;
    result.p50.push(percentile(latencies, 50));
    result.mean.push(latencies.reduce((a, b) => a + b, 0) / latencies.length);
    result.opsPerSec.push(await concurrent(op));
  }
}

const best = (values: number[], pick: (a: number, b: number) => number) =>
  values.reduce((a, b) => pick(a, b));
const summary = Object.entries(results).map(([name, r]) => ({
  name,
  p50Ms: best(r.p50, Math.min),
  meanMs: best(r.mean, Math.min),
  opsPerSec: Math.round(best(r.opsPerSec, Math.max)),
}));
const baseline = (name: string) => summary.find((row) => row.name === name)!;
const rows = summary.map((row) => {
  const base = row.name.startsWith('write')
    ? baseline('write: pg.Pool on the primary')
    : row.name.includes('replica')
      ? baseline('read: pg.Pool on the replica')
      : baseline('read: pg.Pool on the primary');
  return [
    row.name,
    row.p50Ms,
    row.meanMs,
    `${(row.meanMs / base.meanMs).toFixed(2)}x`,
    row.opsPerSec,
    `${(row.opsPerSec / base.opsPerSec).toFixed(2)}x`,
  ];
});
console.log(
  `\nRouted pool vs pg.Pool (${SECONDS} s per case per round, best of ${ROUNDS} rounds; ` +
    `throughput with ${CONCURRENCY} in flight)\n`,
);
console.log(
  markdownTable(
    [
      'case',
      'p50 ms',
      'mean ms',
      'mean vs pg.Pool',
      `ops/s (${CONCURRENCY} in flight)`,
      'ops/s vs pg.Pool',
    ],
    rows,
  ),
);
writeResults('pool', { seconds: SECONDS, rounds: ROUNDS, concurrency: CONCURRENCY, summary });

await plainPrimary.query(`DROP TABLE ${TABLE}`);
await Promise.all([plainPrimary.end(), plainReplica.end(), routed.end()]);
await cluster?.stop();
