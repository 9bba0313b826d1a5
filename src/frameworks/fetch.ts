// `causeway/fetch`: the session around a Fetch API handler (`Request` in, `Response` out): Next.js
// route handlers, Bun, Deno, Cloudflare-style `fetch` exports, undici's servers.
import { CausewayError, configError } from '../errors.js';
import { knownOptions } from '../options.js';
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

/** Options of the Fetch adapter; `userKey` is given the `Request`. */
export type FetchConsistencyOptions = ConsistencyOptions<Request>;

/** A Fetch API handler; extra arguments (Next.js's `{ params }`) pass through. */
export type FetchHandler<Args extends unknown[]> = (
  request: Request,
  ...args: Args
) => Response | Promise<Response>;

export interface FetchConsistency extends ConsistencyApi {
  /**
   * `handler` run inside the request's session, its response carrying the token back:
   * `export const POST = c.withConsistency(async (request) => ...)`. Inside, `consistencyOf(request)`
   * gives `req.consistency`'s equivalent. `level` sets the level of this handler's reads. An
   * error the handler throws goes to the host unchanged, and the host's error response carries
   * no token: a handler that writes and may fail should catch and return its own `Response`.
   */
  withConsistency<Args extends unknown[]>(
    handler: FetchHandler<Args>,
    options?: { level?: ConsistencyLevel },
  ): FetchHandler<Args>;
}

// The request's exchange in a symbol-keyed field rather than a WeakMap: an entry per request in
// a WeakMap costs the garbage collector (ephemerons) measurably (in-process, on Node 20, the
// adapter's CPU per request over the bare handler with AsyncLocalStorage on: 1.36x with the
// WeakMap, 1.10x with the field).
const kExchange = Symbol('causeway.exchange');
type ServedRequest = Request & { [kExchange]?: RequestConsistency };

/** The session of a request a `withConsistency` handler is serving, else `CONFIG`. */
export function consistencyOf(request: Request): RequestConsistency {
  const c = (request as ServedRequest)[kExchange];
  if (c === undefined) throw configError('this request is not served by withConsistency()');
  return c;
}

/**
 * The Fetch API adapter: reads the token from the `causeway-session` header or cookie, runs the
 * handler inside the session, and sets the token headers on its `Response` (copied first when
 * its headers are immutable, as for `Response.redirect()` or a `fetch()` result).
 */
export function consistency(options: FetchConsistencyOptions): FetchConsistency {
  const core = new ConsistencyCore<Request>(options);
  return {
    ...consistencyApi(core),
    withConsistency(handler, handlerOptions = {}) {
      const { level: given } = knownOptions(handlerOptions, 'withConsistency', ['level']);
      const level = given === undefined ? undefined : validateLevel(given, 'level');
      return async (request, ...args) => {
        const exchange = core.begin({
          header: request.headers.get(SESSION_HEADER) ?? undefined,
          cookie: request.headers.get('cookie') ?? undefined,
          secure: request.url.startsWith('https:'),
          request,
        });
        if (exchange instanceof CausewayError) {
          const rejection = core.rejection(exchange);
          return new Response(rejection.body, {
            status: rejection.status,
            headers: rejection.headers,
          });
        }
        if (level !== undefined) exchange.level = level;
        (request as ServedRequest)[kExchange] = exchange;
        let response = await exchange.run(() => handler(request, ...args));
        const pending: [string, string, boolean][] = [];
        exchange.writeBack((name, value, append) => pending.push([name, value, append]));
        if (pending.length === 0) return response;
        try {
          setAll(response.headers, pending);
        } catch {
          response = new Response(response.body, response);
          setAll(response.headers, pending);
        }
        return response;
      };
    },
  };
}

function setAll(headers: Headers, pending: readonly [string, string, boolean][]): void {
  for (const [name, value, append] of pending) {
    if (append) headers.append(name, value);
    else headers.set(name, value);
  }
}
