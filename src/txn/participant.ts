/**
 * A resource manager that can take part in two-phase commit: a database whose transactions can
 * be prepared (made durable but undecided), then committed or rolled back later from any
 * connection. Implementations: `PgParticipant` (`causeway/pg`) and `MemoryParticipant`
 * (`causeway/memory`).
 */

/** What a statement returns. `rows` are the driver's rows, as they come. */
export interface ParticipantQueryResult<Row = Record<string, unknown>> {
  readonly rows: Row[];
  readonly rowCount: number | null;
}

/** Where a prepared branch left a trace that its outcome can be checked against later. */
export interface PreparedInfo {
  /**
   * The branch's transaction id as the participant knows it (PostgreSQL: the 64-bit xid as a
   * decimal string). Used after a "does not exist" answer to learn whether someone else
   * committed or rolled the branch back.
   */
  readonly xid: string;
}

/** One open branch: a transaction on one connection, begun by `Participant.begin()`. */
export interface ParticipantBranch {
  /** Runs one statement inside the branch. */
  query<Row = Record<string, unknown>>(
    text: string,
    values?: readonly unknown[],
  ): Promise<ParticipantQueryResult<Row>>;
  /**
   * Prepares the branch under `gid` and gives its connection back. Rejects with `TXN_ABORTED`
   * (the branch is then rolled back) if the participant refuses, e.g. a deferred constraint.
   */
  prepare(gid: string): Promise<PreparedInfo>;
  /** Rolls back a branch that was not prepared and gives its connection back. Never rejects. */
  rollback(): Promise<void>;
  /**
   * One-phase commit: commits the branch as a plain local transaction (no prepare) and gives
   * its connection back. `lastStatement` (no parameters), when given, runs just before the
   * commit, in the same round trip where the participant can (the decision row of a commit
   * with the log). Rejects with `TXN_ABORTED` when nothing was committed (the participant
   * refused, or `lastStatement` failed) and with any other error when the outcome is unknown
   * (the reply was lost). Optional: without it the coordinator prepares every branch.
   */
  commit?(lastStatement?: string): Promise<void>;
  /**
   * True when the branch has written nothing (PostgreSQL: no transaction id was assigned), so
   * it can end at once and take no part in phase two. A plain boolean when the answer needs no
   * round trip (it saw a write). Optional: without it every branch is treated as a writer.
   */
  isReadOnly?(): Promise<boolean> | boolean;
}

/** A prepared branch as listed by the participant. */
export interface PreparedBranch {
  readonly gid: string;
  /** When it was prepared, by the participant's clock. */
  readonly preparedAt: Date;
  /** How long ago it was prepared, measured by the participant's clock (no skew). */
  readonly ageMs: number;
  /** Same as `PreparedInfo.xid`. */
  readonly xid: string;
  /** The role that prepared it (PostgreSQL) or `''`. */
  readonly owner: string;
  /** The database it belongs to (PostgreSQL) or the participant's label. */
  readonly database: string;
}

/** What became of a branch, learned from its `xid` (see `PreparedInfo`). */
export type BranchStatus = 'committed' | 'aborted' | 'in progress' | 'unknown';

export interface Participant {
  /** Opens a branch (a transaction on a connection of its own). */
  begin(): Promise<ParticipantBranch>;
  /**
   * `COMMIT PREPARED`: resolves `true` when it committed the branch, `false` when no prepared
   * branch has that gid (already finished by someone). Rejects when unreachable: retry.
   */
  commitPrepared(gid: string): Promise<boolean>;
  /** `ROLLBACK PREPARED`, with the same answers as `commitPrepared`. */
  rollbackPrepared(gid: string): Promise<boolean>;
  /** Prepared branches whose gid starts with `prefix` (compared byte for byte, no patterns). */
  listPrepared(prefix: string): Promise<PreparedBranch[]>;
  /** The outcome of the transaction `xid` (see `PreparedInfo`). */
  branchStatus(xid: string): Promise<BranchStatus>;
  /** Releases what the participant opened itself (not a pool it was given). */
  close(): Promise<void>;
}
