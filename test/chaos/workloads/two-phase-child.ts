/**
 * The 2PC coordinator process of the chaos two-phase workload (run by `two-phase.ts` with
 * `node --import tsx`). It is what a deployment runs: a `TwoPhaseCoordinator` over two
 * PostgreSQL participants with its decision log and recovery lease on the first, recovery at
 * start-up and every `recoveryIntervalMs`, and `concurrency` loops of transactions that insert
 * a row keyed by the transaction's gid into the same table in both databases.
 *
 * Three coordinators with the same id share the process, so every path runs in every
 * incarnation: one with every optimization (its log shares the users pool, so the users branch
 * commits with the decision), whose transactions take turns in shape (`SHAPES`: both databases
 * written; users read and perms written, a read-only vote then a one-phase commit; users alone,
 * a one-phase commit); one with none, writing both databases by classic 2PC; and one with every
 * optimization and `phaseTwo: 'background'`, writing both databases (acknowledged at the commit
 * point, perms committed after).
 *
 * Protocol: one JSON event per line on stdout (`TwoPhaseEvent`), written synchronously (stdout
 * is a pipe), so every line written before a SIGKILL reaches the parent. An outcome is written
 * only after `transaction()` settled. Commands arrive as JSON lines on stdin
 * (`TwoPhaseCommand`); when stdin closes (the parent is gone) the process exits.
 */
import { createInterface } from 'node:readline';
import pg from 'pg';
import { PgDecisionLog } from '../../../adapters/pg/decision-log.js';
import { PgLeaseManager } from '../../../adapters/pg/fencing.js';
import { PgParticipant } from '../../../adapters/pg/participant.js';
import { ErrorCode, isCausewayError } from '../../../src/errors.js';
import {
  TwoPhaseCoordinator,
  type TwoPhaseCoordinatorOptions,
  type TwoPhaseStep,
} from '../../../src/txn/coordinator.js';
import { sleep } from '../../../src/util/timers.js';

export interface TwoPhaseChildConfig {
  usersUrl: string;
  permsUrl: string;
  /** Data table, the same name in both databases. */
  table: string;
  logTable: string;
  leaseTable: string;
  coordinatorId: string;
  /** Names this process's server connections, so the parent can tell when they are gone. */
  applicationName: string;
  /** Which start of the coordinator this is (1, 2, ...); written into every row. */
  incarnation: number;
  concurrency: number;
  thinkMs: number;
  prepareTimeoutMs: number;
  commitWaitMs: number;
  recoveryIntervalMs: number;
  recoveryLeaseTtlMs: number;
}

/** A step to die at: `participant` narrows the per-participant steps. */
export interface KillPoint {
  step: TwoPhaseStep;
  participant?: string;
}

export type TwoPhaseCommand = { c: 'arm'; at: KillPoint } | { c: 'stop' };

export type TwoPhaseDecision = 'commit' | 'abort';

/** The participants a transaction writes (it reads `users` when it does not write there). */
export type Writes = readonly ('users' | 'perms')[];

/** The optimized coordinator's shapes, in turn. */
const SHAPES: readonly Writes[] = [['users', 'perms'], ['perms'], ['users']];

export type TwoPhaseEvent =
  | { t: 'ready'; incarnation: number }
  /** `fn` started: the gid may now leave rows, so the parent must account for it. */
  | { t: 'begin'; gid: string; writes: Writes }
  | { t: 'committed'; gid: string }
  | { t: 'aborted'; gid: string; message: string }
  | { t: 'in-doubt'; gid: string; decision: string; message: string }
  | { t: 'failed'; gid?: string; code?: string; message: string }
  | { t: 'dying'; step: TwoPhaseStep; participant?: string; gid: string }
  | { t: 'heuristic'; gid: string; participant: string; observed: string }
  | { t: 'recovery-error'; message: string }
  | { t: 'unhandled'; message: string }
  | { t: 'stopped' };

const emit = (event: TwoPhaseEvent) => process.stdout.write(`${JSON.stringify(event)}\n`);
const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

process.on('unhandledRejection', (error) => emit({ t: 'unhandled', message: message(error) }));

const config = JSON.parse(process.argv[2] ?? '{}') as TwoPhaseChildConfig;
const poolOptions = {
  max: config.concurrency + 2,
  connectionTimeoutMillis: 3_000,
  application_name: config.applicationName,
};
const users = new pg.Pool({ connectionString: config.usersUrl, ...poolOptions });
const perms = new pg.Pool({ connectionString: config.permsUrl, ...poolOptions });
// Idle clients lose their server when it restarts: the pool drops them, nothing to do.
users.on('error', () => {});
perms.on('error', () => {});

let armed: KillPoint | undefined;
const coordinatorOptions = (
  optimized: boolean,
  phaseTwo: 'await' | 'background' = 'await',
): TwoPhaseCoordinatorOptions => ({
  coordinatorId: config.coordinatorId,
  log: new PgDecisionLog({ pool: users, table: config.logTable }),
  participants: {
    users: new PgParticipant({ pool: users }),
    perms: new PgParticipant({ pool: perms }),
  },
  leases: new PgLeaseManager({ pool: users, table: config.leaseTable }),
  recoveryLeaseTtlMs: config.recoveryLeaseTtlMs,
  prepareTimeoutMs: config.prepareTimeoutMs,
  commitWaitMs: config.commitWaitMs,
  maxConcurrentTransactions: config.concurrency,
  retryMaxDelayMs: 250,
  onHeuristic: (event) =>
    emit({
      t: 'heuristic',
      gid: event.gid,
      participant: event.participant,
      observed: event.observed,
    }),
  onRecoveryError: (error) => emit({ t: 'recovery-error', message: message(error) }),
  ...(optimized
    ? {}
    : {
        optimizations: {
          onePhase: false,
          readOnly: false,
          commitWithLog: false,
          batchDecisions: false,
        },
      }),
  phaseTwo,
  hooks: {
    onStep: async (step, info) => {
      const at = armed;
      if (at === undefined || at.step !== step) return;
      if (at.participant !== undefined && at.participant !== info.participant) return;
      // Once the caller's continuation ran: the transaction is reported committed, then it dies.
      if (step === 'background-phase-two') await new Promise((resolve) => setImmediate(resolve));
      emit({
        t: 'dying',
        step,
        gid: info.gid,
        ...(info.participant === undefined ? {} : { participant: info.participant }),
      });
      process.kill(process.pid, 'SIGKILL');
    },
  },
});
const optimized = new TwoPhaseCoordinator(coordinatorOptions(true));
const classic = new TwoPhaseCoordinator(coordinatorOptions(false));
const background = new TwoPhaseCoordinator(coordinatorOptions(true, 'background'));

let running = true;
let sequence = 0;

async function transactionLoop(): Promise<void> {
  while (running) {
    let gid: string | undefined;
    const seq = ++sequence;
    try {
      // Turns: optimized (shapes in turn), classic, background phase two.
      const turn = seq % 3;
      const writes = turn === 1 ? SHAPES[Math.floor(seq / 3) % SHAPES.length]! : SHAPES[0]!;
      const coordinator = turn === 1 ? optimized : turn === 2 ? classic : background;
      const result = await coordinator.transaction(async (tx) => {
        gid = tx.gid;
        emit({ t: 'begin', gid, writes });
        const insert = `INSERT INTO ${config.table} (gid, incarnation, seq) VALUES ($1, $2, $3)`;
        const values = [tx.gid, config.incarnation, seq];
        await Promise.all(
          (['users', 'perms'] as const).map((name) =>
            writes.includes(name)
              ? tx.participant(name).query(insert, values)
              : tx.participant(name).query(`SELECT count(*) FROM ${config.table}`),
          ),
        );
      });
      emit({ t: 'committed', gid: result.gid });
    } catch (error) {
      if (gid !== undefined && isCausewayError(error, ErrorCode.TXN_ABORTED)) {
        emit({ t: 'aborted', gid, message: message(error) });
      } else if (gid !== undefined && isCausewayError(error, ErrorCode.TXN_IN_DOUBT)) {
        const decision = String(error.details['decision'] ?? 'unknown');
        emit({ t: 'in-doubt', gid, decision, message: message(error) });
      } else {
        emit({
          t: 'failed',
          ...(gid === undefined ? {} : { gid }),
          ...(isCausewayError(error) ? { code: error.code } : {}),
          message: message(error),
        });
      }
      // A server is likely down: do not spin.
      await sleep(50);
    }
    if (config.thinkMs > 0) await sleep(config.thinkMs);
  }
}

async function shutdown(): Promise<never> {
  running = false;
  await Promise.allSettled(loops);
  await Promise.all([optimized.close(), classic.close(), background.close()]);
  await Promise.allSettled([users.end(), perms.end()]);
  emit({ t: 'stopped' });
  process.exit(0);
}

const commands = createInterface({ input: process.stdin });
commands.on('line', (line) => {
  const command = JSON.parse(line) as TwoPhaseCommand;
  if (command.c === 'arm') armed = command.at;
  else void shutdown();
});
// The parent is gone (however it ended): a coordinator without a supervisor stops dead.
commands.on('close', () => {
  if (running) process.kill(process.pid, 'SIGKILL');
});

// Recovery at start-up and then periodically, as a deployment runs it.
// (Recovery does not depend on the optimizations: one coordinator runs it.)
classic.startRecovery({ intervalMs: config.recoveryIntervalMs });
const loops = Array.from({ length: config.concurrency }, () => transactionLoop());
emit({ t: 'ready', incarnation: config.incarnation });
