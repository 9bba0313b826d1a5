import { type Span, trace } from '@opentelemetry/api';
import { CausewayError, configError } from '../errors.js';
import { Attr, addToCounter, CounterName, EventName, errorType } from '../telemetry.js';
import { newSessionId, SessionContext, type SessionState, withSession } from './context.js';
import {
  cookieValue,
  formatRoute,
  ROUTE_HEADER,
  SESSION_HEADER,
  sessionCookie,
} from './express-http.js';
import {
  type ConsistencyOptions,
  type ResolvedOptions,
  resolveOptions,
} from './express-options.js';
import { type ConsistencyLevel, validateLevel } from './level.js';
import { hasReached, type Position } from './position.js';
import type { RouteDecision } from './route-decision.js';
import { prepareRoutesWith, type RoutePreparation } from './route-preparation.js';
import type { Router } from './router.js';
import { assertSessionKey } from './session-store.js';
import { streamFloorsOf } from './state.js';
import {
  checkToken,
  invalidTokenReason,
  type JobSessionCarrier,
  sessionForJob,
  type VerifiedToken,
  withJobSession,
} from './token.js';

// The framework-neutral core of the consistency middleware: from a request's token to its
// session, and from the session to the headers written back. Each framework adapter (Express,
// Fastify, Koa, Hono, Fetch, Nest) only reads the request headers, runs the handler inside
// `exchange.run()` and writes `exchange.writeBack()`'s headers before its response goes out.

/**
 * `req.consistency` (and its equivalent on every adapter): the request's session and level, for
 * code that routes reads itself or attaches a user. The routed `pg` pool needs none of this: it
 * finds the session through AsyncLocalStorage.
 */
export interface RequestConsistency {
  /** The request's session (floors, id; `noteRead(position)` after a read you routed yourself). */
  readonly session: SessionContext;
  /** The level of this request's reads; assign to change it for the rest of the request. */
  level: ConsistencyLevel;
  /**
   * Where to send a read at `level` (default: the request's): resolves a `RouteDecision` from the
   * router (applying `onNoCaughtUp`, recording telemetry). After reading, call
   * `session.noteRead(position)` with the position the node had applied.
   */
  read(level?: ConsistencyLevel): Promise<RouteDecision>;
  /**
   * Records a write. With its commit `position`, raises the write floor at once. Without one,
   * refreshes the replica set and takes the leader's position (one topology refresh: pass the
   * position when you have it).
   */
  write(position?: Position): Promise<void>;
  /**
   * Attaches the session to user `key` from now on (login, signup): the next routed read first
   * merges the user's stored floors in, and the response merges this session's floors into the
   * user's. Needs `store`; `INVALID_INPUT` unless `key` is a non-empty string.
   */
  setUserKey(key: string): void;
}

/** Result of `run()`: `fn`'s result and the token to hand back to the client. */
export interface RunResult<T> {
  readonly result: T;
  /** The session's token: re-issued if it changed or was near expiry, else the one given. */
  readonly token: string | undefined;
}

/** What every adapter offers besides its framework hook: sessions outside HTTP, tokens, jobs. */
export interface ConsistencyApi {
  /**
   * Runs `fn` inside the session carried by `token` (undefined: a fresh one), for non-HTTP
   * entry points (WebSocket messages, RPC). Untrusted tokens follow `onInvalidToken`
   * (`'reject'` rejects with `INVALID_SESSION_TOKEN`).
   */
  run<T>(
    token: string | undefined,
    fn: (session: SessionContext) => T | Promise<T>,
    options?: { level?: ConsistencyLevel },
  ): Promise<RunResult<T>>;
  /** A signed token for `state`. */
  issue(state: SessionState): string;
  /** The state in `token`, or throws `INVALID_SESSION_TOKEN` (`details.reason`). */
  verify(token: string): SessionState;
  /** The current session as a token for a queued job (see `sessionForJob`). */
  sessionForJob(session?: SessionContext): string | undefined;
  /** Runs a worker's `fn` in the session a job carries (see `withJobSession`). */
  withJobSession<T>(
    job: JobSessionCarrier | string | undefined,
    fn: (session: SessionContext) => T,
    options?: { level?: ConsistencyLevel },
  ): T;
  /** The router used by `read()`, when a replica set or router was given. */
  readonly router: Router | undefined;
}

/** What an adapter reads from a request. */
export interface ExchangeRequest<Req> {
  /** The `causeway-session` request header (first value), if any. */
  readonly header: string | undefined;
  /** The `Cookie` request header, if any. */
  readonly cookie: string | undefined;
  /** The request came over TLS (for the cookie's `Secure` with `secureCookie: 'auto'`). */
  readonly secure: boolean;
  /** What `userKey` is given. */
  readonly request: Req;
}

/**
 * Sets a response header; `append` (for `Set-Cookie` and `Access-Control-Expose-Headers`) adds
 * to the values already there instead of replacing them.
 */
export type HeaderSink = (name: string, value: string, append: boolean) => void;

/** The framework-neutral middleware: one per `consistency()` call, shared by its requests. */
export class ConsistencyCore<Req> implements ConsistencyApi {
  readonly options: ResolvedOptions;
  readonly router: Router | undefined;
  readonly #userKey: ((req: Req) => string | undefined) | undefined;

  constructor(options: ConsistencyOptions<Req>) {
    this.options = resolveOptions(options);
    this.router = this.options.router;
    this.#userKey = this.options.userKey as ((req: Req) => string | undefined) | undefined;
  }

  /**
   * Starts a request: its exchange, or the `INVALID_SESSION_TOKEN` error to answer with 400
   * (`rejection()`) under `onInvalidToken: 'reject'`. A bad token otherwise starts afresh.
   */
  begin(input: ExchangeRequest<Req>): RequestExchange<Req> | CausewayError {
    const fromCookie =
      input.header === undefined ? cookieValue(input.cookie, SESSION_HEADER) : undefined;
    const token = input.header ?? fromCookie;
    const checked =
      token === undefined
        ? undefined
        : checkToken(this.options.tokens, token, { stream: this.options.knownStreams() });
    const invalid = checked instanceof CausewayError;
    if (invalid && this.options.reject) return checked;
    return new RequestExchange(
      this,
      input,
      invalid ? undefined : checked,
      invalid && fromCookie !== undefined,
    );
  }

  /** The 400 answer for a rejected token: its headers (clearing the cookie) and JSON body. */
  rejection(error: CausewayError): { status: 400; headers: [string, string][]; body: string } {
    return {
      status: 400,
      headers: [
        ['content-type', 'application/json; charset=utf-8'],
        ['set-cookie', this.options.clearCookie],
      ],
      body: rejectionBody(error),
    };
  }

  /** `userKey(req)`, when configured with a store. */
  userKeyOf(request: Req): string | undefined {
    return this.#userKey?.(request);
  }

  async run<T>(
    token: string | undefined,
    fn: (session: SessionContext) => T | Promise<T>,
    runOptions: { level?: ConsistencyLevel } = {},
  ): Promise<RunResult<T>> {
    const { tokens } = this.options;
    const checked = checkToken(tokens, token, { stream: this.options.knownStreams() });
    if (checked instanceof CausewayError && this.options.reject) throw checked;
    const verified = checked instanceof CausewayError ? undefined : checked;
    const level =
      runOptions.level === undefined
        ? this.options.level
        : validateLevel(runOptions.level, 'level');
    const session = new SessionContext(verified?.state ?? { id: newSessionId() }, level);
    const result = await withSession(session, () => fn(session));
    const reissue = session.changed || (verified !== undefined && tokens.needsRefresh(verified));
    return {
      result,
      token: reissue ? tokens.issue(session.state) : verified === undefined ? undefined : token,
    };
  }

  issue(state: SessionState): string {
    return this.options.tokens.issue(state);
  }

  verify(token: string): SessionState {
    return this.options.tokens.verify(token, { stream: this.options.knownStreams() }).state;
  }

  sessionForJob(session?: SessionContext): string | undefined {
    return sessionForJob(this.options.tokens, session);
  }

  withJobSession<T>(
    job: JobSessionCarrier | string | undefined,
    fn: (session: SessionContext) => T,
    options?: { level?: ConsistencyLevel },
  ): T {
    return withJobSession(this.options.tokens, job, fn, options);
  }
}

/** The JSON body of the 400 for an untrusted token. */
export function rejectionBody(error: CausewayError): string {
  return JSON.stringify({
    error: { code: error.code, message: error.message, reason: invalidTokenReason(error) },
  });
}

/** One request's session: `req.consistency`, the store's late user, and what to write back. */
export class RequestExchange<Req> implements RequestConsistency, RoutePreparation {
  readonly session: SessionContext;
  readonly #core: ConsistencyCore<Req>;
  readonly #input: ExchangeRequest<Req>;
  readonly #verified: VerifiedToken | undefined;
  readonly #clearBadCookie: boolean;
  readonly #span: Span | undefined;
  #userKey: string | undefined;
  // The user whose stored floors were merged in (or tried); whether the store then held all of
  // this session's write floors, and the session's write-floor raises right after the merge.
  #loadedKey: string | undefined;
  #storeCovered = false;
  #raisesAtLoad = 0;
  #loading: Promise<void> | undefined;
  #written = false;

  constructor(
    core: ConsistencyCore<Req>,
    input: ExchangeRequest<Req>,
    verified: VerifiedToken | undefined,
    clearBadCookie: boolean,
  ) {
    this.#core = core;
    this.#input = input;
    this.#verified = verified;
    this.#clearBadCookie = clearBadCookie;
    const { options } = core;
    this.session = new SessionContext(verified?.state ?? { id: newSessionId() }, options.level);
    if (options.routeHeader) this.session.routes = [];
    if (options.store === undefined) {
      this.#span = undefined;
    } else {
      this.#span = trace.getActiveSpan();
      prepareRoutesWith(this.session, this);
    }
  }

  /** True when the response must be written back whether or not the session changes. */
  get mustWriteBack(): boolean {
    const { options } = this.#core;
    return (
      this.#clearBadCookie ||
      options.routeHeader ||
      options.store !== undefined ||
      (this.#verified !== undefined && options.tokens.needsRefresh(this.#verified))
    );
  }

  /** The cookie's `Secure` attribute for this request. */
  get #secure(): boolean {
    const secure = this.#core.options.secureCookie;
    return secure === 'auto' ? this.#input.secure : secure;
  }

  /** Runs `fn` (the rest of the request) inside the session. */
  run<T>(fn: () => T): T {
    return withSession(this.session, () => fn());
  }

  get level(): ConsistencyLevel {
    return this.session.level;
  }

  set level(level: ConsistencyLevel) {
    this.session.level = validateLevel(level, 'level');
  }

  read(level?: ConsistencyLevel): Promise<RouteDecision> {
    const router = this.#core.router;
    if (router === undefined) {
      return Promise.reject(
        configError('req.consistency.read() needs consistency({ replicaSet }) or { router }'),
      );
    }
    return router.route(this.session, level);
  }

  async write(position?: Position): Promise<void> {
    if (position !== undefined) return this.session.noteWrite(position);
    const replicaSet = this.#core.options.replicaSet;
    if (replicaSet === undefined) {
      throw configError(
        'req.consistency.write() without a position needs consistency({ replicaSet })',
      );
    }
    await replicaSet.refresh();
    const leaderAt = replicaSet.snapshot().leader.position;
    if (leaderAt === undefined) {
      throw configError('the leader position is unknown; pass the write position');
    }
    this.session.noteWrite(leaderAt);
  }

  setUserKey(key: string): void {
    if (this.#core.options.store === undefined) {
      throw configError('setUserKey() needs consistency({ store })');
    }
    assertSessionKey(key);
    this.#userKey = key;
  }

  /** The user now: the one set by `setUserKey`, else `userKey(req)`. */
  #currentUserKey(): string | undefined {
    return this.#userKey ?? this.#core.userKeyOf(this.#input.request);
  }

  /** Before a routed read: merges the stored floors of a user not merged yet. */
  beforeRoute(): Promise<void> | undefined {
    if (this.#loading !== undefined) return this.#loading;
    const store = this.#core.options.store;
    const key = store === undefined ? undefined : this.#currentUserKey();
    if (store === undefined || key === undefined || key === this.#loadedKey) return undefined;
    this.#loadedKey = key;
    this.#loading = store.get(key).then(
      (kept) => {
        this.#loading = undefined;
        this.#storeCovered = kept !== undefined && covers(kept, this.session.state);
        if (kept !== undefined) absorbState(this.session, kept);
        this.#raisesAtLoad = this.session.writeFloorRaises;
      },
      (error: unknown) => {
        this.#loading = undefined;
        recordStoreFailure(this.#span, error);
        this.session.floorsUncertain = true;
      },
    );
    return this.#loading;
  }

  /**
   * Writes back (once) just before the response headers: the token if the session changed or
   * nears expiry (header and cookie), the route header, the CORS exposure; merges the session
   * into the store when the user has floors the store may lack.
   */
  writeBack(setHeader: HeaderSink): void {
    if (this.#written) return;
    this.#written = true;
    const { options } = this.#core;
    const { session } = this;
    const verified = this.#verified;
    if (session.changed || (verified !== undefined && options.tokens.needsRefresh(verified))) {
      const token = options.tokens.issue(session.state);
      setHeader(SESSION_HEADER, token, false);
      setHeader('set-cookie', sessionCookie(token, options.cookieTail, this.#secure), true);
      if (options.exposeHeader !== undefined) {
        setHeader('access-control-expose-headers', options.exposeHeader, true);
      }
    } else if (this.#clearBadCookie) {
      setHeader('set-cookie', options.clearCookie, true);
    }
    if (session.routes !== undefined && session.routes.length > 0) {
      setHeader(ROUTE_HEADER, session.routes.map(formatRoute).join(', '), false);
    }
    if (options.store !== undefined) this.#storeBack();
  }

  #storeBack(): void {
    const store = this.#core.options.store!;
    let key: string | undefined;
    try {
      key = this.#currentUserKey();
    } catch (error) {
      recordStoreFailure(this.#span, error);
      return;
    }
    if (key === undefined || this.session.writeFloor === undefined) return;
    // The store already has these floors when it held them all at the merge and none moved since.
    if (
      key === this.#loadedKey &&
      this.#storeCovered &&
      this.session.writeFloorRaises === this.#raisesAtLoad
    ) {
      return;
    }
    store.set(key, this.session.state).catch((error: unknown) => {
      recordStoreFailure(this.#span, error);
    });
  }
}

/** Moves `session`'s floors forward to those of `state` (a user's stored state), per stream. */
function absorbState(session: SessionContext, state: SessionState): void {
  for (const { writeFloor, readFloor } of streamFloorsOf(state)) {
    if (writeFloor !== undefined) session.noteWrite(writeFloor);
    if (readFloor !== undefined) session.noteRead(readFloor);
  }
}

/** True when `kept` has every write floor of `own` (on each stream, at or past it). */
function covers(kept: SessionState, own: SessionState): boolean {
  const keptSession = new SessionContext(kept);
  return streamFloorsOf(own).every(
    ({ writeFloor }) =>
      writeFloor === undefined ||
      hasReached(keptSession.writeFloorOn(writeFloor.stream), writeFloor),
  );
}

/** Counts a session store failure and notes it on the request's span. */
export function recordStoreFailure(span: Span | undefined, error: unknown): void {
  addToCounter(CounterName.SESSION_STORE_FAILURES);
  span?.addEvent(EventName.STORE_FAILURE, {
    [Attr.REASON]: errorType(error),
  });
}

/** `core`'s `ConsistencyApi` methods as plain properties, to attach to an adapter's function. */
export function consistencyApi(core: ConsistencyApi): ConsistencyApi {
  return {
    router: core.router,
    run: (token, fn, options) => core.run(token, fn, options),
    issue: (state) => core.issue(state),
    verify: (token) => core.verify(token),
    sessionForJob: (session) => core.sessionForJob(session),
    withJobSession: (job, fn, options) => core.withJobSession(job, fn, options),
  };
}
