/**
 * Chaos workload for two-phase commit. A child process (`two-phase-child.ts`) runs coordinators
 * (with every optimization, and with none) over the cluster's `primary` ("users", which also
 * keeps the decision log and the recovery lease) and `primary2` ("perms"), with recovery at
 * start-up and every few hundred milliseconds; every transaction inserts a row keyed by its gid
 * into the same table in the databases it writes (both, or one while it reads the other).
 *
 * Fault `coordinator-kill`: SIGKILL of the coordinator at a random moment, or at a seeded step
 * of a transaction through the coordinator's crash-point hook (`KILL_MODES`: every step of
 * every path), then a new coordinator process with the same id, as a supervisor would start.
 * Right after each kill, once the dead process's server connections are gone, the workload
 * notes which transactions it left prepared and whether their commit decision was logged (or
 * committed with the users branch): those must end committed everywhere they wrote if it was,
 * and nowhere if it was not.
 *
 * `verify()` runs recovery to completion, then checks all or nothing (`checkOutcomes`).
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { coordinatorPrefix, tryParseGid } from '../../../src/txn/gid.js';
import { sleep } from '../../../src/util/timers.js';
import type { Cluster } from '../../harness/cluster.js';
import type { ChaosContext, Fault, Workload, WorkloadReport } from '../types.js';
import { type ChildHandle, spawnChild } from './child-process.js';
import {
  checkOutcomes,
  type GidStatus,
  type InDoubtAfterKill,
  KILL_MODES,
  newStats,
  type TwoPhaseStats,
  type TwoPhaseWorkloadOptions,
} from './two-phase-check.js';
import type {
  KillPoint,
  TwoPhaseChildConfig,
  TwoPhaseCommand,
  TwoPhaseDecision,
  TwoPhaseEvent,
  Writes,
} from './two-phase-child.js';
import { recoverToCompletion } from './two-phase-recovery.js';

export {
  KILL_MODES,
  type KillMode,
  type TwoPhaseStats,
  type TwoPhaseWorkloadOptions,
} from './two-phase-check.js';

const CHILD_SCRIPT = fileURLToPath(new URL('./two-phase-child.ts', import.meta.url));

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

  const stats = newStats();
  const gids = new Map<string, GidStatus>();
  const writes = new Map<string, Writes>();
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
        writes.set(event.gid, event.writes);
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

  const decisionsIn = async (pool: pg.Pool): Promise<Map<string, TwoPhaseDecision>> => {
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
      failures.push(
        ...(await recoverToCompletion({
          names,
          users: users!,
          perms: perms!,
          recoveryLeaseTtlMs,
          prepareTimeoutMs,
          deadlineMs: options.recoveryDeadlineMs ?? 60_000,
          stats,
          preparedOn,
        })),
      );

      const [inUsers, inPerms] = await Promise.all([rowsIn(users!), rowsIn(perms!)]);
      const left = {
        primary: await preparedOn(users!, true),
        primary2: await preparedOn(perms!, true),
      };
      const outcome = checkOutcomes({
        inUsers,
        inPerms,
        gids,
        writes,
        inDoubtAfterKill,
        prepared: left,
        decisions: await decisionsIn(users!),
        stats,
      });
      failures.push(...outcome.failures);
      const { lostWrites, violations } = outcome;

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
