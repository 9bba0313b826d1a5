// `causeway/hono`: the session as a Hono middleware (any runtime with AsyncLocalStorage).
import type { Context, MiddlewareHandler } from 'hono';
import { CausewayError } from '../errors.js';
import {
  type ConsistencyApi,
  ConsistencyCore,
  consistencyApi,
  type RequestConsistency,
} from '../session/exchange.js';
import { SESSION_HEADER } from '../session/express-http.js';
import type { ConsistencyOptions } from '../session/express-options.js';
import { type ConsistencyLevel, validateLevel } from '../session/level.js';

export type { ConsistencyApi, RequestConsistency, RunResult } from '../session/exchange.js';
export { ROUTE_HEADER, SESSION_HEADER } from '../session/express-http.js';

/** The context variables the middleware sets: `c.get('consistency')`. */
export type ConsistencyVariables = { consistency: RequestConsistency };
/** The environment to type an app with: `new Hono<ConsistencyEnv>()`. */
export type ConsistencyEnv = { Variables: ConsistencyVariables };

/** Options of the Hono middleware; `userKey` is given Hono's context. */
export type HonoConsistencyOptions = ConsistencyOptions<Context>;

/** The middleware (`app.use(c)`), which is also the direct API for code outside HTTP. */
export interface HonoConsistency extends ConsistencyApi, MiddlewareHandler<ConsistencyEnv> {
  /** A route's level: `app.get('/balance', c.level('strong'), ...)`. */
  level(level: ConsistencyLevel): MiddlewareHandler<ConsistencyEnv>;
}

/**
 * Hono 4 middleware giving every request a session: reads the token from the `causeway-session`
 * header or cookie, runs the downstream handlers inside the session, sets
 * `c.get('consistency')`, and sets the token headers on the response they produce.
 */
export function consistency(options: HonoConsistencyOptions): HonoConsistency {
  const core = new ConsistencyCore<Context>(options);
  const middleware: MiddlewareHandler<ConsistencyEnv> = async (c, next) => {
    const exchange = core.begin({
      header: c.req.header(SESSION_HEADER),
      cookie: c.req.header('cookie'),
      secure: c.req.url.startsWith('https:'),
      request: c,
    });
    if (exchange instanceof CausewayError) {
      const rejection = core.rejection(exchange);
      return c.body(rejection.body, rejection.status, Object.fromEntries(rejection.headers));
    }
    c.set('consistency', exchange);
    await exchange.run(next);
    exchange.writeBack((name, value, append) => c.header(name, value, { append }));
    return undefined;
  };
  return Object.assign(middleware, consistencyApi(core), {
    level(level: ConsistencyLevel): MiddlewareHandler<ConsistencyEnv> {
      const lvl = validateLevel(level, 'level');
      return async (c, next) => {
        c.get('consistency').level = lvl;
        await next();
      };
    },
  });
}
