import type { ConsistencyLevel } from './level.js';

/**
 * Why a read went where it went. Replica reasons: `'sticky'` (the session's own replica),
 * `'caught-up'` (another replica, because the sticky one is behind the floor or too stale),
 * `'waited'` (a replica reached the floor within `waitTimeoutMs`), `'no-session'` (no session:
 * replicas in turn). Leader reasons: `'strong'`, `'write-floor-not-replicated'`,
 * `'read-floor-not-replicated'`, `'stale-beyond-bound'`, `'no-healthy-replica'`,
 * `'new-history'` (the floor is from another stream or epoch: read the leader once, re-base),
 * `'wait-timed-out'`, `'wait-skipped'` (with `onNoCaughtUp: 'wait'`, every replica that could
 * reach the floor would by its measured lag still need more than `waitTimeoutMs`: the leader at
 * once, no wait), `'floors-uncertain'` (the floors may be incomplete: the session store failed, or
 * a write's position could not be read).
 */
export type RouteReason =
  | 'sticky'
  | 'caught-up'
  | 'waited'
  | 'no-session'
  | 'strong'
  | 'write-floor-not-replicated'
  | 'read-floor-not-replicated'
  | 'stale-beyond-bound'
  | 'no-healthy-replica'
  | 'new-history'
  | 'wait-timed-out'
  | 'wait-skipped'
  | 'floors-uncertain';

/** Where one read goes, and why. */
export interface RouteDecision {
  readonly target: 'leader' | 'replica';
  /** The node's name as the replica set reports it. */
  readonly node: string;
  readonly reason: RouteReason;
  readonly level: ConsistencyLevel;
  /** Milliseconds spent waiting for a replica (only with `onNoCaughtUp: 'wait'`). */
  readonly waitedMs?: number;
  /** The chosen replica's last measured lag in milliseconds, when known. */
  readonly lagMs?: number;
}
