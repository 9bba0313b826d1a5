// What the routed pool is configured with, what it reports, and what it needs from its replica
// set (an interface, so that any topology that provides it can stand behind the pool).
import type pg from 'pg';
import {
  type ConsistencyLevel,
  configError,
  type Position,
  type ReplicaSet,
  type RouteReason,
  type Router,
  type RouterOptions,
} from '../../src/adapter-kit.js';
import type { SqlClassification, SqlClassifier, SqlClassifierOptions } from './classify.js';
import type { PgNodeOption } from './pg-nodes.js';
import type { ReplicaSource } from './replica-roster.js';
import type { PgReplicaSetOptions, PrimaryCandidateOption } from './replica-set-options.js';
import type { PgQueryable, PgQueryablePool } from './sql.js';

/** Why a statement went where it went: the router's reasons plus the pool's own. */
export type PoolRouteReason =
  | RouteReason
  /** Not provably read-only: a write, a transaction statement, a lock... */
  | 'not-read-only'
  /** Outside any session, with `readOutsideSession: 'primary'`. */
  | 'outside-session'
  /** A statement on a checked-out client (see `routeCheckedOutReads`). */
  | 'checked-out-client'
  /** A pg-cursor / pg-query-stream Submittable. */
  | 'submittable'
  /** A statement of a read-only transaction running on a replica (see `routeCheckedOutReads`). */
  | 'read-only-transaction'
  /**
   * A retry on the leader after the replica failed (connection, hot-standby conflict, a
   * connection setup that failed), or could not vouch for its answer (no longer in recovery, or
   * behind the position it was chosen for: restarted).
   */
  | 'replica-error';

/** The payload of the pool's `'route'` event, one per statement. No SQL text, no values. */
export interface PoolRouteEvent {
  readonly target: 'leader' | 'replica';
  readonly node: string;
  readonly reason: PoolRouteReason;
  readonly level: ConsistencyLevel;
  /** The classifier's verdict on the statement (e.g. `'select'`, `'calls nextval()'`). */
  readonly statement: string;
  readonly waitedMs?: number;
  readonly lagMs?: number;
}

/** What the routed pool needs from its topology (`PgReplicaSet` provides it). */
export interface RoutingReplicaSet extends ReplicaSet {
  /** Names of every node, leader first. */
  readonly nodeNames: readonly string[];
  /** The pool of node `name`: routed reads run on a replica's pool. */
  pool(name: string): PgQueryablePool;
  /** The `pg` configuration of node `name`'s connections, when known. */
  connectionConfig(name: string): pg.PoolConfig | undefined;
  /** Node `name`'s position, read by a query that started after `mark` (see `nextMark`). */
  positionAfter(name: string, mark: number): Promise<Position | undefined>;
  /** Node `name`'s position read on `client`, one of its connections, sent at once. */
  positionOn(name: string, client: PgQueryable): Promise<Position | undefined>;
  /** The leader's position now. */
  writePosition(): Promise<Position | undefined>;
  /** Runs `sql` on the leader's own check connections (e.g. a classifier's catalog reads). */
  queryLeader(sql: string): Promise<{ readonly rows: readonly unknown[] }>;
  /** Takes node `name` out of routing until its next successful check. */
  markDown(name: string): void;
}

/** A classifier as the pool uses it; `notReadOnly` (when present) learns from a replica's 25006. */
export interface PoolClassifier {
  classify(sql: string): SqlClassification;
  notReadOnly?(sql: string): void;
  /** Where to read the cluster's catalog (the pool gives its leader's check connections). */
  useCatalog?(query: (sql: string) => Promise<{ readonly rows: readonly unknown[] }>): void;
  /** Resolves once the classifier can judge statements (its parser and catalog are loaded). */
  ready?(): Promise<void>;
}

export interface ReplicatedPoolOptions {
  /**
   * The primary: `{ name?, config }` or a connection URL (the replicated pool is itself a
   * `pg.Pool` of the primary, created with this configuration), or a `pg.Pool` / `{ name?, pool }`
   * whose `options` are used for the replicated pool's own connections (that pool is left alone:
   * not used, not ended). Or a list of candidates (URLs or `{ config }`, differing only in host
   * and port) whose primary the pool follows through a failover: see
   * `PgReplicaSetOptions.primary`; the pool's settings are the first candidate's.
   */
  primary?: PgNodeOption<pg.Pool> | readonly PrimaryCandidateOption[];
  /**
   * Streaming replicas: a `pg.Pool`, `{ name?, pool }`, `{ name?, config }` or a URL; or a
   * function giving them on every check (see `PgReplicaSetOptions.replicas`).
   */
  replicas?: readonly PgNodeOption<pg.Pool>[] | ReplicaSource<pg.Pool>;
  /**
   * A replica set to use instead of creating one from `primary`/`replicas` (then both may be
   * omitted; `router.replicaSet` is used when only a router is given). The pool opens the
   * leader's connections with `replicaSet.connectionConfig(leader)`. A set passed in is not
   * closed by `end()`.
   */
  replicaSet?: RoutingReplicaSet;
  /** Options of the replica set the pool creates (see `PgReplicaSetOptions`). */
  replicaSetOptions?: Omit<PgReplicaSetOptions, 'primary' | 'replicas'>;
  /**
   * The router: a `Router` to use (e.g. shared with the middleware; it must route over this
   * pool's replica set), or the options of the one the pool builds over its replica set (`{
   * level, onNoCaughtUp, waitTimeoutMs, telemetry }`, each with `Router`'s default: reads at
   * `'read-your-writes'`, `'leader'` when no replica has caught up, 500 ms, a span event). Pass
   * `pool.router` to the middleware.
   */
  router?: Router | Omit<RouterOptions, 'replicaSet'>;
  /**
   * Reads outside any session: `'primary'` (default: behave exactly like a pool on the primary)
   * or `'replica'` (provably read-only statements go to the healthy replicas in turn, with no
   * session guarantee: eventual consistency).
   */
  readOutsideSession?: 'primary' | 'replica';
  /**
   * Route provably read-only statements on checked-out clients too, while the client is outside
   * a transaction and has run nothing but such reads, and run a `BEGIN READ ONLY` /
   * `START TRANSACTION READ ONLY` transaction whole on one caught-up replica connection. Default
   * false: a checked-out client runs everything on the primary. Kysely checks out a client for
   * every query, so set this to true for its reads to reach replicas. The work then runs on a
   * replica connection, not on the client: it cannot see the client's session state (temporary
   * tables, `SET` from an earlier checkout), which is why it is off by default. With `true`,
   * `connect()` hands out a connection of the primary, as `pg.Pool` does. With `'on-demand'`,
   * it hands out a `RoutedCheckout` instead, which takes a primary connection only when a
   * statement first needs one and keeps it until `release()`: reads routed to replicas through
   * checked-out clients do not also hold a primary connection, at the price of `pg.PoolClient`
   * semantics (see `RoutedCheckout`: the pool's counts and events follow the primary connection
   * only, and `connect()` itself never fails or waits).
   */
  routeCheckedOutReads?: boolean | 'on-demand';
  /**
   * A classifier (anything with `classify`, and optionally `notReadOnly`, which is told a text a
   * replica refused as a write), or options for the built-in one (e.g. `{ readOnlyFunctions:
   * ['pg_sleep'] }`). The pool points it at its leader's catalog (`useCatalog`), if it has one.
   */
  classifier?: SqlClassifier | PoolClassifier | SqlClassifierOptions;
}

/** Every key of `ReplicatedPoolOptions`: any other is refused. */
export const REPLICATED_POOL_OPTION_KEYS: readonly (keyof ReplicatedPoolOptions)[] = [
  'primary',
  'replicas',
  'replicaSet',
  'replicaSetOptions',
  'router',
  'readOutsideSession',
  'routeCheckedOutReads',
  'classifier',
];

/** `routeCheckedOutReads`, checked (default false). */
export function checkedOutMode(value: unknown): boolean | 'on-demand' {
  if (value === undefined || value === true || value === false || value === 'on-demand') {
    return value ?? false;
  }
  throw configError(
    "createReplicatedPool: routeCheckedOutReads must be true, false or 'on-demand'",
    { routeCheckedOutReads: value },
  );
}
