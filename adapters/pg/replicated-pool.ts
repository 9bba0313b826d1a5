import pg from 'pg';
import {
  bindToSession,
  configError,
  currentSession,
  knownOptions,
  Router,
  type SessionContext,
} from '../../src/adapter-kit.js';
import { SqlClassifier, type SqlClassifierOptions } from './classify.js';
import { followingClientClass } from './following-client.js';
import { copyConfig } from './pg-nodes.js';
import {
  deliver,
  type ParsedQuery,
  type PgQueryConfig,
  type PgQueryResult,
  parseQueryArgs,
  queryText,
  type RawQuery,
  type Untyped,
} from './pg-types.js';
import {
  checkedOutMode,
  type PoolClassifier,
  type PoolRouteEvent,
  type PoolRouteReason,
  REPLICATED_POOL_OPTION_KEYS,
  type ReplicatedPoolOptions,
  type RoutingReplicaSet,
} from './pool-contracts.js';
import { followerOf } from './primary-follower.js';
import { isRoutingReplicaSet, primaryName, resolvePrimaryConfig } from './primary-option.js';
import { ReplicaRouting } from './replica-routing.js';
import { PgReplicaSet } from './replica-set.js';
import { handOut, type ReleaseCallback } from './routed-checkout.js';
import {
  type ClientRouting,
  checkoutOf,
  freshCheckout,
  type RoutedClient,
  routedClientClass,
  settleCheckout,
} from './routed-client.js';

export {
  classifySql,
  PRIMARY_ONLY_FUNCTIONS,
  type SqlClassification,
  SqlClassifier,
  type SqlClassifierOptions,
} from './classify.js';
export type { PgQueryConfig, PgQueryResult, PgSubmittable } from './pg-types.js';
export type {
  PoolClassifier,
  PoolRouteEvent,
  PoolRouteReason,
  ReplicatedPoolOptions,
  RoutingReplicaSet,
} from './pool-contracts.js';

/** A client of the routed pool, as `connect()` hands it out: a `pg.PoolClient` of the primary. */
export type PgPoolClient = pg.PoolClient;

const poolQuery = pg.Pool.prototype.query as RawQuery;
const poolEnd = pg.Pool.prototype.end as (
  this: pg.Pool,
  callback?: (error?: Error) => void,
) => unknown;

/** Settings of the primary's configuration that name the primary itself, not how to use it. */
const PRIMARY_ONLY = ['connectionString', 'host', 'port'] as const;

/**
 * A drop-in `pg.Pool` over a primary and its replicas: it *is* a `pg.Pool` of the primary (its
 * own connections, counts, events, `maxUses`, timeouts and `end()` are pg-pool's), with a pool
 * per replica inside. Inside a session (the middleware, or `withSession()`), a provably read-only
 * statement goes where the router says; every statement raises the floors of the session active
 * when it runs, before its result is returned: the write floor after a commit on the primary,
 * the read floor after a read. A floor is the node's position read by a query that started
 * after the statement completed, on the node's own check connections, shared by the statements
 * that completed before it (see `PgReplicaSet.positionAfter`). Everything else, every
 * transaction (but see `routeCheckedOutReads`) and every checked-out client runs on the primary.
 * Outside a session it is a pool on the primary (see `readOutsideSession`).
 *
 * `'connect'` listeners also run on every new replica connection, before its first routed read;
 * a replica connection whose listeners' queries failed is discarded and the read goes to the
 * primary. Emits `'route'` (`PoolRouteEvent`) for every statement.
 */
export class ReplicatedPool extends pg.Pool {
  readonly replicaSet: RoutingReplicaSet;
  readonly router: Router;
  readonly #ownsReplicaSet: boolean;
  readonly #classifier: PoolClassifier;
  readonly #readOutsideSession: 'primary' | 'replica';
  readonly #routeCheckedOutReads: boolean | 'on-demand';
  /**
   * Statements the pool runs on the primary itself (routed and reported already), with the
   * floor raise their client deferred to the pool once they ran (see `#onPrimary`).
   */
  readonly #leaderOnly = new WeakMap<object, Promise<void> | undefined>();
  readonly #replicas: ReplicaRouting;
  readonly #onReplicaConnect = (client: pg.PoolClient) =>
    this.#replicas.setUpReplicaConnection(client);
  readonly #routing: ClientRouting;
  /** True while pg-pool's `query` checks out its connection (it calls `connect` at once). */
  #direct = false;

  constructor(options: ReplicatedPoolOptions) {
    if (options === null || typeof options !== 'object') {
      throw configError('createReplicatedPool needs { primary, replicas }');
    }
    knownOptions(options, 'createReplicatedPool', REPLICATED_POOL_OPTION_KEYS);
    // Options first, so that a bad one throws before any pool is created.
    const readOutsideSession = options.readOutsideSession ?? 'primary';
    if (readOutsideSession !== 'primary' && readOutsideSession !== 'replica') {
      throw configError("createReplicatedPool: readOutsideSession must be 'primary' or 'replica'", {
        readOutsideSession,
      });
    }
    // A Router to share, or the options of the one built here (checked now, before any pool).
    const sharedRouter = options.router instanceof Router ? options.router : undefined;
    const routerOptions =
      sharedRouter === undefined && options.router !== undefined
        ? knownOptions(options.router, 'createReplicatedPool: router', [
            'level',
            'onNoCaughtUp',
            'waitTimeoutMs',
            'telemetry',
          ])
        : undefined;
    const given = options.replicaSet ?? sharedRouter?.replicaSet;
    if (given !== undefined && !isRoutingReplicaSet(given)) {
      throw configError(
        'createReplicatedPool: replicaSet (or router.replicaSet) must be a PgReplicaSet',
      );
    }
    if (given !== undefined && sharedRouter !== undefined && sharedRouter.replicaSet !== given) {
      throw configError("createReplicatedPool: router must route over the pool's replicaSet");
    }
    if (given === undefined && (options.primary === undefined || options.replicas === undefined)) {
      throw configError('createReplicatedPool needs { primary, replicas } (or { replicaSet })');
    }
    const leaderName = given?.nodeNames[0] ?? primaryName(options.primary);
    const primaryConfig =
      given === undefined
        ? resolvePrimaryConfig(options.primary)
        : given.connectionConfig(leaderName);
    if (primaryConfig === undefined) {
      throw configError(
        "createReplicatedPool: the replica set's primary must be given as a pg Pool, { config } or a URL",
      );
    }
    // Any object with `classify` (and optionally `notReadOnly`), e.g. the parser-based one.
    const classifier: PoolClassifier =
      typeof (options.classifier as Partial<PoolClassifier> | undefined)?.classify === 'function'
        ? (options.classifier as PoolClassifier)
        : new SqlClassifier(options.classifier as SqlClassifierOptions | undefined);
    super(primaryConfig);
    this.#readOutsideSession = readOutsideSession;
    this.#routeCheckedOutReads = checkedOutMode(options.routeCheckedOutReads);
    this.#classifier = classifier;
    if (given !== undefined) {
      this.replicaSet = given;
      this.#ownsReplicaSet = false;
    } else {
      const poolDefaults = copyConfig(this.options);
      for (const key of PRIMARY_ONLY) delete poolDefaults[key];
      const candidates = Array.isArray(options.primary) ? options.primary : undefined;
      this.replicaSet = new PgReplicaSet(
        {
          ...options.replicaSetOptions,
          poolDefaults: { ...poolDefaults, ...options.replicaSetOptions?.poolDefaults },
          primary: candidates ?? { name: leaderName, pool: this },
          replicas: options.replicas ?? [],
        },
        // Over a list of candidates the pool's own connections follow the primary (below).
        { leaderPool: this },
      );
      this.#ownsReplicaSet = true;
    }
    const self = this as unknown as { Client: typeof pg.Client };
    const follower = followerOf(this.replicaSet);
    const Base = follower === undefined ? self.Client : followingClientClass(self.Client, follower);
    this.#routing = this.#clientRouting();
    self.Client = routedClientClass(Base, this.#routing);
    this.router = sharedRouter ?? new Router({ ...routerOptions, replicaSet: this.replicaSet });
    // The classifier's catalog is read on the leader's check connections, never the pool's.
    const replicaSet = this.replicaSet;
    classifier.useCatalog?.((sql) => replicaSet.queryLeader(sql));
    this.#replicas = new ReplicaRouting(this.replicaSet, this.router, classifier, this);
    const watch = (pool: object) =>
      (pool as Partial<pg.Pool>).on?.('connect', this.#onReplicaConnect);
    // A replica set whose replicas come from a function adds pools later.
    if (this.replicaSet instanceof PgReplicaSet) this.replicaSet.onReplicaPool(watch);
    else for (const name of this.replicaSet.nodeNames.slice(1)) watch(this.replicaSet.pool(name));
  }

  /** `pg.Pool#query` in all its forms; see the class comment for where each statement runs. */
  override query<T extends pg.Submittable>(queryStream: T): T;
  override query<R extends Untyped[] = Untyped[], I = Untyped[]>(
    queryConfig: pg.QueryArrayConfig<I>,
    values?: pg.QueryConfigValues<I>,
  ): Promise<pg.QueryArrayResult<R>>;
  override query<R extends pg.QueryResultRow = Untyped, I = Untyped[]>(
    queryConfig: pg.QueryConfig<I>,
  ): Promise<pg.QueryResult<R>>;
  override query<R extends pg.QueryResultRow = Untyped, I = Untyped[]>(
    queryTextOrConfig: string | pg.QueryConfig<I>,
    values?: pg.QueryConfigValues<I>,
  ): Promise<pg.QueryResult<R>>;
  override query<R extends Untyped[] = Untyped[], I = Untyped[]>(
    queryConfig: pg.QueryArrayConfig<I>,
    callback: (err: Error, result: pg.QueryArrayResult<R>) => void,
  ): void;
  override query<R extends pg.QueryResultRow = Untyped, I = Untyped[]>(
    queryTextOrConfig: string | pg.QueryConfig<I>,
    callback: (err: Error, result: pg.QueryResult<R>) => void,
  ): void;
  override query<R extends pg.QueryResultRow = Untyped, I = Untyped[]>(
    queryText: string,
    values: pg.QueryConfigValues<I>,
    callback: (err: Error, result: pg.QueryResult<R>) => void,
  ): void;
  override query(...args: unknown[]): unknown {
    const parsed = parseQueryArgs(args);
    // Submittables, malformed calls: exactly what pg.Pool does with them.
    if (parsed === undefined || this.ending) return this.#poolQuery(...args);
    const session = currentSession();
    if (session === undefined && this.#readOutsideSession === 'primary') {
      // Nothing to route and no floor to raise: pg.Pool's own path, without classifying (which
      // would start the classifier's catalog load on a connection of its own).
      this.#emitLeaderRoute(
        'outside-session',
        undefined,
        () => this.#classifier.classify(queryText(parsed.config)).reason,
      );
      return this.#poolQuery(this.#leaderOnlyConfig(parsed.config), ...args.slice(1));
    }
    // The first statement in a session starts the replica set's checks (a no-op after that).
    this.replicaSet.snapshot();
    const verdict = this.#classifier.classify(queryText(parsed.config));
    if (verdict.readOnly && (session !== undefined || this.#readOutsideSession === 'replica')) {
      const onLeader = () => this.#onPrimary(parsed);
      return deliver(
        this.#replicas.routedRead(parsed, session, verdict, onLeader),
        parsed.callback,
      );
    }
    this.#replicas.emitRoute(
      this.#replicas.leaderTarget(
        session === undefined ? 'outside-session' : 'not-read-only',
        session,
        verdict.reason,
      ),
    );
    if (session === undefined) {
      return this.#poolQuery(this.#leaderOnlyConfig(parsed.config), ...args.slice(1));
    }
    return deliver(this.#onPrimary(parsed), parsed.callback);
  }

  /**
   * `pg.Pool#query` on the primary, whose outcome is returned once the floors are raised. The
   * client raises them after the connection went back to the pool: the position read (on the
   * check connections) then does not hold a primary connection, as `pg.Pool` would not.
   */
  async #onPrimary(parsed: ParsedQuery): Promise<PgQueryResult> {
    const own = this.#leaderOnlyConfig(parsed.config);
    try {
      return (await this.#poolQuery(own, parsed.values)) as PgQueryResult;
    } finally {
      await this.#leaderOnly.get(own);
    }
  }

  /** pg-pool's `query`, on a connection of the primary (not a `RoutedCheckout`). */
  #poolQuery(...args: unknown[]): unknown {
    this.#direct = true;
    try {
      return poolQuery.apply(this, args);
    } finally {
      this.#direct = false;
    }
  }

  /**
   * `pg.Pool#connect`, its callback run in the caller's session (`bindToSession`): pg-pool
   * calls a waiting caller back from whatever code released the client, so `pool.query()`'s
   * statement, which pg-pool runs inside that callback, would otherwise raise the releasing
   * session's floors, not its own. With `routeCheckedOutReads: 'on-demand'`, a `RoutedCheckout`, which takes a
   * primary connection only when a statement first needs one (see there for what changes).
   */
  override connect(): Promise<pg.PoolClient>;
  override connect(
    callback: (error: Error | undefined, client: pg.PoolClient, done: ReleaseCallback) => void,
  ): void;
  override connect(
    callback?: (error: Error | undefined, client: pg.PoolClient, done: ReleaseCallback) => void,
  ): Promise<pg.PoolClient> | undefined {
    const bound = callback === undefined ? undefined : bindToSession(callback);
    if (this.#routeCheckedOutReads === 'on-demand' && !this.#direct && !this.ending) {
      return handOut(this.#routing, () => super.connect() as Promise<RoutedClient>, bound);
    }
    if (bound === undefined) return super.connect();
    super.connect(bound as never);
    return undefined;
  }

  /**
   * Starts what the pool otherwise starts on its first routed statement (the replica set's
   * checks, the classifier's catalog) and resolves once both have answered: until then reads
   * in sessions go to the primary. Optional: await it at start-up for reads to reach replicas
   * from the first request. Construction itself opens no connection, as with `pg.Pool`.
   */
  async ready(): Promise<void> {
    await Promise.all([this.replicaSet.refresh(), this.#classifier.ready?.()]);
  }

  /** `pg.Pool#on`, plus `'route'` (one `PoolRouteEvent` per statement). */
  override on(event: 'route', listener: (event: PoolRouteEvent) => void): this;
  override on<K extends 'error' | 'release' | 'connect' | 'acquire' | 'remove'>(
    event: K,
    listener: K extends 'error' | 'release'
      ? (err: Error, client: pg.PoolClient) => void
      : (client: pg.PoolClient) => void,
  ): this;
  override on(event: string | symbol, listener: (...args: Untyped[]) => void): this;
  override on(event: string | symbol, listener: (...args: Untyped[]) => void): this {
    return super.on(event as 'error', listener);
  }

  /** `pg.Pool#end`; also closes the replica set the pool created (one passed in stays open). */
  override end(): Promise<void>;
  override end(callback: () => void): void;
  override end(callback?: (error?: Error) => void): Promise<void> | undefined {
    if (this.ending) return poolEnd.call(this, callback) as Promise<void> | undefined;
    for (const name of this.replicaSet.nodeNames.slice(1)) {
      const pool = this.replicaSet.pool(name) as Partial<pg.Pool>;
      pool.removeListener?.('connect', this.#onReplicaConnect);
    }
    const closing = this.#ownsReplicaSet ? this.replicaSet.close() : Promise.resolve();
    if (callback === undefined) {
      return Promise.all([poolEnd.call(this), closing]).then(() => undefined);
    }
    poolEnd.call(this, (error?: Error) => {
      void closing.finally(() => callback(error));
    });
    return undefined;
  }

  /** Resets a client's checkout state when pg-pool hands it out, and settles it at release. */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'acquire') this.#onAcquire(args[0]);
    else if (event === 'release') this.#onRelease(args[1]);
    return super.emit(event, ...args);
  }

  #onAcquire(client: unknown): void {
    const state = checkoutOf(client);
    if (state !== undefined) Object.assign(state, freshCheckout());
  }

  #onRelease(client: unknown): void {
    const state = checkoutOf(client);
    if (state !== undefined) settleCheckout(state, this.#replicas);
  }

  #clientRouting(): ClientRouting {
    return {
      classify: (text) => this.#classifier.classify(text),
      mayRouteCheckedOut: (session) =>
        this.#routeCheckedOutReads !== false &&
        (session !== undefined || this.#readOutsideSession === 'replica'),
      isLeaderOnly: (config) => typeof config === 'object' && this.#leaderOnly.has(config),
      deferFloors: (config, noted) => {
        if (typeof config !== 'object' || !this.#leaderOnly.has(config)) return false;
        this.#leaderOnly.set(config, noted);
        return true;
      },
      routedRead: (parsed, session, verdict, onLeader) =>
        this.#replicas.routedRead(parsed, session, verdict, onLeader),
      beginOnReplica: (parsed, session, verdict) =>
        this.#replicas.beginOnReplica(parsed, session, verdict),
      inReplicaTransaction: (state, parsed, verdict, session) =>
        this.#replicas.inReplicaTransaction(state, parsed, verdict, session),
      notePrimary: (sessions, kind, mark) => this.#replicas.notePrimary(sessions, kind, mark),
      emitLeaderRoute: (reason, session, statement) =>
        this.#emitLeaderRoute(reason, session, statement),
    };
  }

  /** A `'route'` event to the leader; `statement` (the verdict's reason) computed only if heard. */
  #emitLeaderRoute(
    reason: PoolRouteReason,
    session: SessionContext | undefined,
    statement: string | (() => string),
  ): void {
    if (this.listenerCount('route') === 0) return;
    this.#replicas.emitRoute(
      this.#replicas.leaderTarget(
        reason,
        session,
        typeof statement === 'string' ? statement : statement(),
      ),
    );
  }

  #leaderOnlyConfig(config: string | PgQueryConfig): PgQueryConfig {
    // A new object (the caller's stays untouched) that still reads every field of theirs.
    const own: PgQueryConfig =
      typeof config === 'string' ? { text: config } : (Object.create(config) as PgQueryConfig);
    this.#leaderOnly.set(own, undefined);
    return own;
  }
}

/** Creates a `ReplicatedPool`: a drop-in `pg.Pool` that routes reads inside sessions. */
export function createReplicatedPool(options: ReplicatedPoolOptions): ReplicatedPool {
  return new ReplicatedPool(options);
}
