import type { Position } from './position.js';

/** What the topology knows about one node, as of its last check. No I/O to read it. */
export interface NodeStatus {
  /** Stable node name, used in route decisions, spans and sticky hashing (e.g. `'replica-1'`). */
  readonly name: string;
  /** False after connection errors or lag beyond the limits; the router skips unhealthy replicas. */
  readonly healthy: boolean;
  /** Last known applied position (replicas) or write position (leader); undefined until known. */
  readonly position: Position | undefined;
  /** Replication lag in milliseconds as last measured; undefined for the leader or when unknown. */
  readonly lagMs: number | undefined;
  /** Replication lag in bytes of WAL as last measured; undefined for the leader or when unknown. */
  readonly lagBytes: bigint | undefined;
}

/** A consistent, cached view of the topology that the router decides on. */
export interface TopologySnapshot {
  readonly leader: NodeStatus;
  readonly replicas: readonly NodeStatus[];
}

/**
 * The topology adapter: one leader, its replicas, their cached positions and health. Implemented
 * by `PgReplicaSet` (`causeway/pg`) and `MemoryReplicaSet` (`causeway/memory`).
 */
export interface ReplicaSet {
  /** The cached view; cheap enough to call on every query. */
  snapshot(): TopologySnapshot;
  /** Re-reads positions and health now (the background poller calls this too). */
  refresh(): Promise<void>;
  /**
   * Resolves `true` once `node` has applied `position`, or `false` after `timeoutMs`
   * (also `false` at once if the position is of another stream or epoch).
   */
  waitFor(node: string, position: Position, timeoutMs: number): Promise<boolean>;
  /** Tells the set that a caller saw `error` on `node`, so it can mark the node unhealthy. */
  reportError(node: string, error: unknown): void;
  /** Stops polling and releases every connection the set opened itself. */
  close(): Promise<void>;
}
