// `causeway/nest`: the session for NestJS, as a global module and a `@Consistency()` parameter
// decorator. On Nest's Express platform the module applies the Express middleware to every route;
// on its Fastify platform it registers the Fastify plugin on the adapter's instance (Nest's
// middleware there is an emulation over @fastify/middie).
import type { IncomingMessage } from 'node:http';
import {
  createParamDecorator,
  type DynamicModule,
  type ExecutionContext,
  Inject,
  type MiddlewareConsumer,
  Module,
  type NestModule,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { configError } from '../errors.js';
import { ConsistencyCore, type RequestConsistency } from '../session/exchange.js';
import { type ConsistencyHandler, expressHandler } from '../session/express.js';
import type { ConsistencyOptions } from '../session/express-options.js';
import { fastifyPlugin } from './fastify-plugin.js';

export type { ConsistencyApi, RequestConsistency, RunResult } from '../session/exchange.js';
export { ROUTE_HEADER, SESSION_HEADER } from '../session/express-http.js';

/** Injection token of the `ConsistencyHandler` (`run`, `sessionForJob`, ...) the module made. */
export const CONSISTENCY_HANDLER = Symbol.for('causeway.consistencyHandler');

/**
 * `imports: [ConsistencyModule.forRoot({ secret, replicaSet })]`: a global module giving every
 * request a session (the handler runs inside it, so guards, interceptors, exception filters and
 * the routed pool see it) and providing the `ConsistencyHandler` under `CONSISTENCY_HANDLER`. On
 * the Express platform it is `causeway/express`'s middleware on every route; on the Fastify
 * platform (`@nestjs/platform-fastify`), `causeway/fastify`'s plugin on the adapter's instance,
 * both over one core. `userKey` is given the platform's request: Express's, or Fastify's
 * (type it with `forRoot<FastifyRequest>(...)`).
 */
// biome-ignore lint/complexity/noStaticOnlyClass: Nest's dynamic-module convention (`X.forRoot()`).
export class ConsistencyModule {
  static forRoot<Req = IncomingMessage>(options: ConsistencyOptions<Req>): DynamicModule {
    const core = new ConsistencyCore<Req>(options);
    const handler: ConsistencyHandler = expressHandler(
      core as unknown as ConsistencyCore<IncomingMessage>,
    );
    // A module class per call, so that each configures its own core.
    class ConfiguredConsistencyModule implements NestModule {
      constructor(readonly host: HttpAdapterHost) {}

      configure(consumer: MiddlewareConsumer): void {
        const adapter = this.host.httpAdapter;
        if (adapter?.getType() === 'fastify') {
          const plugin = fastifyPlugin(core as unknown as ConsistencyCore<FastifyRequest>);
          (adapter.getInstance() as FastifyInstance).register(plugin);
        } else {
          consumer.apply(handler).forRoutes('{*path}');
        }
      }
    }
    Inject(HttpAdapterHost)(ConfiguredConsistencyModule, undefined, 0);
    Module({})(ConfiguredConsistencyModule);
    return {
      module: ConfiguredConsistencyModule,
      global: true,
      providers: [{ provide: CONSISTENCY_HANDLER, useValue: handler }],
      exports: [CONSISTENCY_HANDLER],
    };
  }
}

/** Parameter decorator for the request's `RequestConsistency`: `read(@Consistency() c)`. */
export const Consistency: () => ParameterDecorator = createParamDecorator(
  (_data: unknown, context: ExecutionContext): RequestConsistency => {
    // Express's request, or Fastify's (whose `consistency` the plugin decorates, null before).
    const request = context
      .switchToHttp()
      .getRequest<{ consistency?: RequestConsistency | null }>();
    const c = request.consistency;
    if (c === undefined || c === null) {
      throw configError('ConsistencyModule did not run for this request');
    }
    return c;
  },
);
