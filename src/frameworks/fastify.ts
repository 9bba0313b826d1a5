// `causeway/fastify`: the session as a Fastify plugin, on Fastify's own hooks (no middleware
// emulation, which loses the AsyncLocalStorage context).
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  onRequestHookHandler,
  onSendHookHandler,
  preHandlerHookHandler,
} from 'fastify';
import { CausewayError, configError } from '../errors.js';
import {
  type ConsistencyApi,
  ConsistencyCore,
  consistencyApi,
  type HeaderSink,
  type RequestConsistency,
  type RequestExchange,
} from '../session/exchange.js';
import { headerValue, SESSION_HEADER } from '../session/express-http.js';
import type { ConsistencyOptions } from '../session/express-options.js';
import { type ConsistencyLevel, validateLevel } from '../session/level.js';

export type { ConsistencyApi, RequestConsistency, RunResult } from '../session/exchange.js';
export { ROUTE_HEADER, SESSION_HEADER } from '../session/express-http.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's session, set by the `causeway/fastify` plugin (null without it). */
    consistency: RequestConsistency | null;
  }
}

/** Options of the Fastify plugin; `userKey` is given Fastify's request. */
export type FastifyConsistencyOptions = ConsistencyOptions<FastifyRequest>;

/** The plugin (`app.register(c)`), which is also the direct API for code outside HTTP. */
export interface FastifyConsistency extends ConsistencyApi {
  (app: FastifyInstance, options: unknown, done: (error?: Error) => void): void;
  /** A route's level, as a hook: `app.get('/balance', { preHandler: c.level('strong') }, ...)`. */
  level(level: ConsistencyLevel): preHandlerHookHandler;
}

type Exchange = RequestExchange<FastifyRequest>;

/**
 * A Fastify 5 plugin giving every request a session: reads the token from the `causeway-session`
 * header or cookie (`onRequest`), runs the later hooks and the handler inside the session (Fastify
 * carries the async context across body parsing), sets `request.consistency`, and writes the
 * token back in `onSend`, before the headers go out. It
 * applies to the whole application, not only to the context it is registered in.
 */
export function consistency(options: FastifyConsistencyOptions): FastifyConsistency {
  const core = new ConsistencyCore<FastifyRequest>(options);

  const onRequest: onRequestHookHandler = (request, reply, done) => {
    const exchange = core.begin({
      header: headerValue(request.headers[SESSION_HEADER]),
      cookie: request.headers.cookie,
      secure: request.protocol === 'https',
      request,
    });
    if (exchange instanceof CausewayError) {
      const rejection = core.rejection(exchange);
      reply.code(rejection.status).headers(Object.fromEntries(rejection.headers));
      reply.send(rejection.body);
      return;
    }
    request.consistency = exchange;
    exchange.run(() => done());
  };

  const onSend: onSendHookHandler = (request, reply, payload, done) => {
    (request.consistency as Exchange | null)?.writeBack(replySink(reply));
    done(null, payload);
  };

  const plugin = (app: FastifyInstance, _options: unknown, done: (error?: Error) => void) => {
    app.decorateRequest('consistency', null);
    app.addHook('onRequest', onRequest);
    app.addHook('onSend', onSend);
    done();
  };
  // Fastify's documented opt-out of encapsulation (what fastify-plugin sets): the hooks then
  // apply to every route of the application.
  Object.assign(plugin, { [Symbol.for('skip-override')]: true });

  return Object.assign(plugin, consistencyApi(core), {
    level(level: ConsistencyLevel): preHandlerHookHandler {
      const lvl = validateLevel(level, 'level');
      return (request, _reply, done) => {
        if (request.consistency === null) {
          done(configError('register the causeway/fastify plugin before using .level()'));
          return;
        }
        request.consistency.level = lvl;
        done();
      };
    },
  });
}

function replySink(reply: FastifyReply): HeaderSink {
  return (name, value, append) => {
    // Fastify appends Set-Cookie values itself; other appended headers join with a comma.
    const existing = append && name !== 'set-cookie' ? reply.getHeader(name) : undefined;
    reply.header(name, existing === undefined ? value : `${String(existing)}, ${value}`);
  };
}
