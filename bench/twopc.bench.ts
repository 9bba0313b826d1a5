/**
 * Two-participant transactions (one insert in each of two PostgreSQL primaries) side by side in
 * the same run, at 1 and 8 clients, once with `fsync = off` and once with `fsync = on` (the
 * servers' default `synchronous_commit = on`; `full_page_writes` follows `fsync`): 2PC's cost is
 * mostly extra flushes. The bench starts its own two servers for each setting.
 *  - one database: the same two inserts as one ordinary transaction in one database;
 *  - hand-written 2PC SQL, no coordinator: BEGIN + INSERT on each database in turn, PREPARE
 *    TRANSACTION on both in parallel, one decision-row INSERT (autocommit) into a decision table
 *    on the first database, COMMIT PREPARED on both in parallel: 9 round trips, 7 in sequence,
 *    5 WAL flushes. Random UUID gids like the coordinator's; it skips what only the coordinator
 *    does (xids for the heuristic check, timeouts, retries);
 *  - `TwoPhaseCoordinator` with every optimization (its log shares the first participant's pool,
 *    so that participant commits with the decision: 5 round trips, all in sequence, as each
 *    branch's BEGIN goes with its first statement; 3 WAL flushes), with none, and with a log
 *    apart (its own pool on the first database: both branches prepared, decisions batched);
 *  - the coordinator with every optimization and `phaseTwo: 'background'`: `transaction()`
 *    resolves at the commit point (the first participant's commit carrying the decision), and
 *    the other branch's COMMIT PREPARED runs after. Its slices end only once its background
 *    phase two is done (counted through the step hook), so that work is charged to it;
 *  - one participant: a plain one-insert transaction (BEGIN, INSERT, COMMIT: 3 round trips)
 *    against the coordinator's one-phase commit (BEGIN with the INSERT, COMMIT: 2).
 * Same pools, fixed duration per scenario, run in interleaved slices so drift hits all alike;
 * throughput is transactions over the time a scenario's slices really took (to the end of the
 * last transaction, and of background phase two).
 * Run: npm run bench -- twopc (TWOPC_BENCH_SECONDS sets the seconds per scenario, default 5).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { PgDecisionLog, pgDecisionLogTableSql } from '../adapters/pg/decision-log.js';
import { PgParticipant } from '../adapters/pg/participant.js';
import {
  TwoPhaseCoordinator,
  type TwoPhaseCoordinatorOptions,
  type TwoPhaseOptimizations,
} from '../src/txn/coordinator.js';
import { startPostgresPrimary } from '../test/harness/cluster.js';
import { markdownTable, percentile, writeResults } from './util.js';

const CONCURRENCY = [1, 8];
const SECONDS = Number(process.env['TWOPC_BENCH_SECONDS'] ?? 5);
/** Many short slices, interleaved: a burst of load from elsewhere hits every scenario alike. */
const SLICES = 25;
const WARMUP_MS = 500;
const NONE: TwoPhaseOptimizations = {
  onePhase: false,
  readOnly: false,
  commitWithLog: false,
  batchDecisions: false,
};

const ONE_DATABASE = 'one database, one transaction';
const HAND_WRITTEN = 'hand-written 2PC SQL';
const ALL = 'coordinator, all optimizations';
const BACKGROUND = "coordinator, all optimizations, phaseTwo 'background'";
const WITHOUT = 'coordinator, no optimization';
const LOG_APART = 'coordinator, log apart (batched)';
const LOG_APART_UNBATCHED = 'coordinator, log apart (not batched)';
const PLAIN_ONE = 'one insert, plain transaction';
const ONE_PHASE = 'one insert, coordinator (one phase)';

type Scenario = () => Promise<unknown>;

interface Result {
  fsync: string;
  scenario: string;
  clients: number;
  transactions: number;
  tps: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * Runs `scenario` on `clients` concurrent loops for `ms`, then waits for `settled` (work it left
 * running); returns each transaction's latency and the time it all took.
 */
async function drive(
  scenario: Scenario,
  clients: number,
  ms: number,
  settled?: () => Promise<void>,
): Promise<{ latencies: number[]; elapsedMs: number }> {
  const latencies: number[] = [];
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const start = performance.now();
        await scenario();
        latencies.push(performance.now() - start);
      }
    }),
  );
  await settled?.();
  return { latencies, elapsedMs: performance.now() - start };
}

/** Counts background phase twos in flight (one prepared branch each here), to wait them out. */
function backgroundCounter() {
  let running = 0;
  let idle: (() => void) | undefined;
  return {
    onStep(step: string): void {
      if (step === 'background-phase-two') running++;
      else if (step === 'after-commit' && --running === 0) idle?.();
    },
    settled(): Promise<void> {
      if (running === 0) return Promise.resolve();
      return new Promise((resolve) => {
        idle = () => {
          idle = undefined;
          resolve();
        };
      });
    },
  };
}

async function runWith(fsync: 'off' | 'on'): Promise<Result[]> {
  const settings = { fsync, full_page_writes: fsync, max_prepared_transactions: 40 };
  const [serverA, serverB] = await Promise.all([
    startPostgresPrimary({ name: `bench-a-${fsync}`, settings }),
    startPostgresPrimary({ name: `bench-b-${fsync}`, settings }),
  ]);
  const suffix = randomBytes(4).toString('hex');
  const users = `txn_bench_users_${suffix}`;
  const perms = `txn_bench_perms_${suffix}`;
  const handLog = `txn_bench_handlog_${suffix}`;
  const poolA = new pg.Pool({ connectionString: serverA.url, max: 12 });
  const poolB = new pg.Pool({ connectionString: serverB.url, max: 12 });
  const logPool = new pg.Pool({ connectionString: serverA.url, max: 12 });
  // An idle client whose server stops (at the end of a setting) must not crash the run.
  for (const pool of [poolA, poolB, logPool]) pool.on('error', () => {});
  for (const pool of [poolA, poolB]) {
    await pool.query(`CREATE TABLE ${users} (id bigint PRIMARY KEY, email text NOT NULL)`);
    await pool.query(`CREATE TABLE ${perms} (id bigint PRIMARY KEY, role text NOT NULL)`);
  }
  await poolA.query(pgDecisionLogTableSql(handLog));
  const background = backgroundCounter();
  const coordinator = (
    name: string,
    pool: pg.Pool,
    optimizations: TwoPhaseOptimizations,
    extra: Partial<TwoPhaseCoordinatorOptions> = {},
  ) =>
    new TwoPhaseCoordinator({
      coordinatorId: `bench-${name}-${suffix}`,
      log: new PgDecisionLog({ pool, table: `txn_bench_log_${name}_${suffix}` }),
      participants: {
        users: new PgParticipant({ pool: poolA }),
        perms: new PgParticipant({ pool: poolB }),
      },
      optimizations,
      ...extra,
    });
  const coordinators = {
    all: coordinator('all', poolA, {}),
    background: coordinator(
      'bg',
      poolA,
      {},
      {
        phaseTwo: 'background',
        hooks: { onStep: (step) => background.onStep(step) },
      },
    ),
    none: coordinator('none', poolA, NONE),
    apart: coordinator('apart', logPool, { batchDecisions: true }),
    apartUnbatched: coordinator('apart1', logPool, {}),
  };

  let nextId = 0;
  const insertUser = `INSERT INTO ${users} (id, email) VALUES ($1, $2)`;
  const insertPerm = `INSERT INTO ${perms} (id, role) VALUES ($1, $2)`;
  const signup = (c: TwoPhaseCoordinator) => () => {
    const id = nextId++;
    return c.transaction(async (tx) => {
      await tx.participant('users').query(insertUser, [id, `u${id}@example.com`]);
      await tx.participant('perms').query(insertPerm, [id, 'member']);
    });
  };
  const plain = async (statements: [string, unknown[]][]) => {
    const client = await poolA.connect();
    try {
      await client.query('BEGIN');
      for (const [text, values] of statements) await client.query(text, values);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
  };
  const scenarios: Record<string, Scenario> = {
    [ONE_DATABASE]: () => {
      const id = nextId++;
      return plain([
        [insertUser, [id, `u${id}@example.com`]],
        [insertPerm, [id, 'member']],
      ]);
    },
    [HAND_WRITTEN]: async () => {
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
    [ALL]: signup(coordinators.all),
    [BACKGROUND]: signup(coordinators.background),
    [WITHOUT]: signup(coordinators.none),
    [LOG_APART]: signup(coordinators.apart),
    [LOG_APART_UNBATCHED]: signup(coordinators.apartUnbatched),
    [PLAIN_ONE]: () => {
      const id = nextId++;
      return plain([[insertUser, [id, `u${id}@example.com`]]]);
    },
    [ONE_PHASE]: () => {
      const id = nextId++;
      return coordinators.all.transaction(async (tx) => {
        await tx.participant('users').query(insertUser, [id, `u${id}@example.com`]);
      });
    },
  };

  const results: Result[] = [];
  for (const clients of CONCURRENCY) {
    const settled = (name: string) => (name === BACKGROUND ? background.settled : undefined);
    for (const [name, scenario] of Object.entries(scenarios)) {
      await drive(scenario, clients, WARMUP_MS, settled(name));
    }
    const latencies = new Map<string, number[]>(Object.keys(scenarios).map((name) => [name, []]));
    const elapsed = new Map<string, number>();
    const sliceMs = (SECONDS * 1000) / SLICES;
    for (let slice = 0; slice < SLICES; slice++) {
      for (const [name, scenario] of Object.entries(scenarios)) {
        const run = await drive(scenario, clients, sliceMs, settled(name));
        latencies.get(name)!.push(...run.latencies);
        elapsed.set(name, (elapsed.get(name) ?? 0) + run.elapsedMs);
      }
    }
    for (const [scenario, values] of latencies) {
      results.push({
        fsync,
        scenario,
        clients,
        transactions: values.length,
        tps: values.length / (elapsed.get(scenario)! / 1000),
        p50Ms: percentile(values, 50),
        p99Ms: percentile(values, 99),
      });
    }
  }

  // Forget the decisions, check nothing is left prepared, and stop the servers.
  for (const c of Object.values(coordinators)) {
    await c.recover();
    await c.close();
  }
  for (const pool of [poolA, poolB]) {
    const left = await pool.query('SELECT count(*)::int AS n FROM pg_prepared_xacts');
    if (left.rows[0].n !== 0) console.error(`left prepared: ${left.rows[0].n}`);
  }
  await Promise.all([poolA.end(), poolB.end(), logPool.end()]);
  await Promise.all([serverA.stop(), serverB.stop()]);
  return results;
}

const results = [...(await runWith('off')), ...(await runWith('on'))];
const tpsOf = (fsync: string, scenario: string, clients: number) =>
  results.find((r) => r.fsync === fsync && r.scenario === scenario && r.clients === clients)!.tps;
const ratios = ['off', 'on'].flatMap((fsync) =>
  CONCURRENCY.map((clients) => {
    const tps = (scenario: string) => tpsOf(fsync, scenario, clients);
    return {
      fsync,
      clients,
      allVsHandWritten: tps(ALL) / tps(HAND_WRITTEN),
      allVsOneDatabase: tps(ALL) / tps(ONE_DATABASE),
      backgroundVsOneDatabase: tps(BACKGROUND) / tps(ONE_DATABASE),
      noneVsHandWritten: tps(WITHOUT) / tps(HAND_WRITTEN),
      handWrittenVsOneDatabase: tps(HAND_WRITTEN) / tps(ONE_DATABASE),
      onePhaseVsPlain: tps(ONE_PHASE) / tps(PLAIN_ONE),
      batchedVsNot: tps(LOG_APART) / tps(LOG_APART_UNBATCHED),
    };
  }),
);

console.log(`\n2PC: inserts in two databases, ${SECONDS} s per scenario and concurrency\n`);
console.log(
  markdownTable(
    ['fsync', 'scenario', 'clients', 'txn/s', 'p50 ms', 'p99 ms'],
    results.map((r) => [r.fsync, r.scenario, r.clients, r.tps, r.p50Ms, r.p99Ms]),
  ),
);
console.log('');
console.log(
  markdownTable(
    [
      'fsync',
      'clients',
      'all opt. / hand-written',
      'all opt. / one database',
      "all opt., phase two 'background' / one database",
      'no opt. / hand-written',
      'hand-written / one database',
      'one phase / plain',
      'batched / not (log apart)',
    ],
    ratios.map((r) => [
      r.fsync,
      r.clients,
      r.allVsHandWritten,
      r.allVsOneDatabase,
      r.backgroundVsOneDatabase,
      r.noneVsHandWritten,
      r.handWrittenVsOneDatabase,
      r.onePhaseVsPlain,
      r.batchedVsNot,
    ]),
  ),
);
writeResults('twopc', {
  secondsPerScenario: SECONDS,
  goals: {
    allVsHandWrittenAtLeast: 1,
    allVsOneDatabaseWithFsyncAtLeast: 0.45,
    onePhaseVsPlainAtLeast: 0.95,
  },
  results,
  ratios,
});
