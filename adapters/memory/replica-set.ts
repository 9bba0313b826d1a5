import { randomUUID } from 'node:crypto';
import {
  configError,
  hasReached,
  invalidInput,
  knownOptions,
  type NodeStatus,
  numberOption,
  type Position,
  type ReplicaSet,
  stringOption,
  type TopologySnapshot,
} from '../../src/adapter-kit.js';

export interface MemoryReplicaOptions {
  /** The replica's name. Default `replica-<n>` (1-based). */
  name?: string;
  /**
   * How long after a write this replica applies it. Default 0 (at once, synchronously);
   * `Infinity` applies only on `catchUp()`, for step-by-step tests.
   */
  delayMs?: number;
}

const OWNER = 'MemoryReplicaSet';

/** The most replicas a `MemoryReplicaSet` is built with from a count (1000). */
export const MAX_MEMORY_REPLICAS = 1000;

export interface MemoryReplicaSetOptions {
  /**
   * The replicas: a count (each with no delay, at most `MAX_MEMORY_REPLICAS`) or one options
   * object each. Default 2.
   */
  replicas?: number | readonly MemoryReplicaOptions[];
  /** The leader's name. Default `'leader'`. */
  leaderName?: string;
  /** The stream all positions belong to. Default a random UUID (one per instance). */
  stream?: string;
  /** The first epoch. Default 1; `failover()` moves to the next. */
  epoch?: number;
}

/** A read from one node: the value (undefined if absent) and the position the node had applied. */
export interface MemoryRead<V> {
  readonly value: V | undefined;
  readonly position: Position;
}

interface PendingWrite<V> {
  readonly lsn: bigint;
  readonly key: string;
  readonly value: V | undefined;
  readonly writtenAt: number;
}

interface MemoryNode<V> {
  readonly name: string;
  readonly data: Map<string, V>;
  lsn: bigint;
  delayMs: number;
  healthy: boolean;
  stopped: boolean;
  /** Writes not yet applied, in log order (replicas only). */
  pending: PendingWrite<V>[];
  waiters: Set<{ lsn: bigint; done: (reached: boolean) => void }>;
}

/**
 * An in-process replicated key-value store that implements `ReplicaSet`: a leader and replicas
 * that apply each write after a per-replica delay. Positions are a counter (`lsn`) on a fixed
 * stream; `failover()` starts a new epoch. For demos and tests of the session guarantees; every
 * timer is unref'd.
 */
export class MemoryReplicaSet<V = unknown> implements ReplicaSet {
  readonly stream: string;
  #epoch: number;
  readonly #leader: MemoryNode<V>;
  readonly #replicas: MemoryNode<V>[];
  readonly #timers = new Set<NodeJS.Timeout>();
  #snapshot: TopologySnapshot | undefined;
  #closed = false;

  constructor(options: MemoryReplicaSetOptions = {}) {
    knownOptions(options, OWNER, ['replicas', 'leaderName', 'stream', 'epoch']);
    const replicas = options.replicas ?? 2;
    if (
      typeof replicas === 'number' &&
      !(Number.isInteger(replicas) && replicas >= 0 && replicas <= MAX_MEMORY_REPLICAS)
    ) {
      throw configError(
        `${OWNER}: replicas must be a count from 0 to ${MAX_MEMORY_REPLICAS} or an array`,
      );
    }
    const replicaOptions =
      typeof replicas === 'number' ? Array.from({ length: replicas }, () => ({})) : replicas;
    if (!Array.isArray(replicaOptions)) {
      throw configError(`${OWNER}: replicas must be a count or an array`);
    }
    this.stream = stringOption(OWNER, 'stream', options.stream, randomUUID());
    this.#epoch = numberOption(OWNER, 'epoch', options.epoch, 1, { min: 0, integer: true });
    this.#leader = newNode(nodeName(options.leaderName ?? 'leader'), 0);
    // Array.from visits holes (as undefined) where map would keep them: a sparse array is refused.
    this.#replicas = Array.from(replicaOptions, (replica: MemoryReplicaOptions, i: number) => {
      knownOptions(replica, `${OWNER} replica`, ['name', 'delayMs']);
      const delayMs = numberOption(OWNER, 'delayMs', replica.delayMs, 0, {
        min: 0,
        infinite: true,
      });
      return newNode(nodeName(replica.name ?? `replica-${i + 1}`), delayMs);
    });
    const names = new Set([this.#leader.name, ...this.#replicas.map((r) => r.name)]);
    if (names.size !== this.#replicas.length + 1) {
      throw configError(`${OWNER}: node names must be unique`);
    }
  }

  get leaderName(): string {
    return this.#leader.name;
  }

  get replicaNames(): string[] {
    return this.#replicas.map((replica) => replica.name);
  }

  get epoch(): number {
    return this.#epoch;
  }

  /** The same object until something changes, except while writes are pending (lag grows). */
  snapshot(): TopologySnapshot {
    if (this.#snapshot !== undefined) return this.#snapshot;
    const now = Date.now();
    const leaderPosition = this.#position(this.#leader);
    let pending = false;
    const replicas = this.#replicas.map((replica): NodeStatus => {
      const oldest = replica.pending[0];
      if (oldest !== undefined) pending = true;
      return {
        name: replica.name,
        healthy: replica.healthy && !replica.stopped,
        position: this.#position(replica),
        lagMs: oldest === undefined ? 0 : now - oldest.writtenAt,
        lagBytes: this.#leader.lsn - replica.lsn,
      };
    });
    const snapshot: TopologySnapshot = {
      leader: {
        name: this.#leader.name,
        healthy: true,
        position: leaderPosition,
        lagMs: undefined,
        lagBytes: undefined,
      },
      replicas,
    };
    if (!pending) this.#snapshot = snapshot;
    return snapshot;
  }

  async refresh(): Promise<void> {
    this.#changed();
  }

  waitFor(node: string, position: Position, timeoutMs: number): Promise<boolean> {
    const target = this.#node(node);
    if (position.stream !== this.stream || position.epoch !== this.#epoch)
      return Promise.resolve(false);
    if (hasReached(this.#position(target), position)) return Promise.resolve(true);
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter = {
        lsn: position.lsn,
        done: (reached: boolean) => {
          clearTimeout(timer);
          this.#timers.delete(timer);
          target.waiters.delete(waiter);
          resolve(reached);
        },
      };
      const timer = setTimeout(() => waiter.done(false), timeoutMs);
      timer.unref();
      this.#timers.add(timer);
      target.waiters.add(waiter);
    });
  }

  /** Marks `node` unhealthy (as a real set would after connection errors) until `setHealthy`. */
  reportError(node: string, _error: unknown): void {
    this.setHealthy(node, false);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const node of [this.#leader, ...this.#replicas]) {
      for (const waiter of [...node.waiters]) waiter.done(false);
    }
  }

  /** Writes on the leader (undefined deletes) and returns the write's position. */
  write(key: string, value: V | undefined): Position {
    const lsn = ++this.#leader.lsn;
    apply(this.#leader, key, value);
    const write: PendingWrite<V> = { lsn, key, value, writtenAt: Date.now() };
    for (const replica of this.#replicas) {
      replica.pending.push(write);
      if (replica.delayMs === 0 && !replica.stopped) this.#applyUpTo(replica, lsn);
      else this.#schedule(replica, lsn);
    }
    this.#changed();
    return this.#position(this.#leader);
  }

  /** Reads `key` on `node` and the position that node had applied. */
  read(node: string, key: string): MemoryRead<V> {
    const target = this.#node(node);
    return { value: target.data.get(key), position: this.#position(target) };
  }

  /** The position `node` has applied (the leader: its last write). */
  position(node: string): Position {
    return this.#position(this.#node(node));
  }

  /** Changes a replica's apply delay for later writes. */
  setDelay(replica: string, delayMs: number): void {
    if (!(delayMs >= 0)) throw configError('delayMs must be >= 0', { delayMs });
    this.#replica(replica).delayMs = delayMs;
  }

  /** Marks a replica healthy or not (the router skips unhealthy replicas). */
  setHealthy(replica: string, healthy: boolean): void {
    this.#replica(replica).healthy = healthy;
    this.#changed();
  }

  /** Stops a replica: it applies nothing and reports unhealthy until `start()`. */
  stop(replica: string): void {
    this.#replica(replica).stopped = true;
    this.#changed();
  }

  /** Restarts a stopped replica; it catches up after its delay. */
  start(replica: string): void {
    const node = this.#replica(replica);
    node.stopped = false;
    const last = node.pending.at(-1);
    if (last !== undefined) {
      if (node.delayMs === 0) this.#applyUpTo(node, last.lsn);
      else this.#schedule(node, last.lsn);
    }
    this.#changed();
  }

  /** Applies every pending write now on `replica` (default: on every running replica). */
  catchUp(replica?: string): void {
    const nodes = replica === undefined ? this.#replicas : [this.#replica(replica)];
    for (const node of nodes) {
      const last = node.pending.at(-1);
      if (last !== undefined && !node.stopped) this.#applyUpTo(node, last.lsn);
    }
    this.#changed();
  }

  /**
   * Starts a new epoch, as a failover does: positions of the old epoch become incomparable.
   * Replicas drop writes they had not applied (lost with the old leader's history).
   */
  failover(): void {
    this.#epoch += 1;
    for (const replica of this.#replicas) {
      replica.pending = [];
      replica.lsn = this.#leader.lsn;
      for (const [key, value] of this.#leader.data) replica.data.set(key, value);
    }
    this.#changed();
  }

  #schedule(replica: MemoryNode<V>, lsn: bigint): void {
    if (this.#closed || replica.delayMs === Number.POSITIVE_INFINITY) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (!replica.stopped) this.#applyUpTo(replica, lsn);
      this.#changed();
    }, replica.delayMs);
    timer.unref();
    this.#timers.add(timer);
  }

  #applyUpTo(replica: MemoryNode<V>, lsn: bigint): void {
    while (replica.pending.length > 0 && replica.pending[0]!.lsn <= lsn) {
      const write = replica.pending.shift()!;
      apply(replica, write.key, write.value);
      replica.lsn = write.lsn;
    }
    for (const waiter of [...replica.waiters]) if (replica.lsn >= waiter.lsn) waiter.done(true);
  }

  #changed(): void {
    this.#snapshot = undefined;
  }

  #position(node: MemoryNode<V>): Position {
    return { stream: this.stream, epoch: this.#epoch, lsn: node.lsn };
  }

  #node(name: string): MemoryNode<V> {
    if (name === this.#leader.name) return this.#leader;
    return this.#replica(name);
  }

  #replica(name: string): MemoryNode<V> {
    const node = this.#replicas.find((replica) => replica.name === name);
    if (node === undefined) throw invalidInput(`no node named ${JSON.stringify(name)}`);
    return node;
  }
}

function nodeName(name: unknown): string {
  if (typeof name !== 'string' || name === '')
    throw configError(`${OWNER}: node names must be non-empty strings`);
  return name;
}

function newNode<V>(name: string, delayMs: number): MemoryNode<V> {
  return {
    name,
    data: new Map(),
    lsn: 0n,
    delayMs,
    healthy: true,
    stopped: false,
    pending: [],
    waiters: new Set(),
  };
}

function apply<V>(node: MemoryNode<V>, key: string, value: V | undefined): void {
  if (value === undefined) node.data.delete(key);
  else node.data.set(key, value);
}
