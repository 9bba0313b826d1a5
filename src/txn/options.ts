import type { LeaseManager } from '../fencing/token.js';
import type { DecisionLog } from './decision-log.js';
import type { Participant, ParticipantQueryResult } from './participant.js';
import type { HeuristicEvent } from './recovery.js';

/**
 * The points at which a test can stop a transaction dead, in order:
 * - `before-prepare` (once, before anything is ended, prepared or committed);
 * - `after-read-only` (once per branch that voted read-only, as it ends);
 * - `after-prepare` (once per prepared participant, as its prepare succeeds);
 * - `before-local-commit` (once, before a one-phase commit or before the log's participant
 *   commits its branch together with the decision);
 * - `after-local-commit` (once, after a one-phase commit succeeded);
 * - `after-decision` (once the commit decision is durable: recorded in the log, or committed
 *   with the log's participant);
 * - `background-phase-two` (once, with `phaseTwo: 'background'`, as phase two starts in the
 *   background: `transaction()` resolves without waiting for this step or what follows);
 * - `after-commit` (once per prepared participant, as its commit succeeds).
 */
export type TwoPhaseStep =
  | 'before-prepare'
  | 'after-read-only'
  | 'after-prepare'
  | 'before-local-commit'
  | 'after-local-commit'
  | 'after-decision'
  | 'background-phase-two'
  | 'after-commit';

export interface TwoPhaseStepInfo {
  /** The transaction's gid. */
  readonly gid: string;
  /** The participant, for the per-participant steps and `before-local-commit`. */
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

/**
 * The protocol's optimizations, each on unless switched off (batching: off unless switched on).
 * Every one of them keeps the transaction atomic through any crash; recovery understands each
 * path.
 */
export interface TwoPhaseOptimizations {
  /**
   * A transaction that wrote on one participant only commits there with a plain `COMMIT`: no
   * prepare, no decision record (needs `ParticipantBranch.commit`). If that `COMMIT`'s reply is
   * lost the transaction is `TXN_IN_DOUBT` with `decision: 'unknown'`, as a plain transaction
   * would be. Default: `true`.
   */
  onePhase?: boolean;
  /**
   * A branch that wrote nothing (PostgreSQL: no transaction id was assigned) votes read-only:
   * it ends at once and takes no part in phase two (needs `ParticipantBranch.isReadOnly`). Its
   * locks are released before the others commit, as in every read-only optimization.
   * Default: `true`.
   */
  readOnly?: boolean;
  /**
   * When the decision log lives in a participant's database (see `logParticipant`), that
   * participant is not prepared: the other branches are prepared, then its own transaction
   * inserts the commit decision and commits, one local commit being both its branch and the
   * commit point (last-resource commit). Default: `true`.
   */
  commitWithLog?: boolean;
  /**
   * Concurrent transactions' decisions are written together in one statement (group commit;
   * needs `DecisionLog.recordMany`). A decision is written at once when no write is in flight,
   * so a lone transaction is not delayed. Off by default: PostgreSQL already shares one WAL flush
   * among concurrent commits, and in `npm run bench -- twopc` batches measured slower than
   * separate inserts (a batch waits for the write in flight). Default: `false`.
   */
  batchDecisions?: boolean;
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
   * The participant whose database holds the decision log, for `optimizations.commitWithLog`
   * (the log must implement `commitInBranch`, else `CONFIG`). Default: the participant the log
   * says it is colocated with (`PgDecisionLog` and `PgParticipant` given the same pool), if any.
   */
  logParticipant?: string;
  /** Switches optimizations on or off (see `TwoPhaseOptimizations` for each default). */
  optimizations?: TwoPhaseOptimizations;
  /**
   * When `transaction()` resolves. `'await'`: once every prepared branch has committed (phase
   * two done). `'background'`: as soon as the commit decision is durable (the commit point: the
   * decision row committed, alone or with the log participant's branch); the prepared branches
   * are committed (`COMMIT PREPARED`) in the background, retried like any phase two, and
   * finished by recovery if this process dies first (early acknowledgement of presumed-abort
   * 2PC: one flush less on the caller's path).
   *
   * The trade-off: until phase two finishes, a prepared branch's effects are invisible to
   * other transactions on its participant and its rows stay locked, so a read (or write of
   * the same rows) right after `transaction()` resolves may not see the write, or may wait for
   * its lock. The transaction is still atomic: it will be applied everywhere. A background
   * phase two holds its `maxConcurrentTransactions` slot until it finishes; its failures are
   * passed to `onRecoveryError` (a heuristic outcome to `onHeuristic` first), never thrown. `close()`
   * waits for background phase two in flight (retries are stopped and left to recovery), so a
   * clean close leaves no prepared transaction behind. Default: `'await'`.
   */
  phaseTwo?: 'await' | 'background';
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
  /**
   * Called with errors of background recovery rounds and of background phase two (see
   * `phaseTwo`; recovery finishes what it left). Default: `process.emitWarning`.
   */
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
