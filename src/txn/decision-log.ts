import type { Participant, ParticipantBranch } from './participant.js';

/**
 * The coordinator's durable memory and the commit point of every transaction: once a commit
 * decision is recorded the transaction commits, whatever crashes. Implementations:
 * `PgDecisionLog` (`causeway/pg`) and `MemoryDecisionLog` (`causeway/memory`).
 */

export type Decision = 'commit' | 'abort';

export interface DecisionRecord {
  /** The transaction's gid (`cw:<coordinatorId>:<txnId>`). */
  readonly gid: string;
  readonly decision: Decision;
  /** Participants that may hold a branch of the transaction. */
  readonly participants: readonly string[];
  /** When it was recorded, by the log's clock. */
  readonly decidedAt: Date;
  /** How long ago it was recorded, by the log's clock (no skew with the caller's). */
  readonly ageMs: number;
}

/** One decision to record. */
export interface DecisionEntry {
  readonly gid: string;
  readonly decision: Decision;
  readonly participants: readonly string[];
}

export interface DecisionLog {
  /**
   * Records `decision` for `gid` unless a decision exists, and resolves to the decision that
   * holds: write-once, so the first of the coordinator's commit and recovery's presumed abort
   * wins and the loser obeys it. Safe to retry.
   */
  record(gid: string, decision: Decision, participants: readonly string[]): Promise<DecisionRecord>;
  /**
   * Group commit: records several decisions in one write, with `record`'s answer for each
   * (in order). Optional: without it every decision is its own write.
   */
  recordMany?(entries: readonly DecisionEntry[]): Promise<DecisionRecord[]>;
  /**
   * True when `participant`'s branches run in the database that holds this log (e.g.
   * `PgDecisionLog` and `PgParticipant` given the same pool). Optional: without it the
   * decision is never committed together with a branch.
   */
  colocatedWith?(participant: Participant): boolean;
  /**
   * Commits `branch` (of a participant this log is colocated with) together with the commit
   * decision for `gid`, inserted in its transaction just before its commit: one local commit is
   * both that branch and the commit point. Rejects with `TXN_ABORTED` when the branch did not
   * commit (a decision exists, or the participant refused), with any other error when that is
   * unknown (the reply was lost). Needed with `colocatedWith`.
   */
  commitInBranch?(
    branch: ParticipantBranch,
    gid: string,
    participants: readonly string[],
  ): Promise<void>;
  /**
   * Gets the log ready (e.g. creates its table) before a transaction's branches hold
   * connections: a log that shares a pool with a participant could otherwise wait for a
   * connection that branches waiting on it hold. Called before each transaction until it has
   * resolved once. Optional.
   */
  ready?(): Promise<void>;
  /** The decision for `gid`, if any. */
  get(gid: string): Promise<DecisionRecord | undefined>;
  /** Every decision whose gid starts with `prefix` (compared byte for byte, no patterns). */
  list(prefix: string): Promise<DecisionRecord[]>;
  /** Deletes finished decisions (no branch left prepared). Unknown gids are ignored. */
  forget(gids: readonly string[]): Promise<void>;
  /** Releases what the log opened itself (not a pool it was given). */
  close(): Promise<void>;
}
