import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Span, trace } from '@opentelemetry/api';
import { CausewayError, configError } from '../errors.js';
import { booleanOption, knownOptions, oneOfOption } from '../options.js';
import { Attr, addToCounter, CounterName, EventName } from '../telemetry.js';
import {
  mergeSessionStates,
  newSessionId,
  SessionContext,
  type SessionState,
  withSession,
} from './context.js';
import { type ConsistencyLevel, levelName, validateLevel } from './level.js';
import type { Position } from './position.js';
import type { ReplicaSet } from './replica-set.js';
import type { RouteDecision } from './route-decision.js';
import { type NoCaughtUpPolicy, Router } from './router.js';
import type { SessionStore } from './session-store.js';
import {
  checkToken,
  invalidTokenReason,
  type JobSessionCarrier,
  SessionTokens,
  sessionForJob,
  type VerifiedToken,
  withJobSession,
} from './token.js';

/** Header (request and response) and cookie that carry the session token. */
export const SESSION_HEADER = 'causeway-session';
/** Debug response header listing each routed read of the request (with `routeHeader: true`). */
export const ROUTE_HEADER = 'causeway-route';

export interface ConsistencyOptions {
  /** HMAC secret(s), each >= 32 characters; with an array the first signs, all verify. Required. */
  secret: string | readonly string[];
  /**
   * The topology, for `req.consistency.read()`, for `write()` without a position, and to refuse
   * tokens of another cluster (their stream). Default: `router.replicaSet` if a router is given.
   */
  replicaSet?: ReplicaSet;
  /** The router for `req.consistency.read()`. Default: one built from `replicaSet` and the options below. */
  router?: Router;
  /** Level of every request unless a route overrides it. Default `'read-your-writes'`. */
  level?: ConsistencyLevel;
  /** For the router built here (see `RouterOptions`; not with `router`). Default `'leader'`. */
  onNoCaughtUp?: NoCaughtUpPolicy;
  /** For the router built here (see `RouterOptions`; not with `router`). Default 500 ms. */
  waitTimeoutMs?: number;
  /**
   * A token that is forged, truncated, expired, oversized, of another version or cluster:
   * `'fresh'` (default) starts a fresh session (and clears the cookie); `'reject'` answers
   * HTTP 400 `{ error: { code: 'INVALID_SESSION_TOKEN', reason } }`. Both count it in
   * `causeway.session.invalid_tokens` and add a span event.
   */
  onInvalidToken?: 'fresh' | 'reject';
  /** Token and cookie lifetime (sliding). Default 24 hours (see `SessionTokensOptions.ttlMs`). */
  ttlMs?: number;
  /**
   * Cookie `Secure` attribute: `true`, `false`, or `'auto'` (default): set when the request came
   * over TLS (Express's `req.secure`, which honours `trust proxy`).
   */
  secureCookie?: boolean | 'auto';
  /** Cookie `Domain` attribute. Default: none (host-only cookie). */
  cookieDomain?: string;
  /** Adds the `causeway-route` debug header listing each read's target and reason. Default false. */
  routeHeader?: boolean;
  /**
   * Keeps session state on the server by `userKey`, so read-your-writes follows a user across
   * devices and cookie-less clients: read when a request starts (merged with its token), merged
   * back (floors forward only) when the request moved its write floor. If the store fails, that
   * request's floor-based reads go to the leader. Default: none (the token alone carries state).
   */
  store?: SessionStore;
  /**
   * The user key for `store` (a user, API client or runner id); undefined skips the store.
   * Install `consistency()` after the middleware that authenticates, so the key is known.
   */
  userKey?: (req: IncomingMessage) => string | undefined;
}

/**
 * `req.consistency`: the request's session and level, for code that routes reads itself.
 * The routed `pg` pool needs none of this: it finds the session through AsyncLocalStorage.
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
}

/**
 * The request type the middleware sets `req.consistency` on. Express's `Request` fits it. To type
 * `req.consistency` in your app, either call `consistencyOf(req)` or add to your own code:
 * `declare global { namespace Express { interface Request { consistency: RequestConsistency } } }`.
 */
export type ConsistencyRequest = IncomingMessage & {
  consistency?: RequestConsistency;
  secure?: boolean;
};

/** An Express 4/5 (or connect-style) middleware; structural, Causeway never imports Express. */
export type ConsistencyMiddleware = (
  req: ConsistencyRequest,
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void;

type NextFunction = Parameters<ConsistencyMiddleware>[2];

/** Result of `handler.run()`: `fn`'s result and the token to hand back to the client. */
export interface RunResult<T> {
  readonly result: T;
  /** The session's token: re-issued if it changed or was near expiry, else the one given. */
  readonly token: string | undefined;
}

/** The middleware, which is also the direct API for code outside Express. */
export interface ConsistencyHandler extends ConsistencyMiddleware {
  /** A middleware that sets this route's level: `app.get('/balance', c.level('strong'), ...)`. */
  level(level: ConsistencyLevel): ConsistencyMiddleware;
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
  /** The router used by `req.consistency.read()`, when a replica set or router was given. */
  readonly router: Router | undefined;
}

interface ResolvedOptions {
  readonly tokens: SessionTokens;
  readonly router: Router | undefined;
  readonly replicaSet: ReplicaSet | undefined;
  readonly level: ConsistencyLevel;
  readonly reject: boolean;
  readonly secureCookie: boolean | 'auto';
  readonly cookieTail: string;
  readonly clearCookie: string;
  readonly routeHeader: boolean;
  readonly store: SessionStore | undefined;
  readonly userKey: ((req: IncomingMessage) => string | undefined) | undefined;
}

const CONSISTENCY_OPTION_KEYS = [
  'secret',
  'replicaSet',
  'router',
  'level',
  'onNoCaughtUp',
  'waitTimeoutMs',
  'onInvalidToken',
  'ttlMs',
  'secureCookie',
  'cookieDomain',
  'routeHeader',
  'store',
  'userKey',
] as const satisfies readonly (keyof ConsistencyOptions)[];

function resolveOptions(options: ConsistencyOptions): ResolvedOptions {
  knownOptions(options, 'consistency', CONSISTENCY_OPTION_KEYS);
  const tokens = new SessionTokens(
    options.ttlMs === undefined
      ? { secret: options.secret }
      : { secret: options.secret, ttlMs: options.ttlMs },
  );
  const level = validateLevel(options.level ?? 'read-your-writes', 'level');
  const replicaSet = options.replicaSet ?? options.router?.replicaSet;
  if (
    options.router !== undefined &&
    (options.onNoCaughtUp !== undefined || options.waitTimeoutMs !== undefined)
  ) {
    throw configError(
      'consistency: onNoCaughtUp and waitTimeoutMs configure the router built here: with `router`, set them on that router',
    );
  }
  let router = options.router;
  if (router === undefined && replicaSet !== undefined) {
    router = new Router({
      replicaSet,
      level,
      ...(options.onNoCaughtUp === undefined ? {} : { onNoCaughtUp: options.onNoCaughtUp }),
      ...(options.waitTimeoutMs === undefined ? {} : { waitTimeoutMs: options.waitTimeoutMs }),
    });
  }
  const onInvalidToken = oneOfOption(
    'consistency',
    'onInvalidToken',
    options.onInvalidToken,
    ['fresh', 'reject'],
    'fresh',
  );
  const secureCookie = options.secureCookie ?? 'auto';
  if (secureCookie !== true && secureCookie !== false && secureCookie !== 'auto') {
    throw configError("consistency: secureCookie must be true, false or 'auto'", { secureCookie });
  }
  const domain = options.cookieDomain;
  if (domain !== undefined && (typeof domain !== 'string' || !/^[A-Za-z0-9.-]+$/.test(domain))) {
    throw configError('consistency: cookieDomain must be a host name', { cookieDomain: domain });
  }
  const common = `; Path=/${domain === undefined ? '' : `; Domain=${domain}`}; HttpOnly; SameSite=Lax`;
  if (options.store !== undefined && typeof options.userKey !== 'function') {
    throw configError(
      'consistency: userKey must be a function (req) => string | undefined with a store',
    );
  }
  return {
    tokens,
    router,
    replicaSet,
    level,
    reject: onInvalidToken === 'reject',
    secureCookie,
    cookieTail: `; Max-Age=${Math.floor(tokens.ttlMs / 1000)}${common}`,
    clearCookie: `${SESSION_HEADER}=; Max-Age=0${common}`,
    routeHeader: booleanOption('consistency', 'routeHeader', options.routeHeader, false),
    store: options.store,
    userKey: options.store === undefined ? undefined : options.userKey,
  };
}

/**
 * Express 4/5 middleware giving every request a session: reads the token from the
 * `causeway-session` header or cookie, runs the rest of the request inside the session (so the
 * routed pool keeps read-your-writes and monotonic reads), sets `req.consistency`, and writes the
 * token back (header and cookie) just before the response headers go out, only when it changed.
 * Writes made after the headers were sent (a streamed response) are not in that response's token.
 */
export function consistency(options: ConsistencyOptions): ConsistencyHandler {
  const resolved = resolveOptions(options);
  const { tokens, router, replicaSet, store, userKey } = resolved;
  const currentStream = () => replicaSet?.snapshot().leader.position?.stream;

  const middleware: ConsistencyMiddleware = (req, res, next) => {
    const fromHeader = headerValue(req.headers[SESSION_HEADER]);
    const fromCookie =
      fromHeader === undefined ? cookieValue(req.headers.cookie, SESSION_HEADER) : undefined;
    const token = fromHeader ?? fromCookie;
    const checked =
      token === undefined ? undefined : checkToken(tokens, token, { stream: currentStream() });
    const invalid = checked instanceof CausewayError;
    if (invalid && resolved.reject) return rejectToken(res, checked, resolved.clearCookie);
    const verified = invalid ? undefined : checked;
    const clearBadCookie = invalid && fromCookie !== undefined;
    const key = userKey?.(req);
    if (store === undefined || key === undefined) {
      return enter(req, res, next, verified, clearBadCookie, undefined);
    }
    const span = trace.getActiveSpan();
    store
      .get(key)
      .then(
        (kept) => {
          const ownState = verified?.state;
          const state =
            kept === undefined
              ? ownState
              : ownState === undefined
                ? kept
                : mergeSessionStates(ownState, kept);
          enter(req, res, next, verified, clearBadCookie, { key, span, state, failed: false });
        },
        (error: unknown) => {
          recordStoreFailure(span, error);
          const state = verified?.state;
          enter(req, res, next, verified, clearBadCookie, { key, span, state, failed: true });
        },
      )
      .catch(next);
  };

  function enter(
    req: ConsistencyRequest,
    res: ServerResponse,
    next: NextFunction,
    verified: VerifiedToken | undefined,
    clearBadCookie: boolean,
    stored: StoredSession | undefined,
  ): void {
    const state = stored === undefined ? verified?.state : stored.state;
    const session = new SessionContext(state ?? { id: newSessionId() }, resolved.level);
    if (stored?.failed) session.floorsUncertain = true;
    if (resolved.routeHeader) session.routes = [];
    req.consistency = new RequestSession(session, resolved);
    const writeBack = new WriteBack(res, resolved, session, verified, clearBadCookie, stored);
    writeBack.secure =
      resolved.secureCookie === 'auto' ? req.secure === true : resolved.secureCookie;
    // The response is hooked only when there is (or comes) something to write back.
    if (
      clearBadCookie ||
      resolved.routeHeader ||
      (verified !== undefined && resolved.tokens.needsRefresh(verified))
    ) {
      writeBack.hook();
    } else {
      session.changeListener = writeBack;
    }

    withSession(session, () => next());
  }

  const handler = middleware as ConsistencyHandler;
  const extras: Omit<ConsistencyHandler, keyof ConsistencyMiddleware> = {
    router,
    level(level) {
      const lvl = validateLevel(level, 'level');
      return (req, _res, next) => {
        const c = req.consistency;
        if (c === undefined) return next(configError('consistency() must run before .level()'));
        c.level = lvl;
        next();
      };
    },
    async run(token, fn, runOptions = {}) {
      const checked = checkToken(tokens, token, { stream: currentStream() });
      if (checked instanceof CausewayError && resolved.reject) throw checked;
      const verified = checked instanceof CausewayError ? undefined : checked;
      const level =
        runOptions.level === undefined ? resolved.level : validateLevel(runOptions.level, 'level');
      const session = new SessionContext(verified?.state ?? { id: newSessionId() }, level);
      const result = await withSession(session, () => fn(session));
      const reissue = session.changed || (verified !== undefined && tokens.needsRefresh(verified));
      return {
        result,
        token: reissue ? tokens.issue(session.state) : verified === undefined ? undefined : token,
      };
    },
    issue: (state) => tokens.issue(state),
    verify: (token) => tokens.verify(token, { stream: currentStream() }).state,
    sessionForJob: (session) => sessionForJob(tokens, session),
    withJobSession: (job, fn, jobOptions) => withJobSession(tokens, job, fn, jobOptions),
  };
  return Object.assign(handler, extras);
}

interface StoredSession {
  readonly key: string;
  readonly span: Span | undefined;
  readonly state: SessionState | undefined;
  readonly failed: boolean;
}

const kWriteBack = Symbol('causeway.writeBack');
type HookedResponse = ServerResponse & { [kWriteBack]?: WriteBack };

/**
 * What a response writes back just before its headers go out: the token (header and cookie) if
 * the session changed, the debug header, the session store. It hooks `res.writeHead` with one
 * shared function and a symbol-keyed field, measurably cheaper than a closure per response
 * (bench/middleware.bench.ts), and only once there is something to write.
 */
class WriteBack {
  /** The cookie's `Secure` attribute. */
  secure = false;
  /** The `writeHead` the response had when hooked (the prototype's, or another middleware's). */
  previousWriteHead: ServerResponse['writeHead'] | undefined;
  done = false;
  readonly initialWriteFloor: Position | undefined;

  constructor(
    readonly res: HookedResponse,
    readonly options: ResolvedOptions,
    readonly session: SessionContext,
    readonly verified: VerifiedToken | undefined,
    readonly clearBadCookie: boolean,
    readonly stored: StoredSession | undefined,
  ) {
    this.initialWriteFloor = session.writeFloor;
  }

  /** Hooks the response (no-op once its headers are sent or it is hooked). */
  hook(): void {
    const res = this.res;
    if (res.headersSent || res[kWriteBack] !== undefined) return;
    this.previousWriteHead = res.writeHead;
    res[kWriteBack] = this;
    res.writeHead = writeHeadWithToken as ServerResponse['writeHead'];
  }

  /** The session's first change: from now on there is a token to write back. */
  sessionChanged(): void {
    this.hook();
  }

  write(): void {
    const { res, options, session, verified, stored } = this;
    const { tokens } = options;
    if (session.changed || (verified !== undefined && tokens.needsRefresh(verified))) {
      const token = tokens.issue(session.state);
      res.setHeader(SESSION_HEADER, token);
      appendSetCookie(
        res,
        `${SESSION_HEADER}=${token}${options.cookieTail}${this.secure ? '; Secure' : ''}`,
      );
    } else if (this.clearBadCookie) {
      appendSetCookie(res, options.clearCookie);
    }
    if (session.routes !== undefined && session.routes.length > 0) {
      res.setHeader(ROUTE_HEADER, session.routes.map(formatRoute).join(', '));
    }
    if (stored !== undefined && session.writeFloor !== this.initialWriteFloor) {
      options.store
        ?.set(stored.key, session.state)
        .catch((error: unknown) => recordStoreFailure(stored.span, error));
    }
  }
}

function writeHeadWithToken(
  this: HookedResponse,
  statusCode: number,
  reason?: unknown,
  headers?: unknown,
): ServerResponse {
  // Installed only together with its write-back. It stays installed after use: assigning
  // `writeHead` back costs more (V8 re-shapes every response) than one extra call would.
  const writeBack = this[kWriteBack]!;
  if (!writeBack.done) {
    writeBack.done = true;
    try {
      writeBack.write();
    } catch (error) {
      // Never break the response over the session: it only loses this response's token.
      trace.getActiveSpan()?.recordException(error instanceof Error ? error : String(error));
    }
  }
  return (writeBack.previousWriteHead as (...args: unknown[]) => ServerResponse).call(
    this,
    statusCode,
    reason,
    headers,
  );
}

class RequestSession implements RequestConsistency {
  readonly session: SessionContext;
  readonly #options: ResolvedOptions;

  constructor(session: SessionContext, options: ResolvedOptions) {
    this.session = session;
    this.#options = options;
  }

  get level(): ConsistencyLevel {
    return this.session.level;
  }

  set level(level: ConsistencyLevel) {
    this.session.level = validateLevel(level, 'level');
  }

  read(level?: ConsistencyLevel): Promise<RouteDecision> {
    const router = this.#options.router;
    if (router === undefined) {
      return Promise.reject(
        configError('req.consistency.read() needs consistency({ replicaSet }) or { router }'),
      );
    }
    return router.route(this.session, level);
  }

  async write(position?: Position): Promise<void> {
    if (position !== undefined) return this.session.noteWrite(position);
    const replicaSet = this.#options.replicaSet;
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
}

/** `req.consistency`, or a `CONFIG` error when the middleware did not run for this request. */
export function consistencyOf(req: IncomingMessage): RequestConsistency {
  const c = (req as ConsistencyRequest).consistency;
  if (c === undefined) throw configError('consistency() middleware did not run for this request');
  return c;
}

function recordStoreFailure(span: Span | undefined, error: unknown): void {
  addToCounter(CounterName.SESSION_STORE_FAILURES);
  span?.addEvent(EventName.STORE_FAILURE, {
    [Attr.REASON]:
      error instanceof CausewayError ? error.code : error instanceof Error ? error.name : 'unknown',
  });
}

function rejectToken(res: ServerResponse, error: CausewayError, clearCookie: string): void {
  res.statusCode = 400;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  appendSetCookie(res, clearCookie);
  res.end(
    JSON.stringify({
      error: { code: error.code, message: error.message, reason: invalidTokenReason(error) },
    }),
  );
}

function formatRoute(decision: RouteDecision): string {
  return `${decision.target};node=${decision.node};reason=${decision.reason};level=${levelName(decision.level)}`;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const text = typeof value === 'string' ? value : value.join(',');
  return text === '' ? undefined : text;
}

/** The value of cookie `name` in a `Cookie` header (no cookie-parser needed). */
function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  let at = 0;
  while (at < header.length) {
    const end = header.indexOf(';', at);
    const stop = end === -1 ? header.length : end;
    const eq = header.indexOf('=', at);
    if (eq !== -1 && eq < stop && header.slice(at, eq).trim() === name) {
      let value = header.slice(eq + 1, stop).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"'))
        value = value.slice(1, -1);
      return value === '' ? undefined : value;
    }
    at = stop + 1;
  }
  return undefined;
}

function appendSetCookie(res: ServerResponse, cookie: string): void {
  const existing = res.getHeader('set-cookie');
  if (existing === undefined) res.setHeader('set-cookie', cookie);
  else if (Array.isArray(existing)) res.setHeader('set-cookie', [...existing, cookie]);
  else res.setHeader('set-cookie', [String(existing), cookie]);
}
