import 'reflect-metadata';
import {
  type ArgumentsHost,
  Body,
  Catch,
  Controller,
  Get,
  Headers,
  type HttpServer,
  Param,
  Post,
} from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import type { FastifyRequest } from 'fastify';
import request from 'supertest';
import { expect, it } from 'vitest';
import {
  CONSISTENCY_HANDLER,
  Consistency,
  ConsistencyModule,
} from '../../../src/frameworks/nest.js';
import type { RequestConsistency } from '../../../src/session/exchange.js';
import type { ConsistencyHandler } from '../../../src/session/express.js';
import {
  type AppLogic,
  type BuildApp,
  bearerUser,
  bodyOf,
  describeAdapter,
  errorBody,
  type Sent,
  SUITE_SECRET,
} from '../../support/framework-suite.js';

function sent(response: request.Response): Sent {
  const cookies = response.headers['set-cookie'] as unknown as string[] | undefined;
  return {
    status: response.status,
    header: (name) => response.headers[name] as string | undefined,
    setCookies: cookies ?? [],
    body: response.body as Record<string, unknown>,
  };
}

/** Applies decorators the way TypeScript's legacy decorators would (no decorator syntax here). */
function route(
  target: { prototype: object },
  method: string,
  decorator: MethodDecorator,
  params: ParameterDecorator[],
): void {
  const descriptor = Object.getOwnPropertyDescriptor(target.prototype, method)!;
  for (const [index, param] of params.entries()) param(target.prototype, method, index);
  decorator(target.prototype, method, descriptor);
}

function itemsController(logic: AppLogic) {
  class ItemsController {
    read(c: RequestConsistency, key: string) {
      return logic.read(c, key);
    }
    write(c: RequestConsistency, key: string, body: { value: string }) {
      return logic.write(c, key, body.value);
    }
    fail(c: RequestConsistency, key: string, body: { value: string }) {
      return logic.writeThenFail(c, key, body.value);
    }
    signup(c: RequestConsistency, body: { user: string }) {
      return logic.signup(c, body.user);
    }
    login(c: RequestConsistency, body: { user: string }) {
      return logic.login(c, body.user);
    }
  }
  Controller()(ItemsController);
  route(ItemsController, 'read', Get('items/:key'), [Consistency(), Param('key')]);
  route(ItemsController, 'write', Post('items/:key'), [Consistency(), Param('key'), Body()]);
  route(ItemsController, 'fail', Post('fail/:key'), [Consistency(), Param('key'), Body()]);
  route(ItemsController, 'signup', Post('signup'), [Consistency(), Body()]);
  route(ItemsController, 'login', Post('login'), [Consistency(), Body()]);
  return ItemsController;
}

/**
 * An exception filter answering every error as a 500 `{ error }` (the suite's `customErrors`),
 * through the platform's adapter as Nest's platform-neutral filters do.
 */
class AnswerErrors {
  constructor(readonly adapter: HttpServer) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    this.adapter.reply(host.switchToHttp().getResponse(), errorBody(exception), 500);
  }
}
Catch()(AnswerErrors);

/** The suite's app on Nest's Express platform (driven with supertest). */
const build: BuildApp = async (logic, suite) => {
  const moduleRef = await Test.createTestingModule({
    imports: [
      ConsistencyModule.forRoot({
        ...suite.options,
        ...(suite.withUserKey ? { userKey: (req) => bearerUser(req.headers.authorization) } : {}),
      }),
    ],
    controllers: [itemsController(logic)],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  if (suite.customErrors) app.useGlobalFilters(new AnswerErrors(app.getHttpAdapter()));
  await app.init();
  return {
    send: async (method, path, headers = {}, body = undefined) => {
      const server = app.getHttpServer();
      const test = method === 'GET' ? request(server).get(path) : request(server).post(path);
      test.set(headers);
      // Nest answers POST with 201 by default; the suite expects what the handler returned.
      const response = sent(await (body === undefined ? test : test.send(body)));
      return response.status === 201 ? { ...response, status: 200 } : response;
    },
    close: () => app.close(),
  };
};

describeAdapter('NestJS', build);

/** The suite's app on Nest's Fastify platform (driven with Fastify's `inject()`). */
const buildOnFastify: BuildApp = async (logic, suite) => {
  const moduleRef = await Test.createTestingModule({
    imports: [
      ConsistencyModule.forRoot<FastifyRequest>({
        ...suite.options,
        ...(suite.withUserKey ? { userKey: (req) => bearerUser(req.headers.authorization) } : {}),
      }),
    ],
    controllers: [itemsController(logic)],
  }).compile();
  const app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), {
    logger: false,
  });
  if (suite.customErrors) app.useGlobalFilters(new AnswerErrors(app.getHttpAdapter()));
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  return {
    send: async (method, url, headers = {}, body = undefined) => {
      const response = await app.inject({
        method,
        url,
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
      });
      const cookies = response.headers['set-cookie'];
      const status = response.statusCode === 201 ? 200 : response.statusCode;
      return {
        status,
        header: (name) => response.headers[name] as string | undefined,
        setCookies: cookies === undefined ? [] : ([] as string[]).concat(cookies),
        body: bodyOf(response.body),
      };
    },
    close: () => app.close(),
  };
};

describeAdapter('NestJS on Fastify', buildOnFastify);

it('NestJS: the module provides the handler for jobs and non-HTTP entry points', async () => {
  class Plain {
    read(header: string | undefined) {
      return { header: header ?? null };
    }
  }
  Controller()(Plain);
  route(Plain, 'read', Get('plain'), [Headers('causeway-session')]);
  const moduleRef = await Test.createTestingModule({
    imports: [ConsistencyModule.forRoot({ secret: SUITE_SECRET })],
    controllers: [Plain],
  }).compile();
  const handler = moduleRef.get<ConsistencyHandler>(CONSISTENCY_HANDLER);
  const { token } = await handler.run(undefined, (session) =>
    session.noteWrite({ stream: 's', epoch: 1, lsn: 5n }),
  );
  expect(handler.verify(token!).writeFloor?.lsn).toBe(5n);
  await moduleRef.close();
});
