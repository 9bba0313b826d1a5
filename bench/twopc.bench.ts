/**
 * Two-participant transactions (one insert in each of two PostgreSQL primaries) through
 * `TwoPhaseCoordinator`, side by side in the same run with
 *  (a) the same two inserts as one ordinary transaction in one database, and
 *  (b) hand-written 2PC SQL with no coordinator: BEGIN + INSERT on each database in turn,
 *      PREPARE TRANSACTION on both in parallel, one decision-row INSERT (autocommit) into a
 *      decision table on the first database, COMMIT PREPARED on both in parallel. Its gids are
 *      random UUIDs like the coordinator's (real 2PC code needs gids unique across processes
 *      and restarts); it skips what only the coordinator does (reading each branch's xid for
 *      the heuristic check, returning the decision's time, timeouts, retries).
 * The coordinator does the same round trips as (b) (it reads the branch's xid in the PREPARE
 * round trip and its decision insert returns the row). Same pools, same concurrency (1 and 8
 * clients), fixed duration per scenario, run in interleaved slices so drift hits all alike.
 * Run: npx tsx bench/twopc.bench.ts
 */
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { PgDecisionLog, pgDecisionLogTableSql } from '../adapters/pg/decision-log.js';
import { PgParticipant } from '../adapters/pg/participant.js';
import { TwoPhaseCoordinator } from '../src/txn/coordinator.js';
import { startCluster } from '../test/harness/cluster.js';
import { hasTestEnv, testEnv } from '../test/harness/env.js';
import { markdownTable, percentile, writeResults } from './util.js';

const CONCURRENCY = [1, 8];
const SECONDS = Number(process.env['TWOPC_BENCH_SECONDS'] ?? 5);
const SLICES = 5;
const WARMUP_MS = 500;

const cluster = hasTestEnv() ? undefined : await startCluster();
const urls = cluster
  ? { a: cluster.primary.url, b: cluster.primary2.url }
  : { a: testEnv().primaryUrl, b: testEnv().primary2Url };

const suffix = randomBytes(4).toString('hex');
const users = `txn_bench_users_${suffix}`;
const perms = `txn_bench_perms_${suffix}`;
const coordinatorLog = `txn_bench_log_${suffix}`;
const handLog = `txn_bench_handlog_${suffix}`;

const poolA = new pg.Pool({ connectionString: urls.a, max: 12 });
const poolB = new pg.Pool({ connectionString: urls.b, max: 12 });
for (const pool of [poolA, poolB]) {
  await pool.query(`CREATE TABLE ${users} (id bigint PRIMARY KEY, email text NOT NULL)`);
  await pool.query(`CREATE TABLE ${perms} (id bigint PRIMARY KEY, role text NOT NULL)`);
}
await poolA.query(pgDecisionLogTableSql(handLog));

const coordinator = new TwoPhaseCoordinator({
  coordinatorId: `bench-${suffix}`,
  log: new PgDecisionLog({ pool: poolA, table: coordinatorLog }),
  participants: {
    users: new PgParticipant({ pool: poolA }),
    perms: new PgParticipant({ pool: poolB }),
  },
});

let nextId = 0;
const insertUser = `INSERT INTO ${users} (id, email) VALUES ($1, $2)`;
const insertPerm = `INSERT INTO ${perms} (id, role) VALUES ($1, $2)`;

type Scenario = () => Promise<unknown>;

const scenarios: Record<string, Scenario> = {
  'one database, one transaction': async () => {
    const id = nextId++;
    const client = await poolA.connect();
    try {
      await client.query('BEGIN');
      await client.query(insertUser, [id, `u${id}@example.com`]);
      await client.query(insertPerm, [id, 'member']);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
  },
  'hand-written 2PC SQL': async () => {
    const id = nextId++;
    const gid = `bench_${suffix}_${randomUUID().replaceAll('-', '')}`;
    const a = await poolA.connect();
    const b = await poolB.connect();
    try {
      await a.query('BEGIN');
      await a.query(insertUser, [id, `u${id}@example.com`]);
      await b.query('BEGIN');
      await b.query(insertPerm, [id, 'member']);
      await Promise.all([
        a.query(`PREPARE TRANSACTION '${gid}_a'`),
        b.query(`PREPARE TRANSACTION '${gid}_b'`),
      ]);
    } finally {
      a.release();
      b.release();
    }
    await poolA.query(
      `INSERT INTO ${handLog} (gid, decision, participants) VALUES ($1, 'commit', $2)`,
      [gid, ['a', 'b']],
    );
    await Promise.all([
      poolA.query(`COMMIT PREPARED '${gid}_a'`),
      poolB.query(`COMMIT PREPARED '${gid}_b'`),
    ]);
  },
  TwoPhaseCoordinator: () => {
    const id = nextId++;
    return coordinator.transaction(async (tx) => {
      await tx.participant('users').query(insertUser, [id, `u${id}@example.com`]);
      await tx.participant('perms').query(insertPerm, [id, 'member']);
    });
  },
};

/** Runs `scenario` on `clients` concurrent loops for `ms`; returns each transaction's latency. */
async function drive(scenario: Scenario, clients: number, ms: number): Promise<number[]> {
  const latencies: number[] = [];
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const start = performance.now();
        await scenario();
        latencies.push(performance.now() - start);
      }
    }),
  );
  return latencies;
}

interface Result {
  scenario: string;
  clients: number;
  transactions: number;
  tps: number;
  p50Ms: number;
  p99Ms: number;
}

const results: Result[] = [];
for (const clients of CONCURRENCY) {
  for (const scenario of Object.values(scenarios)) await drive(scenario, clients, WARMUP_MS);
  const latencies = new Map<string, number[]>(Object.keys(scenarios).map((name) => [name, []]));
  const sliceMs = (SECONDS * 1000) / SLICES;
  for (let slice = 0; slice < SLICES; slice++) {
    for (const [name, scenario] of Object.entries(scenarios)) {
      latencies.get(name)!.push(...(await drive(scenario, clients, sliceMs)));
    }
  }
  for (const [scenario, values] of latencies) {
    results.push({
      scenario,
      clients,
      transactions: values.length,
      tps: values.length / SECONDS,
      p50Ms: percentile(values, 50),
      p99Ms: percentile(values, 99),
    });
  }
}

const tpsOf = (scenario: string, clients: number) =>
  results.find((r) => r.scenario === scenario && r.clients === clients)!.tps;
const ratios = CONCURRENCY.map((clients) => {
  const ours = tpsOf('TwoPhaseCoordinator', clients);
  return {
    clients,
    coordinatorVsHandWritten: ours / tpsOf('hand-written 2PC SQL', clients),
    coordinatorVsSingleDatabase: ours / tpsOf('one database, one transaction', clients),
    handWrittenVsSingleDatabase:
      tpsOf('hand-written 2PC SQL', clients) / tpsOf('one database, one transaction', clients),
  };
});

console.log(`\n2PC: two inserts in two databases, ${SECONDS} s per scenario and concurrency\n`);
console.log(
  markdownTable(
    ['scenario', 'clients', 'txn/s', 'p50 ms', 'p99 ms'],
    results.map((r) => [r.scenario, r.clients, r.tps, r.p50Ms, r.p99Ms]),
  ),
);
console.log('');
console.log(
  markdownTable(
    [
      'clients',
      'coordinator / hand-written',
      'coordinator / one database',
      'hand-written / one database',
    ],
    ratios.map((r) => [
      r.clients,
      r.coordinatorVsHandWritten,
      r.coordinatorVsSingleDatabase,
      r.handWrittenVsSingleDatabase,
    ]),
  ),
);
writeResults('twopc', {
  secondsPerScenario: SECONDS,
  goals: { coordinatorVsHandWrittenAtLeast: 0.9, coordinatorVsSingleDatabaseAtLeast: 0.45 },
  results,
  ratios,
});

// Forget the decisions, check nothing is left prepared, and clean up.
await coordinator.recover();
await coordinator.close();
for (const pool of [poolA, poolB]) {
  const left = await pool.query(
    'SELECT count(*)::int AS n FROM pg_prepared_xacts WHERE gid LIKE $1 OR gid LIKE $2',
    [`cw:bench-${suffix}:%`, `bench_${suffix}_%`],
  );
  if (left.rows[0].n !== 0) console.error(`left prepared: ${left.rows[0].n}`);
  await pool.query(`DROP TABLE IF EXISTS ${users}, ${perms}`);
}
await poolA.query(`DROP TABLE IF EXISTS ${coordinatorLog}, ${handLog}`);
await poolA.end();
await poolB.end();
await cluster?.stop();
