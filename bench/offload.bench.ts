/**
 * Read offload against correctness: how many reads each routing strategy sends to replicas, and
 * how many session guarantees it breaks, on a real primary and two streaming replicas whose
 * apply delay (`recovery_min_apply_delay`, the same on both) is changed from cell to cell.
 * In each cell the strategies run side by side, each with its own simulated sessions drawing the
 * same seeded operations (bench/offload-workload.ts); the history checker (src/testing) counts
 * read-your-writes and monotonic-reads violations from what the reads returned and which server
 * answered them (`inet_server_port()` in the reading statement), not from the router's word.
 *
 * Run: npm run bench -- offload   (starts its own servers; BENCH_SECONDS per cell, default 10;
 * BENCH_LAGS, default 10,100,500,1000,2500 ms; BENCH_SEED, default 1)
 */
import { cpus } from 'node:os';
import pg from 'pg';
import { startPostgresPrimary, startReplica } from '../test/harness/cluster.js';
import {
  BUSY,
  createRegisterTable,
  INTERACTIVE,
  measureApplyDelays,
  type OffloadNodes,
  RAILS_PIN_MS,
  runCell,
  type SessionProfile,
  STRATEGIES,
  type StrategyRun,
  setApplyDelay,
} from './offload-workload.js';
import { markdownTable, percentile, writeResults } from './util.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 10);
const LAGS_MS = (process.env['BENCH_LAGS'] ?? '10,100,500,1000,2500').split(',').map(Number);
const SEED = Number(process.env['BENCH_SEED'] ?? 1);
if (!(SECONDS > 0) || LAGS_MS.some((lag) => !(lag >= 0)) || !Number.isInteger(SEED)) {
  throw new Error('BENCH_SECONDS must be > 0, BENCH_LAGS milliseconds >= 0, BENCH_SEED an integer');
}

/** The two kinds of sessions, each run at every lag. */
const PROFILES: readonly {
  name: string;
  profile: SessionProfile;
  sessions: number;
  description: string;
}[] = [
  {
    name: 'interactive',
    profile: INTERACTIVE,
    sessions: 96,
    description:
      '10 % writes; the next request 5-50 ms after a write (the redirect), else 5-50 ms ' +
      '(same page) or 0.2-3 s (the user thinks), half and half',
  },
  {
    name: 'busy',
    profile: BUSY,
    sessions: 16,
    description: '10 % writes, 5-50 ms between operations (a job or an API client in a loop)',
  },
];

const primary = await startPostgresPrimary({ name: 'offload-primary' });
const replicas = await Promise.all([
  startReplica(primary, { name: 'offload-replica1' }),
  startReplica(primary, { name: 'offload-replica2' }),
]);
const nodes: OffloadNodes = {
  primaryUrl: primary.url,
  replicas: replicas.map((replica, i) => ({ name: `replica-${i + 1}`, url: replica.url })),
};
const TABLE = 'offload_registers';
const admin = new pg.Pool({ connectionString: primary.url, max: 1 });

interface CellResult {
  readonly profile: string;
  readonly lagMs: number;
  readonly measuredDelayMs: Record<string, number>;
  readonly runs: readonly StrategyRun[];
}

try {
  const settings = await admin.query<{ version: string; fsync: string; commit: string }>(
    `SELECT current_setting('server_version') AS version, current_setting('fsync') AS fsync,
       current_setting('synchronous_commit') AS commit`,
  );
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    postgres: settings.rows[0]!.version,
    fsync: settings.rows[0]!.fsync,
    synchronousCommit: settings.rows[0]!.commit,
  };
  console.log(
    `Machine: ${machine.cpus} CPUs (${machine.cpuModel}), Node ${machine.node}, PostgreSQL ` +
      `${machine.postgres} (fsync = ${machine.fsync}, synchronous_commit = ` +
      `${machine.synchronousCommit}), primary and 2 replicas on 127.0.0.1`,
  );
  console.log(
    `${SECONDS} s per cell, seed ${SEED}, strategies side by side in each cell, ` +
      `Rails pinning window ${RAILS_PIN_MS} ms`,
  );
  await createRegisterTable(admin, TABLE);

  const cells: CellResult[] = [];
  for (const { name, profile, sessions } of PROFILES) {
    for (const lagMs of LAGS_MS) {
      await Promise.all(nodes.replicas.map((replica) => setApplyDelay(replica.url, lagMs)));
      // Also waits until both replicas have applied everything written before.
      const measuredDelayMs = await measureApplyDelays(nodes, TABLE);
      const runs = await runCell({
        nodes,
        table: TABLE,
        cell: `${name}-${lagMs}`,
        sessions,
        seconds: SECONDS,
        seed: SEED,
        profile,
      });
      cells.push({ profile: name, lagMs, measuredDelayMs, runs });
      const shares = runs.map((run) => `${run.strategy} ${share(run)}`).join(', ');
      console.error(`# ${name}, ${lagMs} ms: ${shares}`);
    }
  }

  for (const { name, sessions, description } of PROFILES) {
    const ofProfile = cells.filter((cell) => cell.profile === name);
    console.log(`\n### ${name} sessions: ${sessions} per strategy; ${description}\n`);
    console.log(
      markdownTable(
        [
          'lag',
          'strategy',
          'reads',
          'served by replicas',
          'read-your-writes violations',
          'monotonic-read violations',
          'p50 read ms',
          'p99 read ms',
        ],
        ofProfile.flatMap((cell) =>
          cell.runs.map((run) => [
            formatLag(cell.lagMs),
            run.strategy,
            run.reads,
            share(run),
            run.check.counts['read-your-writes'],
            run.check.counts['monotonic-reads'],
            percentile(run.readLatenciesMs, 50),
            percentile(run.readLatenciesMs, 99),
          ]),
        ),
      ),
    );
  }
  console.log(
    '\nApply delay measured before each cell (commit on the primary to visible on the replica):\n',
  );
  console.log(
    markdownTable(
      ['sessions', 'lag', ...nodes.replicas.map((replica) => `${replica.name} ms`)],
      cells.map((cell) => [
        cell.profile,
        formatLag(cell.lagMs),
        ...nodes.replicas.map((replica) => cell.measuredDelayMs[replica.name] ?? Number.NaN),
      ]),
    ),
  );

  const errors = cells.flatMap((cell) =>
    cell.runs
      .filter((run) => run.errors > 0)
      .map((run) => `${cell.profile} ${cell.lagMs} ms ${run.strategy}: ${run.errors}`),
  );
  if (errors.length > 0) console.log(`\nFailed operations: ${errors.join('; ')}`);

  // The issue's goals, checked on this run's numbers.
  const causewayViolations = cells.flatMap((cell) =>
    cell.runs
      .filter((run) => run.strategy.startsWith('Causeway') && !run.check.ok)
      .map(
        (run) =>
          `${cell.profile} ${cell.lagMs} ms ${run.strategy}: ${run.check.violations[0]?.message}`,
      ),
  );
  const behindRails = cells
    .filter((cell) => cell.lagMs < RAILS_PIN_MS)
    .filter((cell) => ratio(cell, 'Causeway') <= ratio(cell, 'Rails 2 s pinning'))
    .map((cell) => `${cell.profile} ${cell.lagMs} ms`);
  console.log(
    `\nCauseway violations at every lag: ${causewayViolations.length === 0 ? 'none' : causewayViolations.join('; ')}`,
  );
  console.log(
    `Causeway (default options) serves more reads from replicas than Rails at every lag under ` +
      `${RAILS_PIN_MS} ms: ${behindRails.length === 0 ? 'yes' : `no (${behindRails.join(', ')})`}`,
  );

  writeResults('offload', {
    machine,
    seconds: SECONDS,
    seed: SEED,
    strategies: STRATEGIES,
    profiles: PROFILES.map(({ name, sessions, description }) => ({ name, sessions, description })),
    cells: cells.map((cell) => ({
      profile: cell.profile,
      lagMs: cell.lagMs,
      measuredDelayMs: cell.measuredDelayMs,
      runs: cell.runs.map((run) => ({
        strategy: run.strategy,
        reads: run.reads,
        replicaReads: run.replicaReads,
        writes: run.writes,
        errors: run.errors,
        violations: run.check.counts,
        firstViolations: run.check.violations.slice(0, 3).map((v) => v.message),
        p50ReadMs: percentile(run.readLatenciesMs, 50),
        p99ReadMs: percentile(run.readLatenciesMs, 99),
        routes: run.routes,
      })),
    })),
  });
  if (causewayViolations.length > 0) process.exitCode = 1;
} finally {
  await admin.end();
  await Promise.allSettled(replicas.map((replica) => replica.stop()));
  await primary.stop();
}

function share(run: StrategyRun): string {
  return run.reads === 0 ? 'n/a' : `${((100 * run.replicaReads) / run.reads).toFixed(1)} %`;
}

function ratio(cell: CellResult, strategy: string): number {
  const run = cell.runs.find((r) => r.strategy === strategy);
  return run === undefined || run.reads === 0 ? 0 : run.replicaReads / run.reads;
}

function formatLag(ms: number): string {
  return ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`;
}
