import { EventEmitter } from 'node:events';
import { configError } from '../../src/errors.js';
import { currentSession, type SessionContext } from '../../src/session/context.js';
import { comparePositions, type Position } from '../../src/session/position.js';
import {
  type ConsistencyLevel,
  type NoCaughtUpPolicy,
  type RouteReason,
  Router,
  type RouteTelemetry,
} from '../../src/session/router.js';
import { type SqlClassification, SqlClassifier, type SqlClassifierOptions } from './classify.js';
import { type PgNodeOption, PgReplicaSet, type PgReplicaSetOptions } from './replica-set.js';
import { connectClient, type PgQueryable, type PgQueryablePool } from './sql.js';

export {
  classifySql,
  PRIMARY_ONLY_FUNCTIONS,
  type SqlClassification,
  SqlClassifier,
  type SqlClassifierOptions,
} from './classify.js';

/** `pg` leaves rows and client extras untyped; so does the drop-in. */
// biome-ignore lint/suspicious/noExplicitAny: rows are `any` in pg, and the drop-in must match.
type Untyped = any;

/** A query result as `pg` returns it (structural: Causeway does not export `pg`'s types). */
export interface PgQueryResult<R = Untyped> {
  command: string;
  rowCount: number | null;
  rows: R[];
  fields: unknown[];
  oid: number;
}

/** `pg`'s query config object: `{ text, values, name, rowMode, types }`. */
export interface PgQueryConfig {
  text: string;
  values?: readonly unknown[];
  name?: string;
  rowMode?: 'array';
  types?: unknown;
}

/** A `pg` Submittable (pg-cursor, pg-query-stream): always run on the primary. */
export interface PgSubmittable {
  submit(connection: unknown): void;
}

type QueryCallback<R> = (error: Error | undefined, result: PgQueryResult<R>) => void;

/** A checked-out `pg` client as the routed pool hands it out (the primary's client). */
export interface PgPoolClient {
  query<R = Untyped>(
    text: string | PgQueryConfig,
    values?: readonly unknown[],
  ): Promise<PgQueryResult<R>>;
  query<T extends PgSubmittable>(submittable: T): T;
  query<R = Untyped>(text: string | PgQueryConfig, callback: QueryCallback<R>): void;
  query<R = Untyped>(
    text: string | PgQueryConfig,
    values: readonly unknown[],
    callback: QueryCallback<R>,
  ): void;
  release(error?: Error | boolean): void;
  on(event: string, listener: (...args: never[]) => void): unknown;
  [key: string]: Untyped;
}

/** The `pg.Pool` surface the routed pool needs from the primary and replica pools. */
export interface PgPool extends PgQueryablePool {
  query<R = Untyped>(
    text: string | PgQueryConfig,
    values?: readonly unknown[],
  ): Promise<PgQueryResult<R>>;
  connect(): Promise<PgPoolClient>;
  on(event: string, listener: (...args: never[]) => void): unknown;
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
  end(): Promise<void>;
}

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
  /**
   * A retry on the leader after the replica failed (connection or hot-standby conflict), or
   * could not vouch for its answer (no longer in recovery, or behind the position it was chosen
   * for: restarted).
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

export interface ReplicatedPoolOptions {
  /** The primary: a `pg.Pool`, `{ name?, pool }`, `{ name?, config }` or a connection URL. */
  primary?: PgNodeOption<PgPool>;
  /** Streaming replicas, same forms. */
  replicas?: readonly PgNodeOption<PgPool>[];
  /**
   * A replica set to use instead of creating one from `primary`/`replicas` (then both may be
   * omitted; `router.replicaSet` is used when only a router is given). A set passed in is not
   * closed by `end()`.
   */
  replicaSet?: PgReplicaSet;
  /** Background check options of the replica set the pool creates (see `PgReplicaSetOptions`). */
  replicaSetOptions?: Omit<PgReplicaSetOptions, 'primary' | 'replicas'>;
  /**
   * A router to use (e.g. shared with the middleware); it must route over this pool's replica
   * set. Default: one built from the options below (pass `pool.router` to the middleware).
   */
  router?: Router;
  /** Level of reads in sessions that name none. Default `'read-your-writes'`. */
  level?: ConsistencyLevel;
  /** When no replica has caught up: `'leader'` (default), `'wait'` or `'error'` (see `Router`). */
  onNoCaughtUp?: NoCaughtUpPolicy;
  /**
   * Longest wait for a replica with `onNoCaughtUp: 'wait'`; replicas that by their measured lag
   * would need longer to reach the floor are not waited for (see `Router`). Default 500 ms.
   */
  waitTimeoutMs?: number;
  /** Route telemetry: `'event'` (default), `'span'` or `'none'` (see `Router`). */
  telemetry?: RouteTelemetry;
  /**
   * Reads outside any session: `'primary'` (default: behave exactly like a pool on the primary)
   * or `'replica'` (provably read-only statements go to the healthy replicas in turn, with no
   * session guarantee: eventual consistency).
   */
  readOutsideSession?: 'primary' | 'replica';
  /**
   * Route provably read-only statements on checked-out clients too, while the client is outside
   * a transaction and has run nothing but such reads. Default false: a checked-out client runs
   * everything on the primary. Kysely checks out a client for every query, so set this to true
   * for its reads to reach replicas. The read then runs on a replica connection, not on the
   * client: it cannot see the client's session state (temporary tables, `SET` from an earlier
   * checkout), which is why it is off by default.
   */
  routeCheckedOutReads?: boolean;
  /** A classifier, or options for one (e.g. `{ readOnlyFunctions: ['my_report'] }`). */
  classifier?: SqlClassifier | SqlClassifierOptions;
}

/** Pool events forwarded from the primary's pool, as `pg.Pool` emits them. */
const FORWARDED_EVENTS: readonly string[] = ['connect', 'acquire', 'remove', 'error', 'release'];

interface ParsedQuery {
  readonly config: string | PgQueryConfig;
  readonly values: readonly unknown[] | undefined;
  readonly callback: QueryCallback<Untyped> | undefined;
}

/** Per checked-out primary client: what it ran since it was checked out. */
interface ClientState {
  session: SessionContext | undefined;
  /** Ran something that is not provably read-only: it stays on the primary until released. */
  pinned: boolean;
  /** Ran something that may have written and was not yet followed by a write-floor note. */
  dirty: boolean;
  /** Read on the primary in a session: the read floor is raised at release. */
  readPrimary: boolean;
  released: boolean;
}

/**
 * A drop-in for `pg.Pool` over a primary and its replicas. Inside a session (the middleware, or
 * `withSession()`), a provably read-only statement goes where the router says, and the session's
 * floors are raised after each statement: the write floor after a commit on the primary (its WAL
 * insert location), the read floor after a read (the replica's replay location, read on the same
 * connection after the query, so at least what the read could have seen). Everything else, every
 * transaction and every checked-out client runs on the primary. Outside a session it is a pool
 * on the primary (see `readOutsideSession`).
 *
 * Emits `'route'` (`PoolRouteEvent`) for every statement, and `'connect'`, `'acquire'`,
 * `'remove'`, `'error'`, `'release'` from the primary's pool.
 */
export class ReplicatedPool extends EventEmitter {
  readonly replicaSet: PgReplicaSet;
  readonly router: Router;
  readonly #primary: PgPool;
  readonly #leaderName: string;
  readonly #ownsReplicaSet: boolean;
  readonly #classifier: SqlClassifier;
  readonly #readOutsideSession: 'primary' | 'replica';
  readonly #routeCheckedOutReads: boolean;
  readonly #clients = new WeakMap<object, { proxy: PgPoolClient; state: ClientState }>();
  #ended = false;

  constructor(options: ReplicatedPoolOptions) {
    super();
    if (options === null || typeof options !== 'object') {
      throw configError('createReplicatedPool needs { primary, replicas }');
    }
    // Options first, so that a bad one throws before any pool is created.
    const readOutsideSession = options.readOutsideSession ?? 'primary';
    if (readOutsideSession !== 'primary' && readOutsideSession !== 'replica') {
      throw configError("createReplicatedPool: readOutsideSession must be 'primary' or 'replica'", {
        readOutsideSession,
      });
    }
    this.#readOutsideSession = readOutsideSession;
    this.#routeCheckedOutReads = options.routeCheckedOutReads === true;
    this.#classifier =
      options.classifier instanceof SqlClassifier
        ? options.classifier
        : new SqlClassifier(options.classifier);
    const given = options.replicaSet ?? options.router?.replicaSet;
    if (given !== undefined) {
      if (!(given instanceof PgReplicaSet)) {
        throw configError(
          'createReplicatedPool: replicaSet (or router.replicaSet) must be a PgReplicaSet',
        );
      }
      if (options.router !== undefined && options.router.replicaSet !== given) {
        throw configError("createReplicatedPool: router must route over the pool's replicaSet");
      }
      this.replicaSet = given;
      this.#ownsReplicaSet = false;
    } else {
      if (options.primary === undefined || options.replicas === undefined) {
        throw configError('createReplicatedPool needs { primary, replicas } (or { replicaSet })');
      }
      this.replicaSet = new PgReplicaSet({
        ...options.replicaSetOptions,
        primary: options.primary,
        replicas: options.replicas,
      });
      this.#ownsReplicaSet = true;
    }
    this.#leaderName = this.replicaSet.snapshot().leader.name;
    this.#primary = this.replicaSet.pool(this.#leaderName) as PgPool;
    this.#classifier.useCatalog((sql) => this.#primary.query(sql));
    this.router =
      options.router ??
      new Router({
        replicaSet: this.replicaSet,
        ...(options.level === undefined ? {} : { level: options.level }),
        ...(options.onNoCaughtUp === undefined ? {} : { onNoCaughtUp: options.onNoCaughtUp }),
        ...(options.waitTimeoutMs === undefined ? {} : { waitTimeoutMs: options.waitTimeoutMs }),
        ...(options.telemetry === undefined ? {} : { telemetry: options.telemetry }),
      });
    // Forward an event of the primary's pool from the first listener for it on: nothing is
    // added to every checkout while nobody listens.
    const forwarded = new Set<string>();
    this.on('newListener', (event: string | symbol) => {
      if (typeof event !== 'string' || forwarded.has(event) || !FORWARDED_EVENTS.includes(event)) {
        return;
      }
      forwarded.add(event);
      this.#primary.on(event, (...args: unknown[]) => {
        // An unheard 'error' would throw here; the primary's own listeners have handled it.
        if (event !== 'error' || this.listenerCount('error') > 0) this.emit(event, ...args);
      });
    });
  }

  get totalCount(): number {
    return this.#primary.totalCount;
  }

  get idleCount(): number {
    return this.#primary.idleCount;
  }

  get waitingCount(): number {
    return this.#primary.waitingCount;
  }

  /** True once `end()` was called. */
  get ended(): boolean {
    return this.#ended;
  }

  /** `pg.Pool#query` in all its forms; see the class comment for where each statement runs. */
  query<R = Untyped>(
    text: string | PgQueryConfig,
    values?: readonly unknown[],
  ): Promise<PgQueryResult<R>>;
  query<T extends PgSubmittable>(submittable: T): T;
  query<R = Untyped>(text: string | PgQueryConfig, callback: QueryCallback<R>): void;
  query<R = Untyped>(
    text: string | PgQueryConfig,
    values: readonly unknown[],
    callback: QueryCallback<R>,
  ): void;
  query(...args: unknown[]): unknown {
    const parsed = parseQueryArgs(args);
    if (parsed === undefined) {
      // Submittables, malformed calls: exactly what the primary's pool does with them.
      this.#emitRoute(this.#leaderTarget('submittable', currentSession(), 'submittable'));
      return (this.#primary.query as (...a: unknown[]) => unknown)(...args);
    }
    const session = currentSession();
    const verdict = this.#classifier.classify(queryText(parsed.config));
    const routed =
      verdict.readOnly && (session !== undefined || this.#readOutsideSession === 'replica');
    if (!routed && (session === undefined || !verdict.mayWrite)) {
      // Nothing to route and no floor to raise: the primary's pool, call form untouched.
      this.#emitRoute(
        this.#leaderTarget(
          session === undefined ? 'outside-session' : 'not-read-only',
          session,
          verdict.reason,
        ),
      );
      return (this.#primary.query as (...a: unknown[]) => unknown)(...args);
    }
    const result = routed
      ? this.#routedRead(parsed, session, verdict)
      : this.#writeOnPrimary(parsed, session!, verdict);
    return deliver(result, parsed.callback);
  }

  /** `pg.Pool#connect`: a client of the primary (promise, or callback with `done`). */
  connect(): Promise<PgPoolClient>;
  connect(
    callback: (
      error: Error | undefined,
      client: PgPoolClient | undefined,
      done: (error?: Error | boolean) => void,
    ) => void,
  ): void;
  connect(
    callback?: (
      error: Error | undefined,
      client: PgPoolClient | undefined,
      done: (error?: Error | boolean) => void,
    ) => void,
  ): Promise<PgPoolClient> | undefined {
    const session = currentSession();
    const checkedOut = this.#primary.connect().then((client) => this.#wrapClient(client, session));
    if (callback === undefined) return checkedOut;
    checkedOut.then(
      (client) => callback(undefined, client, (error) => client.release(error)),
      (error: Error) => callback(error, undefined, () => {}),
    );
    return undefined;
  }

  /** Ends the pools and the replica set this pool created (pools passed in stay open). */
  async end(): Promise<void> {
    if (this.#ended) throw new Error('Called end on pool more than once');
    this.#ended = true;
    if (this.#ownsReplicaSet) await this.replicaSet.close();
  }

  /** A read-only statement: where the router says, raising the session's read floor after. */
  async #routedRead(
    parsed: ParsedQuery,
    session: SessionContext | undefined,
    verdict: SqlClassification,
    held?: PgPoolClient,
  ): Promise<PgQueryResult> {
    // The topology the router decides on (route() decides synchronously, on this snapshot).
    const topology = this.replicaSet.snapshot();
    const decision = await this.router.route(session);
    this.#emitRoute({ ...decision, statement: verdict.reason });
    if (decision.target === 'leader') return this.#readOnLeader(parsed, session, held);
    const floor = session?.floorFor(decision.level);
    const believed = topology.replicas.find((replica) => replica.name === decision.node)?.position;
    let client: PgPoolClient;
    try {
      client = await connectClient(this.replicaSet.pool(decision.node) as PgPool);
    } catch (error) {
      this.replicaSet.reportError(decision.node, error);
      return this.#retryOnLeader(parsed, session, verdict, decision.level, held);
    }
    let result: PgQueryResult;
    try {
      result = await client.query(parsed.config, parsed.values);
    } catch (error) {
      client.release(toReleaseError(error));
      const retry = replicaFailure(error);
      if (retry === undefined) throw error;
      if (retry === 'connection') this.replicaSet.reportError(decision.node, error);
      return this.#retryOnLeader(parsed, session, verdict, decision.level, held);
    }
    if (session === undefined) {
      client.release();
      return result;
    }
    let position: Position | undefined;
    try {
      position = await this.replicaSet.readPosition(decision.node, client);
      client.release();
    } catch (error) {
      client.release(toReleaseError(error));
      this.replicaSet.reportError(decision.node, error);
      // The node did not confirm, after the read and on its connection, that it still replays
      // the leader's WAL (promoted, or gone): its answer may belong to another history.
      return this.#retryOnLeader(parsed, session, verdict, decision.level, held);
    }
    if (position !== undefined && (isBehind(position, floor) || isBehind(position, believed))) {
      // The node is behind where the router believed it was: it restarted and came back from an
      // earlier point (crash recovery replays from its last restartpoint), so the read may have
      // missed the floor it was chosen for. The leader answers; the node waits for its next check.
      this.replicaSet.reportError(decision.node, new Error(`${decision.node} went back`));
      return this.#retryOnLeader(parsed, session, verdict, decision.level, held);
    }
    // Without the replica's replay position, the leader's position bounds what it could show.
    position ??= await this.#leaderPosition(session);
    if (position !== undefined) session.noteRead(position);
    return result;
  }

  #retryOnLeader(
    parsed: ParsedQuery,
    session: SessionContext | undefined,
    verdict: SqlClassification,
    level: ConsistencyLevel,
    held: PgPoolClient | undefined,
  ): Promise<PgQueryResult> {
    this.#emitRoute({
      target: 'leader',
      node: this.#leaderName,
      reason: 'replica-error',
      level,
      statement: verdict.reason,
    });
    return this.#readOnLeader(parsed, session, held);
  }

  /**
   * A read on the leader in a session: it may see commits no replica has applied, so the read
   * floor rises to the leader's position read after it, on the same connection (monotonic reads
   * must not go back when a later read lands on a replica).
   */
  async #readOnLeader(
    parsed: ParsedQuery,
    session: SessionContext | undefined,
    held: PgPoolClient | undefined,
  ): Promise<PgQueryResult> {
    if (held === undefined && session === undefined) {
      return this.#primary.query(parsed.config, parsed.values);
    }
    // A checked-out client reads on itself: taking a second primary connection could wait
    // forever on a pool whose connections are all checked out.
    const client = held ?? (await connectClient(this.#primary));
    const release = (error?: unknown) => {
      if (held === undefined)
        client.release(error === undefined ? undefined : toReleaseError(error));
    };
    let result: PgQueryResult;
    try {
      result = await client.query(parsed.config, parsed.values);
    } catch (error) {
      release(error);
      throw error;
    }
    if (session === undefined) {
      release();
      return result;
    }
    try {
      const position = await this.replicaSet.readPosition(this.#leaderName, client);
      release();
      if (position !== undefined) session.noteRead(position);
    } catch (error) {
      release(error);
      session.floorsUncertain = true;
    }
    return result;
  }

  /** A statement that may write, in a session: on the primary, then the write floor rises. */
  async #writeOnPrimary(
    parsed: ParsedQuery,
    session: SessionContext,
    verdict: SqlClassification,
  ): Promise<PgQueryResult> {
    this.#emitRoute(this.#leaderTarget('not-read-only', session, verdict.reason));
    // One connection for the statement and the position read after it: no second checkout.
    const client = await connectClient(this.#primary);
    let result: PgQueryResult;
    try {
      result = await client.query(parsed.config, parsed.values);
    } catch (error) {
      if (!hasSqlState(error)) {
        client.release(toReleaseError(error));
        throw error;
      }
      // A failed statement may still have committed part of a multi-statement text.
      await this.#noteWrite(session, client);
      client.release();
      throw error;
    }
    await this.#noteWrite(session, client);
    client.release();
    return result;
  }

  /** Raises the write floor to the leader's position now (after a commit). */
  async #noteWrite(session: SessionContext, client?: PgQueryable): Promise<void> {
    const position = await this.#leaderPosition(session, client);
    if (position !== undefined) session.noteWrite(position);
  }

  /**
   * The leader's position, or undefined after marking the session's floors uncertain (its reads
   * then go to the leader): a write that committed is never reported as failed for this.
   */
  async #leaderPosition(
    session: SessionContext,
    client?: PgQueryable,
  ): Promise<Position | undefined> {
    try {
      const position = await this.replicaSet.writePosition(client);
      if (position === undefined) session.floorsUncertain = true;
      return position;
    } catch {
      session.floorsUncertain = true;
      return undefined;
    }
  }

  #wrapClient(client: PgPoolClient, session: SessionContext | undefined): PgPoolClient {
    let entry = this.#clients.get(client);
    const state: ClientState = {
      session,
      pinned: false,
      dirty: false,
      readPrimary: false,
      released: false,
    };
    if (entry === undefined) {
      const bound = new Map<PropertyKey, unknown>();
      const proxy = new Proxy(client, {
        get: (target, property) => {
          const current = this.#clients.get(client)!.state;
          if (property === 'query')
            return (...args: unknown[]) => this.#clientQuery(client, current, args);
          if (property === 'release')
            return (error?: Error | boolean) => this.#clientRelease(client, current, error);
          const value: unknown = Reflect.get(target, property, target);
          if (typeof value !== 'function') return value;
          // Methods run on the client itself (it may use private state), bound once each.
          let method = bound.get(property);
          if (method === undefined) {
            method = (value as (...a: unknown[]) => unknown).bind(target);
            bound.set(property, method);
          }
          return method;
        },
      }) as PgPoolClient;
      entry = { proxy, state };
      this.#clients.set(client, entry);
    } else {
      entry.state = state;
    }
    return entry.proxy;
  }

  #clientQuery(client: PgPoolClient, state: ClientState, args: unknown[]): unknown {
    state.session ??= currentSession();
    const session = state.session;
    const parsed = parseQueryArgs(args);
    if (state.released) {
      return (client.query as (...a: unknown[]) => unknown)(...args);
    }
    if (parsed === undefined) {
      // A cursor or stream may write and ends when its reader says: note at release.
      state.pinned = true;
      state.dirty = true;
      this.#emitRoute(this.#leaderTarget('submittable', session, 'submittable'));
      return (client.query as (...a: unknown[]) => unknown)(...args);
    }
    const verdict = this.#classifier.classify(queryText(parsed.config));
    if (
      this.#routeCheckedOutReads &&
      verdict.readOnly &&
      !state.pinned &&
      transactionStatus(client) === 'I' &&
      (session !== undefined || this.#readOutsideSession === 'replica')
    ) {
      return deliver(this.#routedRead(parsed, session, verdict, client), parsed.callback);
    }
    this.#emitRoute(this.#leaderTarget('checked-out-client', session, verdict.reason));
    if (!verdict.readOnly) state.pinned = true;
    if (verdict.mayWrite) state.dirty = true;
    if (session === undefined) return (client.query as (...a: unknown[]) => unknown)(...args);
    if (verdict.readOnly) state.readPrimary = true;
    const run = async (): Promise<PgQueryResult> => {
      let result: PgQueryResult;
      try {
        result = await client.query(parsed.config, parsed.values);
      } finally {
        const status = transactionStatus(client);
        if (status === 'I' && (verdict.command === 'rollback' || verdict.command === 'abort')) {
          state.dirty = false;
        }
        // A commit (explicit, or an autocommit statement) just ended: note it before returning,
        // so the floor is raised before the caller can answer its client.
        if (state.dirty && status === 'I') {
          state.dirty = false;
          await this.#noteWrite(session, client);
        }
      }
      return result;
    };
    return deliver(run(), parsed.callback);
  }

  #clientRelease(client: PgPoolClient, state: ClientState, error?: Error | boolean): void {
    if (state.released)
      throw new Error('Release called on client which has already been released to the pool.');
    state.released = true;
    const session = state.session;
    if (session === undefined || (!state.dirty && !state.readPrimary)) {
      client.release(error);
      return;
    }
    if (error !== undefined && error !== false) {
      client.release(error);
      if (state.dirty) void this.#noteWrite(session);
      return;
    }
    // Reads on the primary (and a cursor's writes) are noted here, before the connection goes
    // back to the pool. `release()` is synchronous in pg, so this finishes just after it returns.
    void this.#leaderPosition(session, client).then((position) => {
      client.release();
      if (position === undefined) return;
      if (state.dirty) session.noteWrite(position);
      else session.noteRead(position);
    });
  }

  #leaderTarget(
    reason: PoolRouteReason,
    session: SessionContext | undefined,
    statement: string,
  ): PoolRouteEvent {
    return {
      target: 'leader',
      node: this.#leaderName,
      reason,
      level: session?.level ?? this.router.level,
      statement,
    };
  }

  #emitRoute(event: PoolRouteEvent): void {
    if (this.listenerCount('route') > 0) this.emit('route', event);
  }
}

/** Creates a `ReplicatedPool`: a drop-in `pg.Pool` that routes reads inside sessions. */
export function createReplicatedPool(options: ReplicatedPoolOptions): ReplicatedPool {
  return new ReplicatedPool(options);
}

/** Splits `query(text|config, values?, callback?)`; undefined for Submittables and odd calls. */
function parseQueryArgs(args: unknown[]): ParsedQuery | undefined {
  const [first, second, third] = args;
  let config: string | PgQueryConfig;
  if (typeof first === 'string') {
    config = first;
  } else if (
    typeof first === 'object' &&
    first !== null &&
    typeof (first as { text?: unknown }).text === 'string' &&
    typeof (first as { submit?: unknown }).submit !== 'function' &&
    (first as { callback?: unknown }).callback === undefined
  ) {
    config = first as PgQueryConfig;
  } else {
    return undefined;
  }
  if (typeof second === 'function') {
    return { config, values: undefined, callback: second as QueryCallback<Untyped> };
  }
  if (second !== undefined && !Array.isArray(second)) return undefined;
  if (third !== undefined && typeof third !== 'function') return undefined;
  return {
    config,
    values: second as readonly unknown[] | undefined,
    callback: third as QueryCallback<Untyped> | undefined,
  };
}

function queryText(config: string | PgQueryConfig): string {
  return typeof config === 'string' ? config : config.text;
}

/** A promise, or (with a callback) nothing: `pg`'s two calling conventions. */
function deliver<R>(
  result: Promise<R>,
  callback: ((error: Error | undefined, value: R) => void) | undefined,
): Promise<R> | undefined {
  if (callback === undefined) return result;
  result.then(
    (value) => callback(undefined, value),
    (error: Error) => callback(error, undefined as R),
  );
  return undefined;
}

/** What `release()` takes to discard a connection after `error`. */
function toReleaseError(error: unknown): Error | boolean {
  return error instanceof Error ? error : true;
}

/** `'I'` idle, `'T'` in a transaction, `'E'` in a failed one; idle when the driver cannot say. */
function transactionStatus(client: object): string {
  const status = (
    client as { getTransactionStatus?: () => string | null }
  ).getTransactionStatus?.();
  return typeof status === 'string' ? status : 'I';
}

/** True when `position` is in `than`'s history and before it (false when either is missing). */
function isBehind(position: Position, than: Position | undefined): boolean {
  return than !== undefined && comparePositions(position, than) === 'before';
}

function hasSqlState(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

/**
 * Whether a failed replica read should be retried on the leader: `'connection'` (the replica is
 * down or going away: also mark it unhealthy), `'replica-only'` (a hot-standby conflict, or a
 * write the classifier could not see, e.g. through a view), undefined (the leader would fail
 * the same way: a syntax error, a missing table...).
 */
function replicaFailure(error: unknown): 'connection' | 'replica-only' | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (!hasSqlState(error)) return 'connection';
  if (typeof code !== 'string') return undefined;
  if (
    code.startsWith('08') ||
    code === '57P01' ||
    code === '57P02' ||
    code === '57P03' ||
    code === '53300'
  ) {
    return 'connection';
  }
  if (code === '25006') return 'replica-only';
  const message = error instanceof Error ? error.message : '';
  if (code === '40001' && /conflict with recovery/i.test(message)) return 'replica-only';
  return undefined;
}
