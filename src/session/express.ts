import type { IncomingMessage, ServerResponse } from 'node:http';
import { CausewayError, configError } from '../errors.js';
import {
  type ConsistencyApi,
  ConsistencyCore,
  consistencyApi,
  type RequestConsistency,
} from './exchange.js';
import { appendSetCookie, headerValue, SESSION_HEADER } from './express-http.js';
import type { ConsistencyOptions } from './express-options.js';
import { WriteBack } from './express-write-back.js';
import { type ConsistencyLevel, validateLevel } from './level.js';

export type { ConsistencyApi, RequestConsistency, RunResult } from './exchange.js';
export { ROUTE_HEADER, SESSION_HEADER } from './express-http.js';
export type { ConsistencyOptions } from './express-options.js';

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

/** The middleware, which is also the direct API for code outside Express. */
export interface ConsistencyHandler extends ConsistencyMiddleware, ConsistencyApi {
  /** A middleware that sets this route's level: `app.get('/balance', c.level('strong'), ...)`. */
  level(level: ConsistencyLevel): ConsistencyMiddleware;
}

/**
 * Express 4/5 middleware giving every request a session: reads the token from the
 * `causeway-session` header or cookie, runs the rest of the request inside the session (so the
 * routed pool keeps read-your-writes and monotonic reads), sets `req.consistency`, and writes the
 * token back (header and cookie) just before the response headers go out, only when it changed.
 * Writes made after the headers were sent (a streamed response) are not in that response's token.
 */
export function consistency<Req extends IncomingMessage = IncomingMessage>(
  options: ConsistencyOptions<Req>,
): ConsistencyHandler {
  return expressHandler(new ConsistencyCore<Req>(options));
}

/** The Express middleware of `core` (`consistency()`; Nest's module shares its core). */
export function expressHandler<Req extends IncomingMessage>(
  core: ConsistencyCore<Req>,
): ConsistencyHandler {
  const middleware: ConsistencyMiddleware = (req, res, next) => {
    const exchange = core.begin({
      header: headerValue(req.headers[SESSION_HEADER]),
      cookie: req.headers.cookie,
      secure: req.secure === true,
      request: req as Req,
    });
    if (exchange instanceof CausewayError) return sendRejection(res, core.rejection(exchange));
    req.consistency = exchange;
    const writeBack = new WriteBack(res, exchange);
    // The response is hooked only when there is (or comes) something to write back.
    if (exchange.mustWriteBack) writeBack.hook();
    else exchange.session.changeListener = writeBack;
    exchange.run(next);
  };

  const handler = middleware as ConsistencyHandler;
  const extras: Omit<ConsistencyHandler, keyof ConsistencyMiddleware> = {
    ...consistencyApi(core),
    level(level) {
      const lvl = validateLevel(level, 'level');
      return (req, _res, next) => {
        const c = req.consistency;
        if (c === undefined) return next(configError('consistency() must run before .level()'));
        c.level = lvl;
        next();
      };
    },
  };
  return Object.assign(handler, extras);
}

function sendRejection(
  res: ServerResponse,
  rejection: ReturnType<ConsistencyCore<unknown>['rejection']>,
): void {
  res.statusCode = rejection.status;
  for (const [name, value] of rejection.headers) {
    if (name === 'set-cookie') appendSetCookie(res, value);
    else res.setHeader(name, value);
  }
  res.end(rejection.body);
}

/** `req.consistency`, or a `CONFIG` error when the middleware did not run for this request. */
export function consistencyOf(req: IncomingMessage): RequestConsistency {
  const c = (req as ConsistencyRequest).consistency;
  if (c === undefined) throw configError('consistency() middleware did not run for this request');
  return c;
}
