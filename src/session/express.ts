import type { IncomingMessage, ServerResponse } from 'node:http';
import { trace } from '@opentelemetry/api';
import { CausewayError, configError } from '../errors.js';
import {
  mergeSessionStates,
  newSessionId,
  SessionContext,
  type SessionState,
  withSession,
} from './context.js';
import { cookieValue, headerValue, rejectToken, SESSION_HEADER } from './express-http.js';
import {
  type ConsistencyOptions,
  type ResolvedOptions,
  resolveOptions,
} from './express-options.js';
import { recordStoreFailure, type StoredSession, WriteBack } from './express-write-back.js';
import { type ConsistencyLevel, validateLevel } from './level.js';
import type { Position } from './position.js';
import type { RouteDecision } from './route-decision.js';
import type { Router } from './router.js';
import {
  checkToken,
  type JobSessionCarrier,
  sessionForJob,
  type VerifiedToken,
  withJobSession,
} from './token.js';

export { ROUTE_HEADER, SESSION_HEADER } from './express-http.js';
export type { ConsistencyOptions } from './express-options.js';

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
