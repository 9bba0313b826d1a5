/**
 * The shape of a recorded history, shared by the checker (`checkHistory`), the recorder
 * (`HistoryRecorder`), the read-offload benchmark and the fault-injection runs.
 *
 * Model: every key is a register whose writes get increasing versions in the leader's commit
 * order (version 0 is the initial state). A read returns, for each key it read, the version it
 * saw; seeing version v of a key means every write to that key with version <= v is visible to
 * that read, and none above. Session order is the order in which a session's operations appear
 * in the history (a session runs one operation at a time).
 */

/** A write: one new version of one key, made at the leader. */
export interface WriteOperation {
  readonly kind: 'write';
  /** The session (client, user, job) that issued it. */
  readonly session: string;
  readonly key: string;
  /** Unique id of this write within the history. */
  readonly id: string;
  /**
   * The version of `key` this write created; greater than every earlier committed version.
   * 0 only for an unacknowledged write whose version is unknown (it then takes part in no check).
   */
  readonly version: number;
  /**
   * Ids of writes this write causally depends on beyond its own session order: the comment a
   * reply answers, the row an edit was based on. Used by the consistent-prefix check.
   */
  readonly dependsOn?: readonly string[];
  /** The node that served the operation (for a write, normally the leader). */
  readonly node: string;
  /** Invocation and completion times in milliseconds from one monotonic clock. */
  readonly startedAt: number;
  readonly endedAt: number;
  /**
   * False when the client saw an error or a timeout: the write may or may not have happened.
   * Unacknowledged writes are never required to be visible.
   */
  readonly acknowledged: boolean;
}

/** A read of one or more keys at one node, in one snapshot. */
export interface ReadOperation {
  readonly kind: 'read';
  readonly session: string;
  /** The version of each key the read returned: 0 for the initial state (no row). */
  readonly observed: Readonly<Record<string, number>>;
  readonly node: string;
  readonly startedAt: number;
  readonly endedAt: number;
}

export type HistoryOperation = WriteOperation | ReadOperation;

/** The session guarantees of Terry et al. (1994), plus consistent prefix. */
export type Guarantee =
  | 'read-your-writes'
  | 'monotonic-reads'
  | 'monotonic-writes'
  | 'writes-follow-reads'
  | 'consistent-prefix';

/** One broken guarantee and the operations that prove it, in history order. */
export interface Violation {
  readonly guarantee: Guarantee;
  /**
   * The session whose guarantee broke: the reader's for read-your-writes, monotonic reads and
   * consistent prefix; the writer's for monotonic writes and writes-follow-reads.
   */
  readonly session: string;
  /**
   * The key the proof is about: the key a read saw too old a version of, or for a write out of
   * order with its own session's past, the key it wrote.
   */
  readonly key?: string;
  readonly message: string;
  readonly operations: readonly HistoryOperation[];
}

export interface CheckResult {
  readonly ok: boolean;
  readonly operations: number;
  readonly violations: readonly Violation[];
  /** Violations per guarantee, every guarantee present (0 when none). */
  readonly counts: Readonly<Record<Guarantee, number>>;
}

/** Every guarantee the checker knows, in the order `counts` lists them. */
export const GUARANTEES: readonly Guarantee[] = [
  'read-your-writes',
  'monotonic-reads',
  'monotonic-writes',
  'writes-follow-reads',
  'consistent-prefix',
];
