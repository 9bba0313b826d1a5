// The Fastify plugin of a `ConsistencyCore`, on Fastify's own hooks (no middleware emulation,
// which loses the AsyncLocalStorage context): `causeway/fastify`'s `consistency()`, and
// `causeway/nest`'s module on Nest's Fastify platform, which shares its core.
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
  type ConsistencyCore,
  consistencyApi,
  type HeaderSink,
  type RequestConsistency,
  type RequestExchange,
} from '../session/exchange.js';
import { headerValue, SESSION_HEADER } from '../session/express-http.js';
import { type ConsistencyLevel, validateLevel } from '../session/level.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's session, set by the `causeway/fastify` plugin (null without it). */
    consistency: RequestConsistency | null;
  }
}

/** The plugin (`app.register(c)`), which is also the direct API for code outside HTTP. */
export interface FastifyConsistency extends ConsistencyApi {
  (app: FastifyInstance, options: unknown, done: (error?: Error) => void): void;
  /** A route's level, as a hook: `app.get('/balance', { preHandler: c.level('strong') }, ...)`. */
  level(level: ConsistencyLevel): preHandlerHookHandler;
}

type Exchange = RequestExchange<FastifyRequest>;

/** The plugin of `core` (see `causeway/fastify`'s `consistency()`). */
export function fastifyPlugin(core: ConsistencyCore<FastifyRequest>): FastifyConsistency {
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
