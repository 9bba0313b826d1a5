import { performance } from 'node:perf_hooks';
import type { Span } from '@opentelemetry/api';
import {
  CausewayError,
  configError,
  ErrorCode,
  functionOption,
  invalidInput,
  isCausewayError,
  optionsObject,
} from '../errors.js';
import { Attr, addToCounter, CounterName, SpanName, withSpan } from '../telemetry.js';
import { withTimeout } from '../util/timers.js';
import type { DecisionLog, DecisionRecord } from './decision-log.js';
import type { LeaseManager } from './fencing.js';
import { assertCoordinatorConfig, branchGid, newTxnGid } from './gid.js';
import type {
  Participant,
  ParticipantBranch,
  ParticipantQueryResult,
  PreparedInfo,
} from './participant.js';
import {
  type BranchFinish,
  finishBranch,
  type HeuristicEvent,
  Recoverer,
  type RecoveryReport,
  reportHeuristic,
} from './recovery.js';

/**
 * The points at which a test can stop a transaction dead, in order: `before-prepare` (once),
 * `after-prepare` (once per participant, as its prepare succeeds), `after-decision` (once the
 * commit decision is durable), `after-commit` (once per participant, as its commit succeeds).
 */
export type TwoPhaseStep = 'before-prepare' | 'after-prepare' | 'after-decision' | 'after-commit';

export interface TwoPhaseStepInfo {
  /** The transaction's gid. */
  readonly gid: string;
  /** The participant, for the per-participant steps. */
  readonly participant?: string;
}

/**
 * For tests only: crash-point injection. `onStep` is awaited at every step; a test kills its
 * process there (e.g. `process.kill(process.pid, 'SIGKILL')`) or throws. A throw acts like a
 * crash of the coordinator at that step: `transaction()` rejects with the thrown error and does
 * nothing more (branches not yet prepared are rolled back, as a dropped connection would be;
 * prepared ones are left to recovery).
 */
export interface TwoPhaseHooks {
  onStep?(step: TwoPhaseStep, info: TwoPhaseStepInfo): void | Promise<void>;
}

export interface TwoPhaseCoordinatorOptions {
  /**
   * Names this coordinator in every gid; recovery only ever touches gids with its prefix, so
   * give each independent coordinator (service, not process) its own id. Letters, digits,
   * `_`, `.`, `-`; short enough for gids to stay under PostgreSQL's 200 bytes (else `CONFIG`).
   */
  coordinatorId: string;
  /** Where decisions are recorded (the commit point), e.g. `PgDecisionLog` on one participant's database. */
  log: DecisionLog;
  /** The participants by name (names follow the `coordinatorId` rules). */
  participants: Readonly<Record<string, Participant>>;
  /**
   * Longest the prepare phase may take; a transaction whose prepares take longer is aborted.
   * Recovery presumes abort only for undecided branches older than this, so it must exceed any
   * real prepare phase. Default: 30 000 ms.
   */
  prepareTimeoutMs?: number;
  /**
   * Most transactions run at once; more wait their turn. Prepared branches hold no connection,
   * and phase two queues for the participant's pool behind new branches, so under a burst
   * the number of prepared branches on a server is bounded by this, not by the pool's size:
   * keep it at most `max_prepared_transactions` (less what others prepare there), or PREPARE
   * fails with "maximum number of prepared transactions reached" (`TXN_ABORTED`).
   * Default: unlimited.
   */
  maxConcurrentTransactions?: number;
  /** Default for `transaction(fn, { timeoutMs })`: how long `fn` may run. Default: 60 000 ms. */
  transactionTimeoutMs?: number;
  /**
   * How long `transaction()` keeps trying to record the decision and to finish phase two before
   * it rejects with `TXN_IN_DOUBT` (phase two then goes on in the background, and recovery
   * finishes whatever remains). Default: 10 000 ms.
   */
  commitWaitMs?: number;
  /** First delay between phase-two retries, doubled up to `retryMaxDelayMs`. Default: 50 ms. */
  retryInitialDelayMs?: number;
  /** Largest delay between phase-two retries. Default: 2 000 ms. */
  retryMaxDelayMs?: number;
  /**
   * How long recovery keeps abort decisions. They stop a coordinator that stalled for longer
   * than the prepare timeout (and then this long) from committing what recovery already rolled
   * back. Default: 3 600 000 ms (one hour).
   */
  abortRetentionMs?: number;
  /**
   * Recovery takes a lease `causeway:2pc:recovery:<coordinatorId>` from this manager, so one
   * process at a time recovers this coordinator's transactions. Default: none (every caller of
   * `recover()` recovers; still safe, as the decision log is write-once, but duplicated work).
   */
  leases?: LeaseManager;
  /** Time to live of the recovery lease, renewed while recovery runs. Default: 30 000 ms. */
  recoveryLeaseTtlMs?: number;
  /**
   * Called when a branch's outcome contradicts the logged decision (someone committed or rolled
   * it back by hand). Default: `process.emitWarning` with type `CausewayHeuristicWarning`.
   */
  onHeuristic?: (event: HeuristicEvent) => void;
  /** Called with errors of background recovery rounds. Default: `process.emitWarning`. */
  onRecoveryError?: (error: unknown) => void;
  /** Crash-point injection, for tests only. Default: none. */
  hooks?: TwoPhaseHooks;
}

export interface TransactionOptions {
  /** How long `fn` may run before the transaction is aborted. Default: `transactionTimeoutMs`. */
  timeoutMs?: number;
}

/** A branch as `fn` sees it: statements run in the participant's transaction. */
export interface TransactionBranch {
  query<Row = Record<string, unknown>>(
    text: string,
    values?: readonly unknown[],
  ): Promise<ParticipantQueryResult<Row>>;
}

/** What `fn` receives. */
export interface TwoPhaseTransaction {
  readonly gid: string;
  /** The branch on participant `name` (begun on first query). Unknown name: `INVALID_INPUT`. */
  participant(name: string): TransactionBranch;
}

export interface TransactionResult<T> {
  readonly gid: string;
  readonly outcome: 'committed';
  readonly result: T;
}

/** A step hook threw: the coordinator stops dead there (see `TwoPhaseHooks`). */
class StoppedAtStep {
  constructor(readonly error: unknown) {}
}

interface Resolved {
  coordinatorId: string;
  log: DecisionLog;
  participants: ReadonlyMap<string, Participant>;
  prepareTimeoutMs: number;
  transactionTimeoutMs: number;
  commitWaitMs: number;
  retryInitialDelayMs: number;
  retryMaxDelayMs: number;
  onHeuristic: (event: HeuristicEvent) => void;
  onRecoveryError: (error: unknown) => void;
  onStep: TwoPhaseHooks['onStep'];
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const resolved = value ?? fallback;
  if (!Number.isFinite(resolved) || resolved < 0) {
    throw configError(`${name} must be a non-negative number of milliseconds`, { [name]: value });
  }
  return resolved;
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
 *
 * It resolves once every branch has committed. If that takes longer than `commitWaitMs` (a
 * participant is unreachable) it rejects with `TXN_IN_DOUBT` whose `details.decision` says what
 * was decided (`'commit'`, or `'unknown'` when the log could not be reached): a commit decision
 * is durable and will be applied by the background retries or by recovery, never half-applied.
 * Every transaction uses two-phase commit, even with one participant, so that every outcome
 * goes through the same log and recovery. A transaction that touched no participant commits
 * trivially (nothing is logged).
 */
export class TwoPhaseCoordinator {
  private readonly options: Resolved;
  private readonly recoverer: Recoverer;
  /** Phase-two retries that outlived their `transaction()` call. */
  private readonly background = new Set<Promise<unknown>>();
  private readonly sleepers = new Set<() => void>();
  private readonly slots: Slots;
  private closed = false;

  constructor(options: TwoPhaseCoordinatorOptions) {
    const { coordinatorId, log, participants } = optionsObject(options, 'TwoPhaseCoordinator');
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
      functionOption('hooks.onStep', optionsObject(options.hooks, 'hooks').onStep);
    }
    if (options.leases !== undefined && typeof options.leases?.acquire !== 'function') {
      throw configError('leases must be a LeaseManager (with acquire)');
    }
    const retryInitialDelayMs = positive('retryInitialDelayMs', options.retryInitialDelayMs, 50);
    const maxConcurrent = options.maxConcurrentTransactions ?? Number.POSITIVE_INFINITY;
    if (typeof maxConcurrent !== 'number' || !(maxConcurrent >= 1))
      throw configError('maxConcurrentTransactions must be at least 1');
    this.slots = new Slots(maxConcurrent);
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
    };
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
      optionsObject(options, 'transaction').timeoutMs,
      this.options.transactionTimeoutMs,
    );
    const gid = newTxnGid(this.options.coordinatorId);
    return withSpan(
      SpanName.TWO_PC,
      { [Attr.GID]: gid, [Attr.COORDINATOR]: this.options.coordinatorId },
      async (span) => {
        const slot = this.slots.take();
        if (slot !== undefined) await slot;
        try {
          const result = await this.run(gid, fn, timeoutMs, span);
          this.count('committed', span);
          return { gid, outcome: 'committed' as const, result };
        } catch (error) {
          if (error instanceof StoppedAtStep) throw error.error;
          if (isCausewayError(error, ErrorCode.TXN_IN_DOUBT)) this.count('in-doubt', span);
          else this.count('aborted', span);
          throw error;
        } finally {
          this.slots.give();
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
        positive('intervalMs', optionsObject(options, 'startRecovery').intervalMs, 60_000),
      ),
      this.options.onRecoveryError,
    );
  }

  /**
   * Stops recovery and background phase-two retries (recovery, here or in another process,
   * finishes what they leave) and releases the recovery lease. Participants and the log belong
   * to the caller and stay open.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const wake of this.sleepers) wake();
    await this.recoverer.close();
    await Promise.allSettled([...this.background]);
  }

  private count(outcome: string, span: Span): void {
    span.setAttribute(Attr.OUTCOME, outcome);
    addToCounter(CounterName.TWO_PC_OUTCOMES, { [Attr.OUTCOME]: outcome });
  }

  /** Runs the step hook (callers skip the call, and its await, when there is none). */
  private async step(step: TwoPhaseStep, info: TwoPhaseStepInfo): Promise<void> {
    try {
      await this.options.onStep?.(step, info);
    } catch (error) {
      throw new StoppedAtStep(error);
    }
  }

  private async run<T>(
    gid: string,
    fn: (tx: TwoPhaseTransaction) => Promise<T> | T,
    timeoutMs: number,
    span: Span,
  ): Promise<T> {
    const branches = new Map<string, Promise<ParticipantBranch>>();
    const handles = new Map<string, TransactionBranch>();
    let finished = false;
    const tx: TwoPhaseTransaction = {
      gid,
      participant: (name) => {
        let handle = handles.get(name);
        if (handle !== undefined) return handle;
        const participant = this.options.participants.get(name);
        if (participant === undefined) {
          const shown = typeof name === 'string' ? name.slice(0, 64) : typeof name;
          throw invalidInput(`unknown participant "${shown}"`, {
            known: [...this.options.participants.keys()],
          });
        }
        handle = {
          query: async (text, values) => {
            if (finished) {
              throw invalidInput('the transaction is already finished; statements must run in fn');
            }
            let branch = branches.get(name);
            if (branch === undefined) {
              branch = participant.begin();
              branches.set(name, branch);
            }
            return (await branch).query(text, values);
          },
        };
        handles.set(name, handle);
        return handle;
      },
    };

    let result: T;
    try {
      result = await withTimeout(
        // The executor runs fn at once and turns a synchronous throw into a rejection.
        new Promise<T>((resolve) => resolve(fn(tx))),
        timeoutMs,
        () => new Error(`the transaction function ran longer than ${timeoutMs} ms`),
      );
    } catch (error) {
      finished = true;
      await rollbackOpen(branches);
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
    finished = true;
    if (branches.size === 0) return result;
    span.setAttribute('causeway.participants', [...branches.keys()]);

    try {
      if (this.options.onStep) await this.step('before-prepare', { gid });
    } catch (error) {
      await rollbackOpen(branches);
      throw error;
    }
    const prepared = await this.prepareAll(gid, branches, span);
    const names = [...prepared.keys()];
    const decision = await this.decide(gid, names, prepared, span);
    if (this.options.onStep) await this.step('after-decision', { gid });
    if (decision.decision === 'abort') {
      // Recovery presumed abort while this coordinator stalled; obey the log.
      await this.rollbackPrepared(gid, prepared);
      throw aborted(gid, 'recovery aborted the transaction while it was preparing', undefined);
    }
    await this.commitAll(gid, prepared, span);
    return result;
  }

  /** Phase one: prepares every branch in parallel within `prepareTimeoutMs`. */
  private prepareAll(
    gid: string,
    branches: Map<string, Promise<ParticipantBranch>>,
    parent: Span,
  ): Promise<Map<string, PreparedInfo>> {
    return phase(parent, SpanName.TWO_PC_PREPARE, gid, async () => {
      const started = performance.now();
      const prepared = new Map<string, PreparedInfo>();
      let stopped: StoppedAtStep | undefined;
      const attempts = [...branches].map(async ([name, branch]) => {
        const info = await (await branch).prepare(branchGid(gid, name));
        prepared.set(name, info);
        try {
          if (this.options.onStep) await this.step('after-prepare', { gid, participant: name });
        } catch (error) {
          stopped ??= error as StoppedAtStep;
        }
        return info;
      });
      const settled = await withTimeout(
        Promise.allSettled(attempts),
        this.options.prepareTimeoutMs,
        () => undefined,
      ).catch(() => undefined);
      if (stopped !== undefined) throw stopped;
      // Checked after the wait too: recovery presumes abort for branches older than this.
      const late = performance.now() - started > this.options.prepareTimeoutMs;
      const failure =
        settled?.find((outcome) => outcome.status === 'rejected')?.reason ??
        (late || settled === undefined
          ? new CausewayError(
              ErrorCode.TXN_ABORTED,
              `prepare took longer than prepareTimeoutMs (${this.options.prepareTimeoutMs} ms)`,
            )
          : undefined);
      if (failure === undefined) return prepared;

      // Abort: a branch whose prepare failed may still be prepared (a reply can be lost), so
      // every gid is rolled back once its prepare settles; prepares still running after the
      // timeout roll back when they finish, without holding up the caller.
      const rollbacks = [...branches.keys()].map((name, index) =>
        attempts[index]!.then(
          () => undefined,
          () => undefined,
        )
          .then(() => this.options.participants.get(name)!.rollbackPrepared(branchGid(gid, name)))
          .catch(() => false),
      );
      if (settled !== undefined) await Promise.all(rollbacks);
      throw aborted(gid, 'a participant did not prepare', failure);
    });
  }

  /** Records the commit decision, retrying within `commitWaitMs`. */
  private decide(
    gid: string,
    names: string[],
    prepared: Map<string, PreparedInfo>,
    parent: Span,
  ): Promise<DecisionRecord> {
    return phase(parent, SpanName.TWO_PC_DECIDE, gid, async (span) => {
      const deadline = performance.now() + this.options.commitWaitMs;
      let delay = this.options.retryInitialDelayMs;
      for (;;) {
        try {
          const record = await this.options.log.record(gid, 'commit', names);
          span.setAttribute(Attr.OUTCOME, record.decision);
          return record;
        } catch (error) {
          if (this.closed || performance.now() + delay > deadline) {
            throw new CausewayError(
              ErrorCode.TXN_IN_DOUBT,
              'could not record the decision; recovery will commit or roll back every branch',
              {
                cause: error,
                details: { gid, decision: 'unknown', pending: [...prepared.keys()] },
              },
            );
          }
          await this.sleep(delay);
          delay = Math.min(delay * 2, this.options.retryMaxDelayMs);
        }
      }
    });
  }

  /** Phase two: commits every branch in parallel, retrying each until done. */
  private commitAll(gid: string, prepared: Map<string, PreparedInfo>, parent: Span): Promise<void> {
    return phase(parent, SpanName.TWO_PC_COMMIT, gid, async () => {
      const pending = new Set(prepared.keys());
      let stopped: StoppedAtStep | undefined;
      const tasks = [...prepared].map(async ([name, info]) => {
        const finish = await this.commitUntilDone(name, branchGid(gid, name), info.xid);
        pending.delete(name);
        if (finish.kind === 'done') {
          try {
            if (this.options.onStep) await this.step('after-commit', { gid, participant: name });
          } catch (error) {
            stopped ??= error as StoppedAtStep;
          }
        }
        return finish;
      });
      const all = Promise.allSettled(tasks);
      const settled = await withTimeout(all, this.options.commitWaitMs, () => undefined).catch(
        () => undefined,
      );
      if (stopped !== undefined) throw stopped;
      if (settled === undefined) {
        this.track(all);
        throw new CausewayError(
          ErrorCode.TXN_IN_DOUBT,
          'the transaction is committed but not yet applied on every participant; ' +
            'phase two goes on in the background and recovery finishes it',
          { details: { gid, decision: 'commit', pending: [...pending] } },
        );
      }
      const heuristics: HeuristicEvent[] = [];
      for (const outcome of settled) {
        if (outcome.status === 'fulfilled' && outcome.value.kind === 'heuristic') {
          heuristics.push(outcome.value.event);
        }
      }
      if (heuristics.length > 0) {
        throw new CausewayError(
          ErrorCode.TXN_IN_DOUBT,
          'heuristic outcome: a branch was finished outside the coordinator and is not (or not ' +
            'provably) committed although the decision was commit; see details.heuristics',
          { details: { gid, decision: 'commit', heuristic: true, heuristics } },
        );
      }
      if (pending.size > 0) {
        // Only when closed mid-way: recovery finishes.
        throw new CausewayError(ErrorCode.TXN_IN_DOUBT, 'closed before phase two finished', {
          details: { gid, decision: 'commit', pending: [...pending] },
        });
      }
    });
  }

  private async commitUntilDone(name: string, gid: string, xid: string): Promise<BranchFinish> {
    const participant = this.options.participants.get(name)!;
    let delay = this.options.retryInitialDelayMs;
    for (;;) {
      try {
        const finish = await finishBranch(participant, name, gid, 'commit', xid);
        if (finish.kind === 'heuristic') reportHeuristic(finish.event, this.options.onHeuristic);
        return finish;
      } catch (error) {
        if (this.closed) throw error;
        await this.sleep(delay * (0.5 + Math.random() / 2));
        delay = Math.min(delay * 2, this.options.retryMaxDelayMs);
      }
    }
  }

  private async rollbackPrepared(gid: string, prepared: Map<string, PreparedInfo>) {
    await Promise.allSettled(
      [...prepared].map(([name, info]) =>
        finishBranch(
          this.options.participants.get(name)!,
          name,
          branchGid(gid, name),
          'abort',
          info.xid,
        ),
      ),
    );
  }

  private track(task: Promise<unknown>): void {
    this.background.add(task);
    void task.finally(() => this.background.delete(task));
  }

  /** A delay that `close()` cuts short. */
  private sleep(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      this.sleepers.add(wake);
    });
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

/**
 * Runs one phase in a child span of `parent`. When `parent` is not recording (no SDK registered,
 * or sampled out, whose children parent-based sampling drops too) `fn` runs directly on
 * `parent`: no span objects or context switches on the hot path for nothing.
 */
function phase<T>(
  parent: Span,
  name: SpanName,
  gid: string,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  return parent.isRecording() ? withSpan(name, { [Attr.GID]: gid }, fn) : fn(parent);
}

function aborted(gid: string, message: string, cause: unknown): CausewayError {
  const reason = cause instanceof Error ? `: ${cause.message}` : '';
  return new CausewayError(ErrorCode.TXN_ABORTED, `${message}${reason}`, {
    cause,
    details: { gid },
  });
}

/** Rolls back branches that were begun but not prepared (their connections go back). */
async function rollbackOpen(branches: Map<string, Promise<ParticipantBranch>>): Promise<void> {
  await Promise.allSettled([...branches.values()].map(async (branch) => (await branch).rollback()));
}
