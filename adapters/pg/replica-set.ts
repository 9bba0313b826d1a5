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
import { followingLeader } from './following-client.js';
import {
  checkRow,
  createNode,
  leaderFromRow,
  type NodeState,
  replicaFromRow,
} from './node-checks.js';
import {
  createCheckPool,
  LEADER_CHECK,
  type PgNodeOption,
  parseLsn,
  REPLICA_CHECK,
  type ResolvedNode,
  resolveNode,
  withHealth,
} from './pg-nodes.js';
import { nextMark } from './position-probe.js';
import { PrimaryFollower, registerFollower } from './primary-follower.js';
import { isConnectionLoss } from './replica-errors.js';
import { ReplicaRoster } from './replica-roster.js';
import {
  PG_REPLICA_SET_OPTION_KEYS,
  type PgReplicaSetOptions,
  replicaSetSettings,
} from './replica-set-options.js';
import type { PgQueryable, PgQueryablePool, PgRowsResult } from './sql.js';

export { formatLsn, type PgNodeOption, parseLsn } from './pg-nodes.js';
export type { ReplicaSource } from './replica-roster.js';
export type { PgReplicaSetOptions, PrimaryCandidateOption } from './replica-set-options.js';

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
  /** Set when `primary` is a list of candidates: which of them is the primary now. */
  readonly #follower: PrimaryFollower | undefined;
  readonly #roster: ReplicaRoster;
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
  /** Whether the background checks have started (on the first `snapshot()` or `refresh()`). */
  #started = false;
  #closed = false;

  /**
   * `internal.leaderPool` (the routed pool): the pool the leader's statements run on when
   * `primary` is a list of candidates; it must follow the primary itself.
   */
  constructor(options: PgReplicaSetOptions, internal: { leaderPool?: PgQueryablePool } = {}) {
    knownOptions(options, 'PgReplicaSet', PG_REPLICA_SET_OPTION_KEYS);
    if (options.primary === undefined) {
      throw configError('PgReplicaSet needs { primary, replicas }');
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
    const candidates = settings.primaryCandidates;
    if (candidates === undefined) {
      this.#leader = node(options.primary as PgNodeOption, 'primary', 'leader');
    } else {
      const follower = new PrimaryFollower({
        configs: candidates,
        connectTimeoutMs: this.#connectTimeoutMs,
        failoverPollIntervalMs: settings.failoverPollIntervalMs,
        check: (pool) => checkRow(pool, LEADER_CHECK, this.#checkTimeoutMs, (q) => this.#timed(q)),
        onChange: () => this.#primaryChanged(),
      });
      this.#follower = follower;
      registerFollower(this, follower);
      const leader = followingLeader(follower, internal.leaderPool);
      this.#leader = this.#node(leader.resolved, 'leader', leader.checks);
    }
    const source = typeof options.replicas === 'function' ? options.replicas : undefined;
    // Array.from visits holes (as undefined) where map would keep them: a sparse array is refused.
    const given = source === undefined ? (options.replicas as readonly PgNodeOption[]) : [];
    const listed = Array.from(given, (replica, i) => node(replica, `replica-${i + 1}`, 'replica'));
    this.#roster = new ReplicaRoster(listed, source, (option, name) =>
      node(option, name, 'replica'),
    );
    const names = new Set<string>();
    for (const state of [this.#leader, ...listed]) {
      if (names.has(state.name)) {
        void this.close();
        throw configError(`PgReplicaSet: duplicate node name '${state.name}'`);
      }
      names.add(state.name);
    }
    this.#snapshot = this.#buildSnapshot();
  }

  /**
   * The cached topology; the same object until a check changes something. The first call starts
   * the background checks (construction opens no connection, as with `pg.Pool`): until the
   * first check has answered, every replica counts as unhealthy and reads go to the leader.
   */
  snapshot(): TopologySnapshot {
    if (!this.#started) {
      this.#started = true;
      if (this.#pollIntervalMs > 0) void this.refresh();
    }
    return this.#snapshot;
  }

  /** Names of every node, leader first. */
  get nodeNames(): readonly string[] {
    return [this.#leader.name, ...this.#roster.nodes.map((node) => node.name)];
  }

  /** Calls `listener` with every replica's pool, now and as `replicas()` adds them. */
  onReplicaPool(listener: (pool: PgQueryablePool) => void): void {
    this.#roster.onPool(listener);
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
    const node = this.#nodeNamed(name);
    const config = (node === this.#leader && this.#follower?.current?.config) || node.config;
    return config === undefined ? undefined : { ...config };
  }

  /** Checks every node now; resolves when all checks have finished (never rejects). */
  async refresh(): Promise<void> {
    this.#started = true;
    // The leader first: a replica is judged against the leader's stream, timeline and position.
    await this.#check(this.#leader);
    if (await this.#roster.sync(this.#connectTimeoutMs, new Set([this.#leader.name]))) {
      this.#snapshot = this.#buildSnapshot();
    }
    await Promise.all(this.#roster.nodes.map((node) => this.#check(node)));
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
    const node = this.#find(name);
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
    const node = this.#find(name);
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
    const node = this.#find(name);
    if (node !== undefined) this.#update(node, withHealth(node.status, false));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    // The leader is undefined when a bad option made the constructor close the set.
    const leader = this.#leader as NodeState | undefined;
    await Promise.allSettled([leader?.checking]);
    await Promise.allSettled([leader?.end?.(), leader?.endChecks?.(), this.#roster?.close()]);
  }

  #find(name: string): NodeState | undefined {
    return name === this.#leader.name ? this.#leader : this.#roster.find(name);
  }

  #nodeNamed(name: string): NodeState {
    const node = this.#find(name);
    if (node === undefined) throw invalidInput(`Unknown node '${name}'`, { node: name });
    return node;
  }

  /** The primary moved (or was lost): its history is read again before any position. */
  #primaryChanged(): void {
    this.#leader.history = undefined;
    void this.refresh();
  }

  #node(
    resolved: ResolvedNode,
    role: 'leader' | 'replica',
    own?: { pool: PgQueryablePool; end: () => Promise<void> },
  ): NodeState {
    // A pool without `pg` options (a structural stand-in) is checked through itself.
    const checkPool =
      own !== undefined || resolved.config === undefined
        ? undefined
        : createCheckPool(resolved.config, this.#connectTimeoutMs);
    const checks = own ?? (checkPool && { pool: checkPool, end: () => checkPool.end() });
    return createNode(resolved, role, checks, (node) => this.#readPosition(node));
  }

  async #readPosition(node: NodeState, on?: PgQueryable): Promise<Position | undefined> {
    if (node.history === undefined) await this.#check(node);
    const history = node.history;
    if (history === undefined) return undefined;
    // Following a primary, the node that answers may have changed since `history` was read:
    // its timeline comes with its position (the candidates share one system identifier).
    const sql =
      node.role === 'replica'
        ? 'SELECT pg_last_wal_replay_lsn()::text AS lsn, pg_is_in_recovery() AS in_recovery'
        : this.#follower === undefined
          ? 'SELECT pg_current_wal_insert_lsn()::text AS lsn'
          : 'SELECT lsn::text AS lsn, pg_walfile_name(lsn) AS walfile FROM pg_current_wal_insert_lsn() lsn';
    const asOf = performance.now();
    const row = (await (on === undefined ? this.#timed(node.checks.query(sql)) : on.query(sql)))
      .rows[0];
    if (node.role === 'replica' && row?.['in_recovery'] !== true) {
      this.markDown(node.name);
      throw new Error(`${node.name} is not in recovery: it no longer replays the leader's WAL`);
    }
    const text = row?.['lsn'];
    if (typeof text !== 'string') return undefined;
    const walfile = row?.['walfile'];
    const position: Position = {
      stream: history.stream,
      epoch: typeof walfile === 'string' ? Number.parseInt(walfile.slice(0, 8), 16) : history.epoch,
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
    const asOf = performance.now();
    try {
      let row: Record<string, unknown> | undefined;
      if (node === this.#leader && this.#follower !== undefined) {
        const answer = await this.#follower.discover();
        row = answer !== undefined && 'row' in answer ? answer.row : undefined;
      } else {
        row = await checkRow(
          node.checks,
          node.role === 'leader' ? LEADER_CHECK : REPLICA_CHECK,
          this.#checkTimeoutMs,
          (query) => this.#timed(query),
        );
      }
      if (node.role === 'leader') {
        const leader = row === undefined ? undefined : leaderFromRow(node.name, row);
        // A primary in recovery is a standby (a failover moved the leader): not a usable leader.
        if (leader === undefined) throw new Error('not a usable leader');
        node.history = leader.history;
        this.#update(node, leader.status);
        return;
      }
      const status = replicaFromRow(
        node,
        row as Record<string, unknown>,
        asOf,
        this.#leader.status.position,
        {
          maxLagMs: this.#maxLagMs,
          maxLagBytes: this.#maxLagBytes,
        },
      );
      // Not in recovery: promoted. With candidates to follow, the primary may have moved.
      if (status === undefined && (row as Record<string, unknown>)['in_recovery'] === false) {
        this.#follower?.replicaPromoted(node.config);
      }
      if (status === undefined) throw new Error('not a usable replica');
      this.#update(node, status);
    } catch {
      // Down, too slow, or an answer that makes no sense: not usable until a check passes.
      this.#update(node, withHealth(node.status, false));
    }
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
    return {
      leader: this.#leader.status,
      replicas: this.#roster.nodes.map((node) => node.status),
    };
  }
}
