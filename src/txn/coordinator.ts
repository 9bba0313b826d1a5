import type { Span } from '@opentelemetry/api';
import { configError, ErrorCode, isCausewayError } from '../errors.js';
import { functionOption, knownOptions } from '../options.js';
import { Attr, addToCounter, CounterName, SpanName, withSpan } from '../telemetry.js';
import { Deadlines } from './deadlines.js';
import { DecisionBatcher } from './decision-batcher.js';
import type { DecisionLog } from './decision-log.js';
import { assertCoordinatorConfig, newTxnGid } from './gid.js';
import type {
  TransactionOptions,
  TransactionResult,
  TwoPhaseCoordinatorOptions,
  TwoPhaseTransaction,
} from './options.js';
import type { ParticipantBranch } from './participant.js';
import { CommitProtocol } from './protocol.js';
import { aborted, type ProtocolConfig, StoppedAtStep } from './protocol-base.js';
import { Recoverer, type RecoveryReport } from './recovery.js';
import { TransactionScope } from './scope.js';

export type {
  TransactionBranch,
  TransactionOptions,
  TransactionResult,
  TwoPhaseCoordinatorOptions,
  TwoPhaseHooks,
  TwoPhaseOptimizations,
  TwoPhaseStep,
  TwoPhaseStepInfo,
  TwoPhaseTransaction,
} from './options.js';

interface Resolved extends ProtocolConfig {
  coordinatorId: string;
  transactionTimeoutMs: number;
  onRecoveryError: (error: unknown) => void;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const resolved = value ?? fallback;
  if (!Number.isFinite(resolved) || resolved < 0) {
    throw configError(`${name} must be a non-negative number of milliseconds`, { [name]: value });
  }
  return resolved;
}

/** The optimizations' switches, and what they need from the log and participants. */
function resolveOptimizations(
  options: TwoPhaseCoordinatorOptions,
  log: DecisionLog,
): Pick<ProtocolConfig, 'onePhase' | 'readOnly' | 'logParticipant' | 'batcher'> {
  const switches = knownOptions(options.optimizations ?? {}, 'TwoPhaseCoordinator: optimizations', [
    'onePhase',
    'readOnly',
    'commitWithLog',
    'batchDecisions',
  ]);
  for (const [name, value] of Object.entries(switches)) {
    if (typeof value !== 'boolean' && value !== undefined) {
      throw configError(`optimizations.${name} must be a boolean`);
    }
  }
  const named = options.logParticipant;
  if (
    named !== undefined &&
    (typeof named !== 'string' || !Object.hasOwn(options.participants, named))
  ) {
    throw configError('logParticipant must name one of the participants');
  }
  if (named !== undefined && typeof log.commitInBranch !== 'function') {
    throw configError('logParticipant needs a log that can record in a branch (commitInBranch)');
  }
  let logParticipant: string | undefined;
  if (switches.commitWithLog !== false && typeof log.commitInBranch === 'function') {
    logParticipant =
      named ??
      Object.entries(options.participants).find(
        ([, participant]) => log.colocatedWith?.(participant) === true,
      )?.[0];
  }
  const recordMany = log.recordMany;
  return {
    onePhase: switches.onePhase !== false,
    readOnly: switches.readOnly !== false,
    logParticipant,
    batcher:
      switches.batchDecisions === true && typeof recordMany === 'function'
        ? new DecisionBatcher(log, recordMany)
        : undefined,
  };
}

function warn(message: string, type: string): void {
  process.emitWarning(message, type);
}

/**
 * Two-phase commit over participants that can prepare (PostgreSQL prepared transactions).
 *
 * `transaction(fn)` runs `fn`, prepares every branch it touched in parallel, records the commit
 * decision in the log (the commit point) and commits the branches in parallel, retrying until
 * each is done. Any failure before the decision rolls everything back (`TXN_ABORTED`).
 * Cheaper paths are taken when they are safe (each can be switched off, see
 * `TwoPhaseOptimizations`): branches that wrote nothing end at once; a transaction with one
 * writer commits it in one phase; when the log lives in a writer's database, that writer is not
 * prepared and its own commit records the decision; concurrent decisions are written together.
 *
 * It resolves once every branch has committed (with `phaseTwo: 'background'`: once the commit
 * decision is durable, see that option for what a caller then sees). If that takes longer than
 * `commitWaitMs` (a participant is unreachable) it rejects with `TXN_IN_DOUBT` whose
 * `details.decision` says what was decided (`'commit'`, or `'unknown'` when the log could not
 * be reached): a commit decision is durable and will be applied by the background retries or
 * by recovery, never half-applied.
 * A one-phase commit whose reply is lost is `TXN_IN_DOUBT` with
 * `decision: 'unknown'` (as a plain transaction would be). A transaction that touched no
 * participant, or wrote nothing, commits without a decision record.
 */
export class TwoPhaseCoordinator {
  private readonly options: Resolved;
  private readonly recoverer: Recoverer;
  /** Phase-two retries that outlived their `transaction()` call. */
  private readonly background = new Set<Promise<unknown>>();
  /** Every deadline of every transaction, on one timer. */
  private readonly deadlines = new Deadlines();
  private readonly protocol: CommitProtocol;
  private readonly slots: Slots;
  private closed = false;
  /** Set once the log's `ready()` has resolved. */
  private logReady = false;

  constructor(options: TwoPhaseCoordinatorOptions) {
    const { coordinatorId, log, participants } = knownOptions(options, 'TwoPhaseCoordinator', [
      'coordinatorId',
      'log',
      'participants',
      'logParticipant',
      'optimizations',
      'phaseTwo',
      'prepareTimeoutMs',
      'maxConcurrentTransactions',
      'transactionTimeoutMs',
      'commitWaitMs',
      'retryInitialDelayMs',
      'retryMaxDelayMs',
      'abortRetentionMs',
      'leases',
      'recoveryLeaseTtlMs',
      'onHeuristic',
      'onRecoveryError',
      'hooks',
    ]);
    if (typeof coordinatorId !== 'string') throw configError('coordinatorId is required');
    if (log === undefined || log === null) throw configError('log (a DecisionLog) is required');
    const names = Object.keys(participants ?? {});
    if (names.length === 0) throw configError('participants must name at least one participant');
    assertCoordinatorConfig(coordinatorId, names);
    for (const [name, participant] of Object.entries(participants)) {
      if (typeof participant?.begin !== 'function') {
        throw configError(`participant "${name}" is not a Participant (no begin())`);
      }
    }
    // Callbacks and the lease manager are used long after construction: check them now.
    functionOption('onHeuristic', options.onHeuristic);
    functionOption('onRecoveryError', options.onRecoveryError);
    if (options.hooks !== undefined) {
      functionOption(
        'hooks.onStep',
        knownOptions(options.hooks, 'TwoPhaseCoordinator: hooks', ['onStep']).onStep,
      );
    }
    if (options.leases !== undefined && typeof options.leases?.acquire !== 'function') {
      throw configError('leases must be a LeaseManager (with acquire)');
    }
    const retryInitialDelayMs = positive('retryInitialDelayMs', options.retryInitialDelayMs, 50);
    const maxConcurrent = options.maxConcurrentTransactions ?? Number.POSITIVE_INFINITY;
    if (typeof maxConcurrent !== 'number' || !(maxConcurrent >= 1))
      throw configError('maxConcurrentTransactions must be at least 1');
    this.slots = new Slots(maxConcurrent);
    const phaseTwo = options.phaseTwo ?? 'await';
    if (phaseTwo !== 'await' && phaseTwo !== 'background') {
      throw configError("phaseTwo must be 'await' or 'background'", { phaseTwo });
    }
    this.options = {
      coordinatorId,
      log,
      participants: new Map(Object.entries(participants)),
      prepareTimeoutMs: positive('prepareTimeoutMs', options.prepareTimeoutMs, 30_000),
      transactionTimeoutMs: positive('transactionTimeoutMs', options.transactionTimeoutMs, 60_000),
      commitWaitMs: positive('commitWaitMs', options.commitWaitMs, 10_000),
      retryInitialDelayMs: Math.max(1, retryInitialDelayMs),
      retryMaxDelayMs: positive('retryMaxDelayMs', options.retryMaxDelayMs, 2_000),
      onHeuristic:
        options.onHeuristic ??
        ((event) =>
          warn(
            `heuristic outcome: branch ${event.gid} on ${event.participant} is ${event.observed} ` +
              `although the decision was ${event.decision}`,
            'CausewayHeuristicWarning',
          )),
      onRecoveryError:
        options.onRecoveryError ??
        ((error) => warn(`2PC recovery round failed: ${String(error)}`, 'CausewayRecoveryWarning')),
      onStep: options.hooks?.onStep,
      backgroundPhaseTwo: phaseTwo === 'background',
      ...resolveOptimizations(options, log),
    };
    this.protocol = new CommitProtocol(this.options, {
      deadlines: this.deadlines,
      isClosed: () => this.closed,
      track: (task) => this.track(task),
    });
    this.recoverer = new Recoverer(
      {
        coordinatorId,
        log,
        participants: this.options.participants,
        prepareTimeoutMs: this.options.prepareTimeoutMs,
        abortRetentionMs: positive('abortRetentionMs', options.abortRetentionMs, 3_600_000),
        onHeuristic: this.options.onHeuristic,
      },
      {
        leases: options.leases,
        leaseTtlMs: Math.max(1, positive('recoveryLeaseTtlMs', options.recoveryLeaseTtlMs, 30_000)),
      },
    );
  }

  get coordinatorId(): string {
    return this.options.coordinatorId;
  }

  /**
   * Runs `fn` as one atomic transaction over the participants it touches. Resolves to
   * `{ gid, outcome: 'committed', result }`; rejects with `TXN_ABORTED` (cause attached) when
   * anything fails before the commit decision, with `TXN_IN_DOUBT` as described on the class,
   * and with `fn`'s own `INVALID_INPUT`/`CONFIG` errors unchanged (after rolling back).
   */
  async transaction<T>(
    fn: (tx: TwoPhaseTransaction) => Promise<T> | T,
    options: TransactionOptions = {},
  ): Promise<TransactionResult<T>> {
    if (this.closed) throw configError('the coordinator is closed');
    const timeoutMs = positive(
      'timeoutMs',
      knownOptions(options, 'transaction', ['timeoutMs']).timeoutMs,
      this.options.transactionTimeoutMs,
    );
    const gid = newTxnGid(this.options.coordinatorId);
    return withSpan(
      SpanName.TWO_PC,
      { [Attr.GID]: gid, [Attr.COORDINATOR]: this.options.coordinatorId },
      async (span) => {
        const slot = this.slots.take();
        if (slot !== undefined) await slot;
        let background: Promise<void> | undefined;
        try {
          if (!this.logReady) await this.logIsReady(gid);
          const run = await this.run(gid, fn, timeoutMs, span);
          background = run.background;
          this.count('committed', span);
          return { gid, outcome: 'committed' as const, result: run.result };
        } catch (error) {
          if (error instanceof StoppedAtStep) throw error.error;
          if (isCausewayError(error, ErrorCode.TXN_IN_DOUBT)) this.count('in-doubt', span);
          else this.count('aborted', span);
          throw error;
        } finally {
          // A background phase two keeps its slot: prepared branches stay bounded by it.
          if (background === undefined) this.slots.give();
          else void background.finally(() => this.slots.give());
        }
      },
    );
  }

  /** Runs one recovery round now (under the recovery lease, if `leases` was given). */
  async recover(): Promise<RecoveryReport> {
    if (this.closed) throw configError('the coordinator is closed');
    try {
      return await this.recoverer.runOnce();
    } finally {
      await this.recoverer.releaseUnlessLooping();
    }
  }

  /**
   * Runs recovery every `intervalMs` (default 60 000 ms, unref'd timer) until `close()`. With
   * `leases`, processes that share a coordinator id take turns: one recovers, the others wait.
   */
  startRecovery(options: { intervalMs?: number } = {}): void {
    if (this.closed) throw configError('the coordinator is closed');
    this.recoverer.start(
      Math.max(
        1,
        positive(
          'intervalMs',
          knownOptions(options, 'startRecovery', ['intervalMs']).intervalMs,
          60_000,
        ),
      ),
      this.options.onRecoveryError,
    );
  }

  /**
   * Stops recovery and background phase-two retries (recovery, here or in another process,
   * finishes what they leave), waits for phase-two commits in flight (so a clean close leaves
   * no prepared transaction behind, `phaseTwo: 'background'` included) and releases the
   * recovery lease. Participants and the log belong to the caller and stay open.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.deadlines.close();
    await this.recoverer.close();
    // A task can hand on to another as it settles (phase two past `commitWaitMs`).
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  private async logIsReady(gid: string): Promise<void> {
    try {
      await this.options.log.ready?.();
    } catch (error) {
      throw aborted(gid, 'the decision log is not ready', error);
    }
    this.logReady = true;
  }

  private track(task: Promise<unknown>): void {
    this.background.add(task);
    void task.finally(() => this.background.delete(task));
  }

  private count(outcome: string, span: Span): void {
    span.setAttribute(Attr.OUTCOME, outcome);
    addToCounter(CounterName.TWO_PC_OUTCOMES, { [Attr.OUTCOME]: outcome });
  }

  private async run<T>(
    gid: string,
    fn: (tx: TwoPhaseTransaction) => Promise<T> | T,
    timeoutMs: number,
    span: Span,
  ): Promise<{ result: T; background?: Promise<void> }> {
    const tx = new TransactionScope(gid, this.options.participants);
    const { branches } = tx;
    let result: T;
    try {
      result = await this.deadlines.within(
        // The executor runs fn at once and turns a synchronous throw into a rejection.
        new Promise<T>((resolve) => resolve(fn(tx))),
        timeoutMs,
        () => new Error(`the transaction function ran longer than ${timeoutMs} ms`),
      );
    } catch (error) {
      tx.finished = true;
      await rollbackBegun(branches);
      // Our own typed errors (unknown participant, unpreparable statement, server settings)
      // say more than a wrapper would.
      if (
        isCausewayError(error, ErrorCode.CONFIG) ||
        isCausewayError(error, ErrorCode.INVALID_INPUT)
      ) {
        throw error;
      }
      throw aborted(gid, 'the transaction function failed', error);
    }
    tx.finished = true;
    if (branches.size === 0) return { result };
    span.setAttribute(Attr.PARTICIPANTS, [...branches.keys()]);
    const open = new Map<string, ParticipantBranch>();
    for (const [name, branch] of branches) {
      try {
        open.set(name, await branch);
      } catch (error) {
        await rollbackBegun(branches);
        throw aborted(gid, 'a participant could not begin', error);
      }
    }
    const committed = await this.protocol.commit(gid, open, span);
    return { result, background: committed?.background };
  }
}

/** A counting semaphore (FIFO). */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(size: number) {
    this.free = size;
  }

  take(): Promise<void> | undefined {
    if (this.free > 0) {
      this.free--;
      return undefined;
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  give(): void {
    const next = this.waiting.shift();
    if (next === undefined) this.free++;
    else next();
  }
}

/** Rolls back branches that were begun (their connections go back); ignores failed begins. */
async function rollbackBegun(branches: Map<string, Promise<ParticipantBranch>>): Promise<void> {
  await Promise.allSettled([...branches.values()].map(async (branch) => (await branch).rollback()));
}
