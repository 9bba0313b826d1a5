// The replicas of a replica set: a fixed list, or one a function gives on every health check
// (DNS, a service registry, a cloud API), with the replicas it no longer lists drained.
import { withTimeout } from '../../src/adapter-kit.js';
import type { NodeState } from './node-checks.js';
import { copyConfig, type PgNodeOption, poolOptions } from './pg-nodes.js';
import { hostOf } from './primary-follower.js';
import { isQueryablePool, type PgQueryablePool } from './sql.js';

/** Replicas as a function gives them: called on every health check (see `PgReplicaSetOptions`). */
export type ReplicaSource<P extends PgQueryablePool = PgQueryablePool> = () =>
  | Iterable<PgNodeOption<P>>
  | Promise<Iterable<PgNodeOption<P>>>;

export class ReplicaRoster {
  #nodes: readonly NodeState[];
  /** Replicas no longer listed, kept by name until their in-flight reads have finished. */
  readonly #draining = new Map<string, NodeState>();
  readonly #source: ReplicaSource | undefined;
  readonly #make: (option: PgNodeOption, name: string) => NodeState;
  readonly #poolListeners: ((pool: PgQueryablePool) => void)[] = [];
  #closed = false;

  /** `make` resolves a listed replica into a node (creating its pools). */
  constructor(
    initial: readonly NodeState[],
    source: ReplicaSource | undefined,
    make: (option: PgNodeOption, name: string) => NodeState,
  ) {
    this.#nodes = initial;
    this.#source = source;
    this.#make = make;
  }

  /** The replicas routing may use, in order. */
  get nodes(): readonly NodeState[] {
    return this.#nodes;
  }

  /** A listed replica, or one still draining (its in-flight reads still read its position). */
  find(name: string): NodeState | undefined {
    return this.#nodes.find((node) => node.name === name) ?? this.#draining.get(name);
  }

  /** Calls `listener` with the pool of every replica, now and as the source adds them. */
  onPool(listener: (pool: PgQueryablePool) => void): void {
    this.#poolListeners.push(listener);
    for (const node of this.#nodes) listener(node.pool);
  }

  /**
   * Asks the source for the replicas now; true when the list changed. A source that throws,
   * rejects, answers something that is not a list or takes longer than `timeoutMs` leaves the
   * list as it was (a registry outage must not empty it). A replica is known by its `name`, else
   * by the `host:port` of its configuration; entries that give neither are skipped. A new one
   * starts unhealthy until its first check; one no longer listed leaves routing at once and its
   * pool (if the set created it) ends once its checked-out connections are back.
   */
  async sync(timeoutMs: number, reserved: ReadonlySet<string>): Promise<boolean> {
    if (this.#source === undefined || this.#closed) return false;
    let listed: PgNodeOption[];
    try {
      const answer = Promise.resolve(this.#source());
      const resolved =
        timeoutMs > 0
          ? await withTimeout(answer, timeoutMs, () => new Error('replica source timed out'))
          : await answer;
      listed = [...resolved];
    } catch {
      return false;
    }
    if (this.#closed) return false;
    const next: NodeState[] = [];
    const seen = new Set<string>();
    let added = false;
    for (const option of listed) {
      const name = nameOf(option);
      if (name === undefined || seen.has(name) || reserved.has(name)) continue;
      seen.add(name);
      let node = this.#nodes.find((known) => known.name === name);
      if (node === undefined) {
        try {
          node = this.#make(option, name);
        } catch {
          continue;
        }
        added = true;
        for (const listener of this.#poolListeners) listener(node.pool);
      }
      next.push(node);
    }
    const removed = this.#nodes.filter((node) => !seen.has(node.name));
    this.#nodes = next;
    for (const node of removed) void this.#drain(node);
    return added || removed.length > 0;
  }

  /** Ends every pool the roster holds, draining ones included. */
  async close(): Promise<void> {
    this.#closed = true;
    const nodes = [...this.#nodes, ...this.#draining.values()];
    await Promise.allSettled(nodes.map((node) => node.checking));
    await Promise.allSettled(nodes.flatMap((node) => [node.end?.(), node.endChecks?.()]));
  }

  async #drain(node: NodeState): Promise<void> {
    this.#draining.set(node.name, node);
    try {
      await node.checking;
      // pg-pool's end() ends idle connections now and each checked-out one at its release: the
      // reads in flight finish first. A pool passed in is the caller's and stays open.
      await Promise.allSettled([node.end?.(), node.endChecks?.()]);
    } finally {
      if (this.#draining.get(node.name) === node) this.#draining.delete(node.name);
    }
  }
}

/** The name a listed replica is known by: its `name`, else the `host:port` it connects to. */
function nameOf(option: PgNodeOption): string | undefined {
  if (typeof option === 'string') return hostLabel(option);
  if (typeof option !== 'object' || option === null) return undefined;
  const named = (option as { name?: unknown }).name;
  if (typeof named === 'string' && named !== '' && !isQueryablePool(option)) return named;
  if ('config' in option) {
    const config: unknown = option.config;
    return typeof config === 'string' || (typeof config === 'object' && config !== null)
      ? hostLabel(config)
      : undefined;
  }
  const pool = 'pool' in option ? option.pool : option;
  const options = typeof pool === 'object' && pool !== null ? poolOptions(pool) : undefined;
  return options === undefined ? undefined : hostLabel(options);
}

function hostLabel(config: object | string): string | undefined {
  try {
    const { host, port } = hostOf(copyConfig(config));
    return `${host}:${port}`;
  } catch {
    return undefined;
  }
}
