// `causeway/nest`: the session for NestJS on its Express platform, as a global module applying
// the Express middleware to every route, and a `@Consistency()` parameter decorator.
import {
  createParamDecorator,
  type DynamicModule,
  type ExecutionContext,
  type MiddlewareConsumer,
  Module,
  type NestModule,
} from '@nestjs/common';
import type { RequestConsistency } from '../session/exchange.js';
import {
  type ConsistencyHandler,
  type ConsistencyOptions,
  consistency,
  consistencyOf,
} from '../session/express.js';

export type { ConsistencyApi, RequestConsistency, RunResult } from '../session/exchange.js';
export { ROUTE_HEADER, SESSION_HEADER } from '../session/express-http.js';

/** Injection token of the `ConsistencyHandler` (`run`, `sessionForJob`, ...) the module made. */
export const CONSISTENCY_HANDLER = Symbol.for('causeway.consistencyHandler');

/**
 * `imports: [ConsistencyModule.forRoot({ secret, replicaSet })]`: a global module whose
 * middleware gives every request a session (as `causeway/express` does; the handler runs
 * inside it, so guards, interceptors and the routed pool see it) and provides the
 * `ConsistencyHandler` under `CONSISTENCY_HANDLER`. For Nest on Fastify, register
 * `causeway/fastify` on the adapter's instance instead (Nest's middleware there is an emulation).
 */
// biome-ignore lint/complexity/noStaticOnlyClass: Nest's dynamic-module convention (`X.forRoot()`).
export class ConsistencyModule {
  static forRoot(options: ConsistencyOptions): DynamicModule {
    const handler: ConsistencyHandler = consistency(options);
    // A module class per call, so that each configures its own handler.
    class ConfiguredConsistencyModule implements NestModule {
      configure(consumer: MiddlewareConsumer): void {
        consumer.apply(handler).forRoutes('{*path}');
      }
    }
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
  (_data: unknown, context: ExecutionContext): RequestConsistency =>
    consistencyOf(context.switchToHttp().getRequest()),
);
