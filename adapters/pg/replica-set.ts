import type pg from 'pg';
import {
  configError,
  invalidInput,
  knownOptions,
  type NodeStatus,
  type Position,
  type ReplicaSet,
  sleep,
  type TopologySnapshot,
  withTimeout,
} from '../../src/adapter-kit.js';
import {
  createCheckPool,
  LEADER_CHECK,
  type PgNodeOption,
  parseLsn,
  REPLICA_CHECK,
  type ResolvedNode,
  resolveNode,
} from './pg-nodes.js';
import { nextMark, PositionProbe } from './position-probe.js';
import { isConnectionLoss } from './replica-errors.js';
import {
  PG_REPLICA_SET_OPTION_KEYS,
  type PgReplicaSetOptions,
  replicaSetSettings,
} from './replica-set-options.js';
import type { PgQueryable, PgQueryablePool, PgRowsResult } from './sql.js';

export { formatLsn, type PgNodeOption, parseLsn } from './pg-nodes.js';
export type { PgReplicaSetOptions } from './replica-set-options.js';

interface NodeState extends ResolvedNode {
  readonly role: 'leader' | 'replica';
  status: NodeStatus;
  /** Stream and timeline last seen on this node; positions read later reuse them. */
  history: { stream: string; epoch: number } | undefined;
  checking: Promise<void> | undefined;
  /** When (performance.now()) the query that gave `status.position` started. */
  positionAsOf: number;
  /** Checks and position reads: their own connections, never the node's pool's. */
  readonly checks: PgQueryablePool;
  readonly endChecks: (() => Promise<void>) | undefined;
  readonly probe: PositionProbe<Position | undefined>;
  /** performance.now() of the connection losses reported since the last successful check. */
  failures: number[];
}

/** A node that is down or not usable, keeping its last known position for diagnostics. */
function withHealth(status: NodeStatus, healthy: boolean): NodeStatus {
  return status.healthy === healthy ? status : { ...status, healthy };
}

/**
 * The PostgreSQL topology: a primary and its streaming replicas, with positions and health
 * refreshed in the background. A position's stream is the cluster's `system_identifier`, its
 * epoch the timeline, its lsn the WAL location. The leader's position is its WAL *insert*
 * location (`pg_current_wal_insert_lsn()`, as GitLab uses): it is at or past the end of every
 * committed transaction even with `synchronous_commit = off`, where the write location
 * (`pg_current_wal_lsn()`) can still be behind a commit that has returned.
 *
 * Any user can run the checks (the functions used are executable by PUBLIC by default); without
 * `pg_read_all_stats` a replica's timeline comes from its last restartpoint instead of
 * `pg_stat_wal_receiver`, which after a failover keeps it unusable a little longer (fail safe).
 */
export class PgReplicaSet implements ReplicaSet {
  readonly #leader: NodeState;
  readonly #replicas: readonly NodeState[];
  readonly #byName: ReadonlyMap<string, NodeState>;
  readonly #pollIntervalMs: number;
  readonly #pollJitter: number;
  readonly #maxLagMs: number;
  readonly #maxLagBytes: bigint;
  readonly #checkTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #waitPollIntervalMs: number;
  readonly #failureThreshold: number;
  readonly #failureWindowMs: number;
  #snapshot: TopologySnapshot;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: PgReplicaSetOptions) {
    knownOptions(options, 'PgReplicaSet', PG_REPLICA_SET_OPTION_KEYS);
    if (options.primary === undefined) {
      throw configError('PgReplicaSet needs { primary, replicas }');
    }
    if (!Array.isArray(options.replicas)) {
      throw configError('PgReplicaSet: replicas must be an array (it may be empty)');
    }
    const settings = replicaSetSettings(options);
    this.#pollIntervalMs = settings.pollIntervalMs;
    this.#pollJitter = settings.pollJitter;
    this.#maxLagMs = settings.maxLagMs;
    this.#maxLagBytes = settings.maxLagBytes;
    this.#checkTimeoutMs = settings.checkTimeoutMs;
    this.#connectTimeoutMs = settings.connectTimeoutMs;
    this.#waitPollIntervalMs = settings.waitPollIntervalMs;
    this.#failureThreshold = settings.failureThreshold;
    this.#failureWindowMs = settings.failureWindowMs;
    const defaults = settings.poolDefaults;
    const node = (option: PgNodeOption, name: string, role: 'leader' | 'replica') =>
      this.#node(
        resolveNode(
          option,
          name,
          role === 'leader' ? 'primary' : name,
          defaults,
          this.#connectTimeoutMs,
        ),
        role,
      );
    this.#leader = node(options.primary, 'primary', 'leader');
    // Array.from visits holes (as undefined) where map would keep them: a sparse array is refused.
    this.#replicas = Array.from(options.replicas, (replica, i) =>
      node(replica, `replica-${i + 1}`, 'replica'),
    );
    const byName = new Map<string, NodeState>();
    for (const state of [this.#leader, ...this.#replicas]) {
      if (byName.has(state.name)) {
        void this.close();
        throw configError(`PgReplicaSet: duplicate node name '${state.name}'`);
      }
      byName.set(state.name, state);
    }
    this.#byName = byName;
    this.#snapshot = this.#buildSnapshot();
    if (this.#pollIntervalMs > 0) {
      // The first check runs at once so that routing to replicas starts within a round trip.
      void this.refresh();
    }
  }

  /** The cached topology; the same object until a check changes something. */
  snapshot(): TopologySnapshot {
    return this.#snapshot;
  }

  /** Names of every node, leader first. */
  get nodeNames(): readonly string[] {
    return [...this.#byName.keys()];
  }

  /** The pool of node `name` (the replicated pool runs routed reads on it). */
  pool(name: string): PgQueryablePool {
    return this.#nodeNamed(name).pool;
  }

  /**
   * The `pg` configuration of node `name`'s connections: its `config`, or the `options` of the
   * `pg.Pool` passed in; undefined for a pool that has none. The routed pool opens the
   * leader's connections with it.
   */
  connectionConfig(name: string): pg.PoolConfig | undefined {
    const config = this.#nodeNamed(name).config;
    return config === undefined ? undefined : { ...config };
  }

  /** Checks every node now; resolves when all checks have finished (never rejects). */
  async refresh(): Promise<void> {
    // The leader first: a replica is judged against the leader's stream, timeline and position.
    await this.#check(this.#leader);
    await Promise.all(this.#replicas.map((node) => this.#check(node)));
    this.#schedule();
  }

  /**
   * Node `name`'s position (WAL insert location on the leader, replay location on a replica)
   * read by a query that started after `mark` (`nextMark()`, taken when a statement on that node
   * completed): at or past everything that statement saw or wrote. Reads run one at a time on
   * the node's check connections and are shared by every caller whose mark precedes their start.
   * Undefined while the node's history is unknown. Rejects when the read failed, or when a
   * replica is no longer in recovery (promoted: it no longer vouches for the leader's history;
   * it is marked unhealthy at once).
   */
  positionAfter(name: string, mark: number): Promise<Position | undefined> {
    return this.#nodeNamed(name).probe.after(mark);
  }

  /** Runs `sql` on the leader's check connections (a classifier's catalog reads, for one). */
  queryLeader(sql: string): Promise<PgRowsResult> {
    return this.#leader.checks.query(sql);
  }

  /** `positionAfter`, read on `client` (one of the node's connections), sent at once. */
  positionOn(name: string, client: PgQueryable): Promise<Position | undefined> {
    return this.#readPosition(this.#nodeNamed(name), client);
  }

  /**
   * The leader's position now (its WAL insert location), read on `client` (one of the leader's
   * connections) if given, else on its check connections. Read it after a commit: it is at or
   * past that commit.
   */
  writePosition(client?: PgQueryable): Promise<Position | undefined> {
    const name = this.#leader.name;
    return client ? this.positionOn(name, client) : this.positionAfter(name, nextMark());
  }

  async waitFor(name: string, position: Position, timeoutMs: number): Promise<boolean> {
    const node = this.#byName.get(name);
    if (node === undefined) return false;
    const deadline = performance.now() + timeoutMs;
    for (let polls = 0; ; polls++) {
      const known = node.status.position;
      if (known !== undefined) {
        if (known.stream !== position.stream || known.epoch !== position.epoch) return false;
        if (known.lsn >= position.lsn) return true;
      }
      const left = deadline - performance.now();
      if (left <= 0 || this.#closed) return false;
      if (polls > 0) await sleep(Math.min(this.#waitPollIntervalMs, left));
      try {
        await this.positionAfter(name, nextMark());
      } catch (error) {
        this.reportError(name, error);
        return false;
      }
    }
  }

  /**
   * Counts `error` against node `name` if it is a lost connection (see `failureThreshold`):
   * a replica with that many within `failureWindowMs` leaves routing until its next good check.
   */
  reportError(name: string, error: unknown): void {
    const node = this.#byName.get(name);
    if (node === undefined || !node.status.healthy || !isConnectionLoss(error)) return;
    const now = performance.now();
    node.failures = node.failures.filter((at) => now - at < this.#failureWindowMs);
    node.failures.push(now);
    if (node.failures.length >= this.#failureThreshold) this.markDown(name);
  }

  /**
   * Takes node `name` out of routing until its next successful check, whatever its recent
   * errors: for what a caller proved, e.g. a replica found behind the position it was chosen for.
   */
  markDown(name: string): void {
    const node = this.#byName.get(name);
    if (node !== undefined) this.#update(node, withHealth(node.status, false));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const nodes = [this.#leader, ...this.#replicas].filter((node) => node !== undefined);
    await Promise.allSettled(nodes.map((node) => node.checking));
    await Promise.allSettled(nodes.flatMap((node) => [node.end?.(), node.endChecks?.()]));
  }

  #nodeNamed(name: string): NodeState {
    const node = this.#byName.get(name);
    if (node === undefined) throw invalidInput(`Unknown node '${name}'`, { node: name });
    return node;
  }

  #node(resolved: ResolvedNode, role: 'leader' | 'replica'): NodeState {
    // A pool without `pg` options (a structural stand-in) is checked through itself.
    const checkPool =
      resolved.config === undefined
        ? undefined
        : createCheckPool(resolved.config, this.#connectTimeoutMs);
    const node: NodeState = {
      ...resolved,
      role,
      status: {
        name: resolved.name,
        // The leader is always used; a replica is trusted only after its first successful check.
        healthy: role === 'leader',
        position: undefined,
        lagMs: undefined,
        lagBytes: undefined,
      },
      history: undefined,
      checking: undefined,
      positionAsOf: 0,
      checks: checkPool ?? resolved.pool,
      endChecks: checkPool === undefined ? undefined : () => checkPool.end(),
      probe: new PositionProbe(() => this.#readPosition(node), 1),
      failures: [],
    };
    return node;
  }

  async #readPosition(node: NodeState, on?: PgQueryable): Promise<Position | undefined> {
    if (node.history === undefined) await this.#check(node);
    const history = node.history;
    if (history === undefined) return undefined;
    const sql =
      node.role === 'leader'
        ? 'SELECT pg_current_wal_insert_lsn()::text AS lsn'
        : 'SELECT pg_last_wal_replay_lsn()::text AS lsn, pg_is_in_recovery() AS in_recovery';
    const asOf = performance.now();
    const row = (await (on === undefined ? this.#timed(node.checks.query(sql)) : on.query(sql)))
      .rows[0];
    if (node.role === 'replica' && row?.['in_recovery'] !== true) {
      this.markDown(node.name);
      throw new Error(`${node.name} is not in recovery: it no longer replays the leader's WAL`);
    }
    const text = row?.['lsn'];
    if (typeof text !== 'string') return undefined;
    const position: Position = {
      stream: history.stream,
      epoch: history.epoch,
      lsn: parseLsn(text),
    };
    this.#advance(node, position, asOf);
    return position;
  }

  /** `query` failing after `connectTimeoutMs` (0: waiting as long as it takes). */
  #timed<T>(query: Promise<T>): Promise<T> {
    const ms = this.#connectTimeoutMs;
    return ms === 0 ? query : withTimeout(query, ms, () => new Error(`no answer within ${ms} ms`));
  }

  #schedule(): void {
    if (this.#closed || this.#pollIntervalMs === 0 || this.#timer !== undefined) return;
    const spread = this.#pollIntervalMs * this.#pollJitter;
    const delay = this.#pollIntervalMs - spread + Math.random() * 2 * spread;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.refresh();
    }, delay);
    this.#timer.unref();
  }

  /** Runs one check of `node`; concurrent callers share a check in flight. */
  #check(node: NodeState): Promise<void> {
    if (this.#closed) return Promise.resolve();
    node.checking ??= this.#runCheck(node).finally(() => {
      node.checking = undefined;
    });
    return node.checking;
  }

  async #runCheck(node: NodeState): Promise<void> {
    const sql = `BEGIN; SET LOCAL statement_timeout = ${this.#checkTimeoutMs}; ${
      node.role === 'leader' ? LEADER_CHECK : REPLICA_CHECK
    }; COMMIT`;
    const asOf = performance.now();
    try {
      // Four statements, so `pg` answers with an array of four results.
      const results: PgRowsResult | PgRowsResult[] = await this.#timed(node.checks.query(sql));
      const row = Array.isArray(results) ? results[2]?.rows[0] : undefined;
      if (row === undefined) throw new Error('check returned no row');
      if (node.role === 'leader') this.#updateLeader(node, row);
      else this.#updateReplica(node, row, asOf);
    } catch {
      // Down, too slow, or an answer that makes no sense: not usable until a check passes.
      this.#update(node, withHealth(node.status, false));
    }
  }
  #updateLeader(node: NodeState, row: Record<string, unknown>): void {
    const { stream, walfile, lsn } = row;
    if (
      row['in_recovery'] === true ||
      typeof stream !== 'string' ||
      typeof walfile !== 'string' ||
      typeof lsn !== 'string'
    ) {
      // A primary in recovery is a standby (a failover moved the leader): not a usable leader.
      this.#update(node, withHealth(node.status, false));
      return;
    }
    // A WAL file name starts with the timeline in 8 hex digits: exact, unlike the control
    // file's checkpoint timeline, which changes only at the first checkpoint after a promotion.
    const epoch = Number.parseInt(walfile.slice(0, 8), 16);
    node.history = { stream, epoch };
    this.#update(node, {
      name: node.name,
      healthy: true,
      position: { stream, epoch, lsn: parseLsn(lsn) },
      lagMs: undefined,
      lagBytes: undefined,
    });
  }

  #updateReplica(node: NodeState, row: Record<string, unknown>, asOf: number): void {
    const { stream, epoch, replay, receive } = row;
    if (
      typeof stream !== 'string' ||
      typeof epoch !== 'number' ||
      typeof replay !== 'string' ||
      row['in_recovery'] !== true
    ) {
      // Not in recovery (promoted) or never replayed anything: not a usable replica.
      this.#update(node, withHealth(node.status, false));
      return;
    }
    node.history = { stream, epoch };
    let position: Position = { stream, epoch, lsn: parseLsn(replay) };
    // A check answered after a read that started later learnt a newer position (waitFor, a
    // routed read) must not move the cached position back: the router would then send reads
    // to the leader that the replica can serve. A newer check may (a rebuilt replica).
    const known = node.status.position;
    if (
      known !== undefined &&
      node.positionAsOf > asOf &&
      known.stream === stream &&
      known.epoch === epoch &&
      known.lsn > position.lsn
    ) {
      position = known;
    } else {
      node.positionAsOf = asOf;
    }
    const leaderAt = this.#leader.status.position;
    // Until the leader's history is known, a replica cannot be shown to belong to it.
    const sameHistory =
      leaderAt !== undefined && leaderAt.stream === stream && leaderAt.epoch === epoch;
    const lagBytes = sameHistory ? max0(leaderAt.lsn - position.lsn) : undefined;
    const pending = typeof receive === 'string' && parseLsn(receive) > position.lsn;
    let lagMs: number | undefined;
    if (!pending || lagBytes === 0n) lagMs = 0;
    else if (typeof row['lag_ms'] === 'number') lagMs = Math.max(0, Math.round(row['lag_ms']));
    const tooFarBehind =
      lagMs !== undefined &&
      lagMs > this.#maxLagMs &&
      (lagBytes === undefined || lagBytes > this.#maxLagBytes);
    this.#update(node, {
      name: node.name,
      healthy: sameHistory && !tooFarBehind,
      position,
      lagMs,
      lagBytes,
    });
  }

  /** Raises a node's cached position after a read of it (never lowers it). */
  #advance(node: NodeState, position: Position, asOf: number): void {
    const known = node.status.position;
    if (
      known !== undefined &&
      known.stream === position.stream &&
      known.epoch === position.epoch &&
      known.lsn >= position.lsn
    ) {
      return;
    }
    node.positionAsOf = Math.max(node.positionAsOf, asOf);
    this.#update(node, { ...node.status, position });
  }

  #update(node: NodeState, status: NodeStatus): void {
    if (status === node.status) return;
    node.status = status;
    this.#snapshot = this.#buildSnapshot();
  }

  #buildSnapshot(): TopologySnapshot {
    return { leader: this.#leader.status, replicas: this.#replicas.map((node) => node.status) };
  }
}
function max0(value: bigint): bigint {
  return value < 0n ? 0n : value;
}
