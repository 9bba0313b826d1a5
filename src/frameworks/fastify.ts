// `causeway/fastify`: the session as a Fastify plugin, on Fastify's own hooks (no middleware
// emulation, which loses the AsyncLocalStorage context).
import type { FastifyRequest } from 'fastify';
import { ConsistencyCore } from '../session/exchange.js';
import type { ConsistencyOptions } from '../session/express-options.js';
import { type FastifyConsistency, fastifyPlugin } from './fastify-plugin.js';

export type { ConsistencyApi, RequestConsistency, RunResult } from '../session/exchange.js';
export { ROUTE_HEADER, SESSION_HEADER } from '../session/express-http.js';
export type { FastifyConsistency } from './fastify-plugin.js';

/** Options of the Fastify plugin; `userKey` is given Fastify's request. */
export type FastifyConsistencyOptions = ConsistencyOptions<FastifyRequest>;

/**
 * A Fastify 5 plugin giving every request a session: reads the token from the `causeway-session`
 * header or cookie (`onRequest`), runs the later hooks and the handler inside the session (Fastify
 * carries the async context across body parsing), sets `request.consistency`, and writes the
 * token back in `onSend`, before the headers go out. It
 * applies to the whole application, not only to the context it is registered in.
 */
export function consistency(options: FastifyConsistencyOptions): FastifyConsistency {
  return fastifyPlugin(new ConsistencyCore<FastifyRequest>(options));
}
