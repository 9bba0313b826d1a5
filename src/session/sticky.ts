import type { NodeStatus, TopologySnapshot } from './replica-set.js';

/**
 * Rendezvous (highest-random-weight) hashing: a session's replica is the healthy replica whose
 * score for the session's id hash is highest. Removing a replica moves only the sessions whose
 * highest score was that replica's; every other session keeps its replica. Scores are pure
 * 32-bit integer arithmetic, so ranking allocates nothing.
 */
export function rendezvousScore(sessionHash: number, nodeHash: number): number {
  // murmur3's 32-bit finaliser over the combined hashes: a good avalanche in five operations.
  let h = (sessionHash ^ Math.imul(nodeHash, 0x9e3779b1)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The healthy replicas of one snapshot with their name hashes, derived once per snapshot. */
export interface ReplicaView {
  readonly snapshot: TopologySnapshot;
  readonly healthy: readonly NodeStatus[];
  readonly hashes: Uint32Array;
}

/** Derives the view the router ranks on (called only when the snapshot object changes). */
export function replicaView(snapshot: TopologySnapshot): ReplicaView {
  const healthy = snapshot.replicas.filter((replica) => replica.healthy);
  const hashes = new Uint32Array(healthy.length);
  for (let i = 0; i < healthy.length; i++) hashes[i] = hashString(healthy[i]!.name);
  return { snapshot, healthy, hashes };
}

/** Index in `view.healthy` of the session's sticky replica, or -1 when there is none. */
export function stickyIndex(view: ReplicaView, sessionHash: number): number {
  let best = -1;
  let bestScore = -1;
  for (let i = 0; i < view.hashes.length; i++) {
    const score = rendezvousScore(sessionHash, view.hashes[i]!);
    if (score > bestScore) {
      bestScore = score;
      best = i;
    }
  }
  return best;
}

/** FNV-1a over UTF-16 code units: fast, allocation-free, well spread after `mix32`. */
export function hashString(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
