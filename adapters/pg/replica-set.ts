import pg from 'pg';
import { configError, invalidInput } from '../../src/errors.js';
import type { Position } from '../../src/session/position.js';
import type { NodeStatus, ReplicaSet, TopologySnapshot } from '../../src/session/replica-set.js';
import { sleep, withTimeout } from '../../src/util/timers.js';
import {
  isQueryablePool,
  type PgQueryable,
  type PgQueryablePool,
  type PgRowsResult,
} from './sql.js';

/**
 * One node: a pool you own (`{ pool }`, or the pool itself; never ended by Causeway) or a `pg`
 * pool configuration (`{ config }`, or a connection string; Causeway creates the pool and ends
 * it on `close()`). `name` defaults to `'primary'`, `'replica-1'`, `'replica-2'`...
 */
export type PgNodeOption<P extends PgQueryablePool = PgQueryablePool> =
  | P
  | string
  | { readonly name?: string; readonly pool: P }
  | { readonly name?: string; readonly config: object | string };

export interface PgReplicaSetOptions<P extends PgQueryablePool = PgQueryablePool> {
  /** The primary (the leader): a pool, `{ name?, pool }`, `{ name?, config }` or a URL. */
  primary: PgNodeOption<P>;
  /** Its streaming replicas, same forms. May be empty (every read then goes to the leader). */
  replicas: readonly PgNodeOption<P>[];
  /**
   * Milliseconds between background checks of every node. Default 1000. GitLab checks every
   * 60 s because its routing reads positions on demand; session routing decides on the cached
   * positions, so they must be fresh: one cheap query per node per second keeps a replica usable
   * about a second after it catches up. 0 disables background polling (call `refresh()`).
   */
  pollIntervalMs?: number;
  /** Random spread of each interval, as a fraction (0.2 = ±20 %), so that many processes do not
   * check in lockstep. Default 0.2. */
  pollJitter?: number;
  /**
   * A replica lagging more than this many milliseconds is unhealthy, unless its byte lag is at
   * most `maxLagBytes`. Default 60000 (GitLab's figure).
   */
  maxLagMs?: number;
  /** Byte lag under which a replica stays healthy whatever its time lag. Default 8 MiB (GitLab). */
  maxLagBytes?: number;
  /**
   * `statement_timeout` of every check query, in milliseconds. Default 100 (GitLab's): a check
   * that takes longer marks the node unhealthy rather than hold a connection.
   */
  checkTimeoutMs?: number;
  /** Longest wait for a connection (plus the check) before the node counts as down. Default 2000. */
  connectTimeoutMs?: number;
  /** Interval of `waitFor`'s polls of a replica's replay position. Default 10 ms. */
  waitPollIntervalMs?: number;
}

/** Parses a PostgreSQL text LSN `'X/Y'` (hexadecimal halves) into a bigint `(X << 32) | Y`. */
export function parseLsn(text: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (match === null)
    throw invalidInput('Not a PostgreSQL LSN', { lsn: String(text).slice(0, 40) });
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** Formats a bigint WAL location the way PostgreSQL prints it (`'16/B374D848'`). */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

interface NodeState {
  readonly name: string;
  readonly pool: PgQueryablePool;
  /** Ends the pool if Causeway created it; a pool passed in is never ended. */
  readonly end: (() => Promise<void>) | undefined;
  readonly role: 'leader' | 'replica';
  status: NodeStatus;
  /** Stream and timeline last seen on this node; positions read later reuse them. */
  history: { stream: string; epoch: number } | undefined;
  checking: Promise<void> | undefined;
  /** When (performance.now()) the query that gave `status.position` started. */
  positionAsOf: number;
}

/** A node that is down or not usable, keeping its last known position for diagnostics. */
function withHealth(status: NodeStatus, healthy: boolean): NodeStatus {
  return status.healthy === healthy ? status : { ...status, healthy };
}

// Checks run as one simple-protocol round trip with a transaction-local statement timeout, so
// the setting never leaks into the pooled connection; on an error `pool.query` discards the
// connection rather than return one in a failed transaction.
const LEADER_CHECK = `SELECT s.system_identifier::text AS stream, pg_is_in_recovery() AS in_recovery,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_insert_lsn()) END AS walfile,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END AS lsn
FROM pg_control_system() s`;

// A replica's timeline is the one it receives (pg_stat_wal_receiver.received_tli); while it is
// not streaming, the timeline of its last restartpoint. Lag in time is measured only when WAL
// is pending (received but not replayed): on an idle primary `now() - last replay` grows with
// nothing to replay.
const REPLICA_CHECK = `SELECT s.system_identifier::text AS stream, pg_is_in_recovery() AS in_recovery,
  coalesce(r.received_tli, c.timeline_id) AS epoch,
  pg_last_wal_replay_lsn()::text AS replay, pg_last_wal_receive_lsn()::text AS receive,
  (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::float8 AS lag_ms
FROM pg_control_system() s CROSS JOIN pg_control_checkpoint() c
LEFT JOIN pg_stat_wal_receiver r ON true`;

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
  #snapshot: TopologySnapshot;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: PgReplicaSetOptions) {
    if (options === null || typeof options !== 'object' || options.primary === undefined) {
      throw configError('PgReplicaSet needs { primary, replicas }');
    }
    if (!Array.isArray(options.replicas)) {
      throw configError('PgReplicaSet: replicas must be an array (it may be empty)');
    }
    this.#pollIntervalMs = nonNegative(options.pollIntervalMs ?? 1000, 'pollIntervalMs');
    this.#pollJitter = nonNegative(options.pollJitter ?? 0.2, 'pollJitter');
    if (this.#pollJitter >= 1) throw configError('PgReplicaSet: pollJitter must be below 1');
    this.#maxLagMs = nonNegative(options.maxLagMs ?? 60_000, 'maxLagMs');
    this.#maxLagBytes = BigInt(
      Math.floor(nonNegative(options.maxLagBytes ?? 8 * 1024 * 1024, 'maxLagBytes')),
    );
    // An integer: it is written into the check's SQL text.
    this.#checkTimeoutMs = Math.max(
      1,
      Math.round(nonNegative(options.checkTimeoutMs ?? 100, 'checkTimeoutMs')),
    );
    this.#connectTimeoutMs = nonNegative(options.connectTimeoutMs ?? 2000, 'connectTimeoutMs');
    this.#waitPollIntervalMs = Math.max(
      1,
      nonNegative(options.waitPollIntervalMs ?? 10, 'waitPollIntervalMs'),
    );

    this.#leader = resolveNode(options.primary, 'primary', 'leader', this.#connectTimeoutMs);
    // Array.from visits holes (as undefined) where map would keep them: a sparse array is refused.
    this.#replicas = Array.from(options.replicas, (replica, i) =>
      resolveNode(replica, `replica-${i + 1}`, 'replica', this.#connectTimeoutMs),
    );
    const byName = new Map<string, NodeState>();
    for (const node of [this.#leader, ...this.#replicas]) {
      if (byName.has(node.name))
        throw configError(`PgReplicaSet: duplicate node name '${node.name}'`);
      byName.set(node.name, node);
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
    const node = this.#byName.get(name);
    if (node === undefined) throw invalidInput(`Unknown node '${name}'`, { node: name });
    return node.pool;
  }

  /** Checks every node now; resolves when all checks have finished (never rejects). */
  async refresh(): Promise<void> {
    // The leader first: a replica is judged against the leader's stream, timeline and position.
    await this.#check(this.#leader);
    await Promise.all(this.#replicas.map((node) => this.#check(node)));
    this.#schedule();
  }

  /**
   * Reads node `name`'s current position on `client` (one of that node's connections, e.g. the
   * one a read just ran on): the WAL insert location on the leader, the replay location on a
   * replica. Resolves undefined when the node's history is not known yet or it reports none.
   * Rejects when a replica is no longer in recovery (promoted): it then no longer replays the
   * leader's WAL, so nothing read on it vouches for the leader's history. The node is marked
   * unhealthy at once, without waiting for the next check.
   */
  async readPosition(name: string, client: PgQueryable): Promise<Position | undefined> {
    const node = this.#byName.get(name);
    if (node === undefined) throw invalidInput(`Unknown node '${name}'`, { node: name });
    if (node.history === undefined) await this.#check(node);
    const history = node.history;
    if (history === undefined) return undefined;
    const sql =
      node.role === 'leader'
        ? 'SELECT pg_current_wal_insert_lsn()::text AS lsn'
        : 'SELECT pg_last_wal_replay_lsn()::text AS lsn, pg_is_in_recovery() AS in_recovery';
    const asOf = performance.now();
    const row = (await client.query(sql)).rows[0];
    if (node.role === 'replica' && row?.['in_recovery'] !== true) {
      this.#update(node, withHealth(node.status, false));
      throw new Error(`${name} is not in recovery: it no longer replays the leader's WAL`);
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

  /**
   * The leader's position now (its WAL insert location), read on `client` if given, else on a
   * connection of the primary's pool. Read it after a commit: it is at or past that commit.
   */
  writePosition(client?: PgQueryable): Promise<Position | undefined> {
    return this.readPosition(this.#leader.name, client ?? this.#leader.pool);
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
        await this.readPosition(name, node.pool);
      } catch (error) {
        this.reportError(name, error);
        return false;
      }
    }
  }

  reportError(name: string, _error: unknown): void {
    const node = this.#byName.get(name);
    if (node === undefined || !node.status.healthy) return;
    node.status = withHealth(node.status, false);
    this.#snapshot = this.#buildSnapshot();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const nodes = [this.#leader, ...this.#replicas];
    await Promise.allSettled(nodes.map((node) => node.checking));
    await Promise.allSettled(nodes.map((node) => node.end?.()));
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
      const query = node.pool.query(sql);
      // Four statements, so `pg` answers with an array of four results.
      const results: PgRowsResult | PgRowsResult[] =
        this.#connectTimeoutMs === 0
          ? await query
          : await withTimeout(
              query,
              this.#connectTimeoutMs,
              () => new Error(`no answer within ${this.#connectTimeoutMs} ms`),
            );
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

function resolveNode(
  option: PgNodeOption,
  defaultName: string,
  role: 'leader' | 'replica',
  connectTimeoutMs: number,
): NodeState {
  const where = role === 'leader' ? 'primary' : defaultName;
  if (option === null || (typeof option !== 'object' && typeof option !== 'string')) {
    throw configError(`PgReplicaSet: ${where} must be a pg Pool, { pool }, { config } or a URL`);
  }
  let name = defaultName;
  let pool: PgQueryablePool;
  let end: (() => Promise<void>) | undefined;
  if (typeof option === 'string') {
    const created = createPool(option, connectTimeoutMs);
    pool = created;
    end = () => created.end();
  } else if (isQueryablePool(option)) {
    pool = option;
  } else if ('pool' in option) {
    if (!isQueryablePool(option.pool)) {
      throw configError(`PgReplicaSet: ${where}.pool is not a pg Pool`);
    }
    pool = option.pool;
    name = option.name ?? name;
  } else if ('config' in option) {
    const created = createPool(option.config, connectTimeoutMs);
    pool = created;
    end = () => created.end();
    name = option.name ?? name;
  } else {
    throw configError(`PgReplicaSet: ${where} must be a pg Pool, { pool }, { config } or a URL`);
  }
  if (typeof name !== 'string' || name === '') {
    throw configError(`PgReplicaSet: ${where}.name must be a non-empty string`);
  }
  const status: NodeStatus = {
    name,
    // The leader is always used; a replica is trusted only after its first successful check.
    healthy: role === 'leader',
    position: undefined,
    lagMs: undefined,
    lagBytes: undefined,
  };
  return {
    name,
    pool,
    end,
    role,
    status,
    history: undefined,
    checking: undefined,
    positionAsOf: 0,
  };
}

function createPool(config: object | string, connectTimeoutMs: number): pg.Pool {
  const options: pg.PoolConfig =
    typeof config === 'string' ? { connectionString: config } : { ...(config as pg.PoolConfig) };
  // pg waits forever for a connection by default; a dead replica must fail fast instead.
  options.connectionTimeoutMillis ??= connectTimeoutMs;
  const pool = new pg.Pool(options);
  // An idle client's error (a replica restarting) must not crash the process: the check
  // that follows marks the node down.
  pool.on('error', () => {});
  return pool;
}

function max0(value: bigint): bigint {
  return value < 0n ? 0n : value;
}

function nonNegative(value: number, option: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw configError(`PgReplicaSet: ${option} must be a finite number >= 0`, { [option]: value });
  }
  return value;
}
