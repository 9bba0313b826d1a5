/**
 * Chaos workload for two-phase commit. A child process (`two-phase-child.ts`) runs the
 * coordinator over the cluster's `primary` ("users", which also keeps the decision log and the
 * recovery lease) and `primary2` ("perms"), with recovery at start-up and every few hundred
 * milliseconds; every transaction inserts a row keyed by its gid into the same table in both.
 *
 * Fault `coordinator-kill`: SIGKILL of the coordinator at a random moment, or at a seeded step
 * of a transaction through the coordinator's crash-point hook (before prepare, after one
 * participant's prepare, after the decision is logged, between the commits), then a new
 * coordinator process with the same id, as a supervisor would start. Right after each kill,
 * once the dead process's server connections are gone, the workload notes which transactions
 * it left prepared and whether their commit decision was logged: those must end committed in
 * both databases if it was, and in neither if it was not.
 *
 * `verify()` runs recovery to completion, then checks: every gid is in both databases or in
 * neither; every acknowledged commit (and every `TXN_IN_DOUBT` with a commit decision) is in
 * both; no `TXN_ABORTED` transaction left a row; `pg_prepared_xacts` is empty on both servers;
 * the decision log holds no commit decision and no decision with a branch still prepared (abort
 * decisions are kept on purpose for `abortRetentionMs`).
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { PgDecisionLog } from '../../../adapters/pg/decision-log.js';
import { PgLeaseManager } from '../../../adapters/pg/fencing.js';
import { PgParticipant } from '../../../adapters/pg/participant.js';
import { ErrorCode, isCausewayError } from '../../../src/errors.js';
import { TwoPhaseCoordinator } from '../../../src/txn/coordinator.js';
import { coordinatorPrefix, tryParseGid } from '../../../src/txn/gid.js';
import { sleep } from '../../../src/util/timers.js';
import type { Cluster } from '../../harness/cluster.js';
import type { ChaosContext, Fault, Workload, WorkloadReport } from '../types.js';
import { type ChildHandle, spawnChild } from './child-process.js';
import type {
  KillPoint,
  TwoPhaseChildConfig,
  TwoPhaseCommand,
  TwoPhaseEvent,
} from './two-phase-child.js';

const CHILD_SCRIPT = fileURLToPath(new URL('./two-phase-child.ts', import.meta.url));

/** Where a kill lands: at any moment (the parent's SIGKILL after a seeded delay) or at a step. */
export type KillMode =
  | 'any-moment'
  | 'before-prepare'
  | 'after-prepare:users'
  | 'after-prepare:perms'
  | 'after-decision'
  | 'after-commit:users'
  | 'after-commit:perms';

export const KILL_MODES: readonly KillMode[] = [
  'any-moment',
  'before-prepare',
  'after-prepare:users',
  'after-prepare:perms',
  'after-decision',
  'after-commit:users',
  'after-commit:perms',
];

export interface TwoPhaseWorkloadOptions {
  /** Transactions the coordinator runs at once. Default: 2. */
  concurrency?: number;
  /** Pause after each transaction in each loop, to keep CPU moderate. Default: 25 ms. */
  thinkMs?: number;
  /**
   * The coordinator's `prepareTimeoutMs`: recovery presumes abort for undecided branches older
   * than this. Short, so the run sees recovery finish what kills leave. Default: 1 500 ms.
   */
  prepareTimeoutMs?: number;
  /** The coordinator's `commitWaitMs`. Default: 3 000 ms. */
  commitWaitMs?: number;
  /** Interval of the child's recovery loop. Default: 300 ms. */
  recoveryIntervalMs?: number;
  /** Time to live of the recovery lease (a killed child holds it this long). Default: 1 500 ms. */
  recoveryLeaseTtlMs?: number;
  /** Where kills may land; the fault picks one per injection. Default: `KILL_MODES`. */
  killModes?: readonly KillMode[];
  /** Longest wait for an armed step (no transaction reaches it): then a plain SIGKILL. Default: 4 000 ms. */
  armTimeoutMs?: number;
  /** Longest seeded delay before an `any-moment` kill and before the restart. Default: 300 ms. */
  maxDelayMs?: number;
  /** Longest time `verify()` runs recovery before it reports what is left. Default: 60 000 ms. */
  recoveryDeadlineMs?: number;
}

/** What a transaction's client was told (or `begun`: it never heard). */
type GidStatus = 'begun' | 'committed' | 'aborted' | 'in-doubt-commit' | 'in-doubt' | 'failed';

/** A transaction left prepared by a kill, with what the log said right after the kill. */
interface InDoubtAfterKill {
  readonly kill: number;
  readonly branches: string[];
  readonly decision: 'commit' | 'abort' | undefined;
}

export interface TwoPhaseStats {
  transactions: number;
  committed: number;
  aborted: number;
  inDoubt: number;
  failed: number;
  kills: number;
  killsByMode: Record<string, number>;
  /** Kills that landed at the armed step (a transaction was stopped there). */
  killsAtStep: number;
  /** Armed kills no transaction reached in time, done as a plain SIGKILL instead. */
  killsAtTimeout: number;
  coordinatorStarts: number;
  /** Transactions with a branch prepared right after a kill (in doubt until recovery). */
  inDoubtAfterKills: number;
  /** Of those, how they ended (filled by `verify()`). */
  inDoubtCommitted: number;
  inDoubtRolledBack: number;
  /** Kills after which the post-kill snapshot could not be read (a server was down). */
  snapshotsMissed: number;
  recoveryErrors: number;
  heuristics: number;
  /** What the final recovery in `verify()` still had to do. */
  finalRecovery: {
    rounds: number;
    committed: number;
    rolledBack: number;
    presumedAborted: number;
    forgotten: number;
  };
}

export interface TwoPhaseWorkload extends Workload {
  /** Counters of the run so far (complete after `verify()`). */
  readonly stats: Readonly<TwoPhaseStats>;
  /** The data table (same name in both databases), decision log and lease tables, coordinator id. */
  readonly names: Readonly<{
    table: string;
    logTable: string;
    leaseTable: string;
    coordinatorId: string;
  }>;
}

const UNDEFINED_TABLE = '42P01';

function parentPool(url: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: 3,
    connectionTimeoutMillis: 5_000,
    application_name: 'cw-chaos-2pc-parent',
  });
  pool.on('error', () => {});
  return pool;
}

/** The two-phase commit workload with its `coordinator-kill` fault (see the file's comment). */
export function twoPhaseWorkload(options: TwoPhaseWorkloadOptions = {}): TwoPhaseWorkload {
  const concurrency = options.concurrency ?? 2;
  const prepareTimeoutMs = options.prepareTimeoutMs ?? 1_500;
  const recoveryLeaseTtlMs = options.recoveryLeaseTtlMs ?? 1_500;
  const commitWaitMs = options.commitWaitMs ?? 3_000;
  const killModes = options.killModes ?? KILL_MODES;
  const armTimeoutMs = options.armTimeoutMs ?? 4_000;
  const maxDelayMs = options.maxDelayMs ?? 300;
  const suffix = randomBytes(4).toString('hex');
  const names = {
    table: `chaos_2pc_${suffix}`,
    logTable: `chaos_2pc_log_${suffix}`,
    leaseTable: `chaos_2pc_lease_${suffix}`,
    coordinatorId: `chaos-${suffix}`,
  };
  const prefix = coordinatorPrefix(names.coordinatorId);
  const applicationName = (start: number) => `${names.coordinatorId}-${start}`;

  const stats: TwoPhaseStats = {
    transactions: 0,
    committed: 0,
    aborted: 0,
    inDoubt: 0,
    failed: 0,
    kills: 0,
    killsByMode: {},
    killsAtStep: 0,
    killsAtTimeout: 0,
    coordinatorStarts: 0,
    inDoubtAfterKills: 0,
    inDoubtCommitted: 0,
    inDoubtRolledBack: 0,
    snapshotsMissed: 0,
    recoveryErrors: 0,
    heuristics: 0,
    finalRecovery: { rounds: 0, committed: 0, rolledBack: 0, presumedAborted: 0, forgotten: 0 },
  };
  const gids = new Map<string, GidStatus>();
  const inDoubtAfterKill = new Map<string, InDoubtAfterKill>();
  /** Broken invariants seen while running (unexpected exits, heuristics, unhandled errors). */
  const runFailures: string[] = [];
  const events: string[] = [];

  let cluster: Cluster | undefined;
  let users: pg.Pool | undefined;
  let perms: pg.Pool | undefined;
  let log: (event: string) => void = () => {};
  let child: ChildHandle<TwoPhaseCommand> | undefined;
  let incarnation = 0;
  /** Set while this workload itself kills the child, so the exit is not "unexpected". */
  let killing = false;
  let stopping = false;
  let faults: Promise<unknown> = Promise.resolve();

  const note = (line: string) => {
    events.push(`${new Date().toISOString()} ${line}`);
    log(`two-phase: ${line}`);
  };

  const onEvent = (raw: unknown) => {
    const event = raw as TwoPhaseEvent;
    switch (event.t) {
      case 'begin':
        stats.transactions++;
        gids.set(event.gid, 'begun');
        break;
      case 'committed':
        stats.committed++;
        gids.set(event.gid, 'committed');
        break;
      case 'aborted':
        stats.aborted++;
        gids.set(event.gid, 'aborted');
        break;
      case 'in-doubt':
        stats.inDoubt++;
        gids.set(event.gid, event.decision === 'commit' ? 'in-doubt-commit' : 'in-doubt');
        break;
      case 'failed':
        stats.failed++;
        if (event.gid !== undefined) gids.set(event.gid, 'failed');
        break;
      case 'dying':
        stats.killsAtStep++;
        note(`coordinator stops dead at ${event.step} ${event.participant ?? ''} of ${event.gid}`);
        break;
      case 'heuristic':
        stats.heuristics++;
        runFailures.push(
          `heuristic outcome: branch ${event.gid} on ${event.participant} is ${event.observed}`,
        );
        break;
      case 'recovery-error':
        stats.recoveryErrors++;
        break;
      case 'unhandled':
        runFailures.push(`unhandled rejection in the coordinator process: ${event.message}`);
        break;
      default:
        break;
    }
  };

  const childConfig = (): TwoPhaseChildConfig => ({
    usersUrl: cluster!.primary.url,
    permsUrl: cluster!.primary2.url,
    ...names,
    applicationName: applicationName(incarnation),
    incarnation,
    concurrency,
    thinkMs: options.thinkMs ?? 25,
    prepareTimeoutMs,
    commitWaitMs,
    recoveryIntervalMs: options.recoveryIntervalMs ?? 300,
    recoveryLeaseTtlMs,
  });

  /** Starts a coordinator process and resolves once it runs (or has died). */
  const startChild = async (): Promise<void> => {
    incarnation++;
    stats.coordinatorStarts++;
    const handle = spawnChild<TwoPhaseCommand>(
      CHILD_SCRIPT,
      [JSON.stringify(childConfig())],
      onEvent,
    );
    child = handle;
    void handle.exited.then(async (exit) => {
      if (killing || stopping) return;
      runFailures.push(
        `coordinator process exited unexpectedly (code ${exit.code}, signal ${exit.signal}): ` +
          handle.stderrTail().slice(-500),
      );
      // Keep the workload going, as a supervisor would (not if it cannot even start).
      if ((await handle.ready) && child === handle) void startChild();
    });
    await handle.ready;
  };

  /** Resolves once no server connection of the dead coordinator remains on `pool`'s server. */
  const waitForBackendsGone = async (pool: pg.Pool, dead: number): Promise<boolean> => {
    const deadline = performance.now() + 10_000;
    while (performance.now() < deadline) {
      const { rows } = await pool.query(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
        [applicationName(dead)],
      );
      if (rows[0].n === 0) return true;
      await sleep(50);
    }
    return false;
  };

  /** Notes the transactions a kill left prepared and whether their commit decision is logged. */
  const snapshotAfterKill = async (kill: number, dead: number): Promise<void> => {
    try {
      if (
        !(await waitForBackendsGone(users!, dead)) ||
        !(await waitForBackendsGone(perms!, dead))
      ) {
        throw new Error('the dead coordinator still has server connections after 10 s');
      }
      const branches = [...(await preparedOn(users!)), ...(await preparedOn(perms!))];
      const decisions = await decisionsIn(users!);
      for (const branch of branches) {
        const txnGid = tryParseGid(branch)?.txnGid;
        if (txnGid === undefined) continue;
        const known = inDoubtAfterKill.get(txnGid);
        if (known !== undefined) {
          known.branches.push(branch);
          continue;
        }
        stats.inDoubtAfterKills++;
        inDoubtAfterKill.set(txnGid, { kill, branches: [branch], decision: decisions.get(txnGid) });
      }
      note(`kill ${kill} left ${branches.length} prepared branch(es)`);
    } catch (error) {
      stats.snapshotsMissed++;
      note(`kill ${kill}: no snapshot (${error instanceof Error ? error.message : error})`);
    }
  };

  const preparedOn = async (pool: pg.Pool, all = false): Promise<string[]> => {
    const { rows } = await pool.query(
      `SELECT gid FROM pg_prepared_xacts ${all ? '' : 'WHERE starts_with(gid, $1)'}`,
      all ? [] : [prefix],
    );
    return rows.map((row) => String(row.gid));
  };

  const decisionsIn = async (pool: pg.Pool): Promise<Map<string, 'commit' | 'abort'>> => {
    try {
      const { rows } = await pool.query(
        `SELECT gid, decision FROM ${names.logTable} WHERE starts_with(gid, $1)`,
        [prefix],
      );
      return new Map(rows.map((row) => [String(row.gid), row.decision]));
    } catch (error) {
      if ((error as { code?: string }).code === UNDEFINED_TABLE) return new Map();
      throw error;
    }
  };

  const killCoordinator = async (ctx: ChaosContext): Promise<void> => {
    if (stopping || child === undefined) return;
    // Every choice is drawn before the first await, so a seed replays them.
    const mode = ctx.rng.pick(killModes);
    const killDelayMs = ctx.rng.int(0, maxDelayMs);
    const restartDelayMs = ctx.rng.int(0, maxDelayMs);
    const target = child;
    const dead = incarnation;
    stats.kills++;
    stats.killsByMode[mode] = (stats.killsByMode[mode] ?? 0) + 1;
    const kill = stats.kills;
    killing = true;
    try {
      if (mode === 'any-moment') {
        await sleep(killDelayMs);
        target.kill('SIGKILL');
      } else {
        const [step, participant] = mode.split(':') as [KillPoint['step'], string | undefined];
        target.send({ c: 'arm', at: participant === undefined ? { step } : { step, participant } });
        const landed = await Promise.race([
          target.exited.then(() => true),
          sleep(armTimeoutMs).then(() => false),
        ]);
        if (!landed) {
          stats.killsAtTimeout++;
          target.kill('SIGKILL');
        }
      }
      const exit = await target.exited;
      note(`kill ${kill} (${mode}) of coordinator ${dead}: ${exit.signal ?? exit.code}`);
      await snapshotAfterKill(kill, dead);
      await sleep(restartDelayMs);
    } finally {
      killing = false;
    }
    if (!stopping) await startChild();
  };

  const fault: Fault = {
    kind: 'coordinator-kill',
    inject(ctx) {
      const run = faults.then(() => killCoordinator(ctx));
      faults = run.catch(() => {});
      return run;
    },
  };

  /** A coordinator in this process for the final recovery rounds. */
  const recoveryCoordinator = () => {
    const heuristics: string[] = [];
    const coordinator = new TwoPhaseCoordinator({
      coordinatorId: names.coordinatorId,
      log: new PgDecisionLog({ pool: users!, table: names.logTable }),
      participants: {
        users: new PgParticipant({ pool: users! }),
        perms: new PgParticipant({ pool: perms! }),
      },
      leases: new PgLeaseManager({ pool: users!, table: names.leaseTable }),
      recoveryLeaseTtlMs,
      prepareTimeoutMs,
      onHeuristic: (event) =>
        heuristics.push(`heuristic outcome in final recovery: ${event.gid} is ${event.observed}`),
    });
    return { coordinator, heuristics };
  };

  /** Runs recovery rounds until nothing of this coordinator is prepared and a round is clean. */
  const recoverToCompletion = async (): Promise<string[]> => {
    const { coordinator, heuristics } = recoveryCoordinator();
    const deadline = performance.now() + (options.recoveryDeadlineMs ?? 60_000);
    let lastProblem = 'no round ran';
    try {
      while (performance.now() < deadline) {
        try {
          const report = await coordinator.recover();
          const final = stats.finalRecovery;
          final.rounds++;
          final.committed += report.committed.length;
          final.rolledBack += report.rolledBack.length;
          final.presumedAborted += report.presumedAborted.length;
          final.forgotten += report.forgotten.length;
          const left = [...(await preparedOn(users!)), ...(await preparedOn(perms!))];
          if (report.failures.length === 0 && left.length === 0) return heuristics;
          lastProblem = `${left.length} branch(es) still prepared, ${report.failures.length} failure(s)`;
        } catch (error) {
          // The lease of a killed coordinator lapses after its ttl; a server may be restarting.
          lastProblem = isCausewayError(error, ErrorCode.LEASE_NOT_HELD)
            ? 'recovery lease held elsewhere'
            : String(error);
        }
        await sleep(200);
      }
      return [...heuristics, `recovery did not complete: ${lastProblem}`];
    } finally {
      await coordinator.close();
    }
  };

  const rowsIn = async (pool: pg.Pool): Promise<Set<string>> =>
    new Set((await pool.query(`SELECT gid FROM ${names.table}`)).rows.map((r) => String(r.gid)));

  return {
    name: 'two-phase',
    faults: [fault],
    stats,
    names,

    async start(ctx) {
      cluster = ctx.cluster;
      log = (event) => ctx.log(event);
      users = parentPool(ctx.cluster.primary.url);
      perms = parentPool(ctx.cluster.primary2.url);
      const ddl = `CREATE TABLE IF NOT EXISTS ${names.table} (
        gid text PRIMARY KEY, incarnation int NOT NULL, seq int NOT NULL)`;
      await Promise.all([users.query(ddl), perms.query(ddl)]);
      await startChild();
      note(`started coordinator ${names.coordinatorId}`);
    },

    async stop() {
      stopping = true;
      await faults;
      const last = child;
      if (last === undefined) return;
      last.send({ c: 'stop' });
      const exited = await Promise.race([
        last.exited.then(() => true),
        sleep(commitWaitMs + 10_000).then(() => false),
      ]);
      if (!exited) {
        note('coordinator did not stop in time: SIGKILL');
        last.kill('SIGKILL');
        await last.exited;
      }
    },

    async verify(): Promise<WorkloadReport> {
      const failures = [...runFailures];
      let lostWrites = 0;
      let violations = 0;
      failures.push(...(await recoverToCompletion()));

      const [inUsers, inPerms] = await Promise.all([rowsIn(users!), rowsIn(perms!)]);
      const everywhere = (gid: string) => inUsers.has(gid) && inPerms.has(gid);
      const nowhere = (gid: string) => !inUsers.has(gid) && !inPerms.has(gid);
      for (const gid of new Set([...inUsers, ...inPerms])) {
        if (!everywhere(gid)) {
          lostWrites++;
          failures.push(`half-applied: ${gid} only in ${inUsers.has(gid) ? 'users' : 'perms'}`);
        }
        if (!gids.has(gid)) {
          violations++;
          failures.push(`row of a transaction no client began: ${gid}`);
        }
      }
      for (const [gid, status] of gids) {
        if ((status === 'committed' || status === 'in-doubt-commit') && !everywhere(gid)) {
          lostWrites++;
          failures.push(`acknowledged (${status}) but missing: ${gid}`);
        }
        if (status === 'aborted' && !nowhere(gid)) {
          violations++;
          failures.push(`TXN_ABORTED but present: ${gid}`);
        }
      }
      for (const [gid, { kill, decision }] of inDoubtAfterKill) {
        if (everywhere(gid)) stats.inDoubtCommitted++;
        if (nowhere(gid)) stats.inDoubtRolledBack++;
        const expected = decision === 'commit' ? everywhere(gid) : nowhere(gid);
        if (!expected) {
          violations++;
          failures.push(
            `in doubt after kill ${kill} with decision ${decision ?? 'none'} ended ` +
              `${everywhere(gid) ? 'committed' : nowhere(gid) ? 'rolled back' : 'half-applied'}: ${gid}`,
          );
        }
      }

      for (const [name, pool] of [
        ['primary', users!],
        ['primary2', perms!],
      ] as const) {
        const left = await preparedOn(pool, true);
        if (left.length > 0) {
          violations += left.length;
          failures.push(`pg_prepared_xacts on ${name} not empty: ${left.join(', ')}`);
        }
      }
      const decisions = await decisionsIn(users!);
      for (const [gid, decision] of decisions) {
        if (decision === 'commit') {
          violations++;
          failures.push(`commit decision not forgotten after recovery: ${gid}`);
        } else if (!nowhere(gid)) {
          violations++;
          failures.push(`abort decision but rows present: ${gid}`);
        }
      }

      // A failed run keeps its tables for a post-mortem.
      if (failures.length === 0) {
        await users!.query(
          `DROP TABLE IF EXISTS ${names.table}, ${names.logTable}, ${names.leaseTable}`,
        );
        await perms!.query(`DROP TABLE IF EXISTS ${names.table}`);
      }
      await Promise.allSettled([users!.end(), perms!.end()]);

      const modes = Object.entries(stats.killsByMode).map(([mode, n]) => `${mode} ${n}`);
      const notes = [
        `${stats.kills} coordinator kills (${modes.join(', ') || 'none'}; ` +
          `${stats.killsAtStep} stopped a transaction at its step, ${stats.killsAtTimeout} ` +
          `fell back to a plain SIGKILL), ${stats.inDoubtAfterKills} transactions left in doubt: ` +
          `${stats.inDoubtCommitted} committed and ${stats.inDoubtRolledBack} rolled back by recovery`,
      ];
      return {
        workload: 'two-phase',
        operations: stats.transactions,
        violations,
        lostWrites,
        staleWritesRejected: 0,
        staleWritesAccepted: 0,
        failures,
        notes,
        history: {
          names,
          stats,
          events,
          inDoubtAfterKill: Object.fromEntries(inDoubtAfterKill),
          transactions: Object.fromEntries(gids),
          stderr: child?.stderrTail(),
        },
      };
    },
  };
}
