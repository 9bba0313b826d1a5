// `causeway/koa`: the session as a Koa middleware. Structural types: Causeway never imports Koa
// (nor its type packages, whose declarations do not all check against their dependencies').
import type { ServerResponse } from 'node:http';
import { CausewayError, configError } from '../errors.js';
import {
  type ConsistencyApi,
  ConsistencyCore,
  consistencyApi,
  type RequestConsistency,
} from '../session/exchange.js';
import { SESSION_HEADER } from '../session/express-http.js';
import type { ConsistencyOptions } from '../session/express-options.js';
import { WriteBack } from '../session/express-write-back.js';
import { type ConsistencyLevel, validateLevel } from '../session/level.js';

export type { ConsistencyApi, RequestConsistency, RunResult } from '../session/exchange.js';
export { ROUTE_HEADER, SESSION_HEADER } from '../session/express-http.js';

/** The part of Koa's `Context` the middleware uses (Koa 2 and 3 fit it). */
export interface KoaContextLike {
  get(field: string): string;
  set(field: string, value: string): void;
  readonly secure: boolean;
  /** Node's response: the token is written on it just before its headers go out. */
  readonly res: ServerResponse;
  state: Record<string, unknown>;
  status: number;
  body: unknown;
}

type Next = () => Promise<unknown>;
type Middleware<Ctx> = (ctx: Ctx, next: Next) => Promise<unknown>;

/** Options of the Koa middleware; `userKey` is given Koa's context. */
export type KoaConsistencyOptions<Ctx extends KoaContextLike = KoaContextLike> =
  ConsistencyOptions<Ctx>;

/** The middleware (`app.use(c)`), which is also the direct API for code outside HTTP. */
export interface KoaConsistency<Ctx extends KoaContextLike = KoaContextLike>
  extends ConsistencyApi {
  (ctx: Ctx, next: Next): Promise<void>;
  /** A route's level: `router.get('/balance', c.level('strong'), ...)`. */
  level(level: ConsistencyLevel): Middleware<Ctx>;
}

/**
 * Koa 2/3 middleware giving every request a session: reads the token from the `causeway-session`
 * header or cookie, runs the downstream middleware inside the session, sets
 * `ctx.state.consistency`, and sets the token headers on Node's response just before its
 * headers go out, as `causeway/express` does: after the whole chain, and after Koa's default
 * error handler (which clears every header set before) when a downstream middleware throws.
 */
export function consistency<Ctx extends KoaContextLike = KoaContextLike>(
  options: KoaConsistencyOptions<Ctx>,
): KoaConsistency<Ctx> {
  const core = new ConsistencyCore<Ctx>(options);
  const middleware = async (ctx: Ctx, next: Next): Promise<void> => {
    const exchange = core.begin({
      header: ctx.get(SESSION_HEADER) || undefined,
      cookie: ctx.get('cookie') || undefined,
      secure: ctx.secure,
      request: ctx,
    });
    if (exchange instanceof CausewayError) {
      const rejection = core.rejection(exchange);
      ctx.status = rejection.status;
      for (const [name, value] of rejection.headers) ctx.set(name, value);
      ctx.body = rejection.body;
      return;
    }
    ctx.state['consistency'] = exchange;
    const writeBack = new WriteBack(ctx.res, exchange);
    // The response is hooked only when there is (or comes) something to write back.
    if (exchange.mustWriteBack) writeBack.hook();
    else exchange.session.changeListener = writeBack;
    await exchange.run(next);
  };
  return Object.assign(middleware, consistencyApi(core), {
    level(level: ConsistencyLevel): Middleware<Ctx> {
      const lvl = validateLevel(level, 'level');
      return (ctx, next) => {
        consistencyOf(ctx).level = lvl;
        return next();
      };
    },
  });
}

/** `ctx.state.consistency`, or a `CONFIG` error when the middleware did not run. */
export function consistencyOf(ctx: KoaContextLike): RequestConsistency {
  const c = ctx.state['consistency'] as RequestConsistency | undefined;
  if (c === undefined) throw configError('causeway/koa consistency() did not run for this request');
  return c;
}
