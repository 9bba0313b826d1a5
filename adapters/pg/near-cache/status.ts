// The near cache's state as repository code and dashboards see it.
import type { Position } from '../../../src/adapter-kit.js';

/** `'loading'` before the first snapshot, `'live'` while streaming, `'stale'` until re-snapshotted. */
export type NearCacheState = 'loading' | 'live' | 'stale' | 'closed';

/** Why the cache stopped answering from memory. */
export type NearCacheStaleReason =
  /** The replication connection broke or the stream ended. */
  | 'stream-broken'
  /** The slot was dropped, or invalidated by `max_slot_wal_keep_size` (`wal_status = 'lost'`). */
  | 'slot-lost'
  /** The primary's system identifier or timeline changed (a failover or a restore). */
  | 'new-history'
  /** A change the cache cannot decode (DDL since the snapshot, a missing TOASTed value...). */
  | 'undecodable'
  /** More rows or bytes than `maxRows`/`maxBytes`. */
  | 'memory-bound'
  /** A re-snapshot failed (its error is in `status().error`). */
  | 'snapshot-failed';

export interface NearCacheStatus {
  readonly state: NearCacheState;
  /** The last commit (or keepalive) applied, in the primary's stream and timeline. */
  readonly position: Position | undefined;
  readonly staleReason: NearCacheStaleReason | undefined;
  /** The error that made the cache stale, if any (no row data). */
  readonly error: unknown;
  readonly rows: number;
  /** V8 heap the last snapshot's load added (`getHeapStatistics` before and after). */
  readonly heapBytes: number;
  /** `heapBytes` divided by the rows loaded; undefined before a snapshot with rows. */
  readonly bytesPerRow: number | undefined;
  /** WAL bytes the primary has written past the cache's position, as of the last slot check. */
  readonly lagBytes: bigint | undefined;
  /** WAL bytes the slot holds on the primary (`pg_current_wal_lsn() - restart_lsn`). */
  readonly slotRetainedBytes: bigint | undefined;
  /** The slot's `wal_status` (`reserved`, `extended`, `unreserved`, `lost`) at the last check. */
  readonly walStatus: string | undefined;
  /** Snapshots loaded so far. */
  readonly snapshots: number;
}
