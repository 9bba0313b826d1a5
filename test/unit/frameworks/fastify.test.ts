import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyRequest, type LightMyRequestResponse } from 'fastify';
import { expect, it } from 'vitest';
import { consistency } from '../../../src/frameworks/fastify.js';
import { currentSession } from '../../../src/session/context.js';
import type { RequestConsistency } from '../../../src/session/exchange.js';
import {
  type BuildApp,
  bearerUser,
  bodyOf,
  describeAdapter,
  errorBody,
  type Sent,
  SUITE_SECRET,
} from '../../support/framework-suite.js';

type Params = { key: string };
type Body = { value: string; user: string };

function sent(response: LightMyRequestResponse): Sent {
  const cookies = response.headers['set-cookie'];
  return {
    status: response.statusCode,
    header: (name) => response.headers[name] as string | undefined,
    setCookies: cookies === undefined ? [] : ([] as string[]).concat(cookies),
    body: bodyOf(response.body),
  };
}

const build: BuildApp = async (logic, suite) => {
  const app = Fastify();
  const c = consistency({
    ...suite.options,
    ...(suite.withUserKey
      ? { userKey: (req: FastifyRequest) => bearerUser(req.headers.authorization) }
      : {}),
  });
  await app.register(c);
  if (suite.customErrors) {
    app.setErrorHandler((error, _req, reply) => reply.code(500).send(errorBody(error)));
  }
  const of = (req: FastifyRequest): RequestConsistency => req.consistency!;
  app.post<{ Params: Params; Body: Body }>('/items/:key', (req) =>
    logic.write(of(req), req.params.key, req.body.value),
  );
  app.post<{ Params: Params; Body: Body }>('/fail/:key', (req) =>
    logic.writeThenFail(of(req), req.params.key, req.body.value),
  );
  app.get<{ Params: Params }>('/items/:key', (req) => logic.read(of(req), req.params.key));
  app.post<{ Body: Body }>('/signup', (req) => logic.signup(of(req), req.body.user));
  app.post<{ Body: Body }>('/login', (req) => logic.login(of(req), req.body.user));
  await app.ready();
  return {
    send: async (method, url, headers = {}, body = undefined) =>
      sent(
        await app.inject({
          method,
          url,
          headers:
            body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
          ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
        }),
      ),
    close: () => app.close(),
  };
};

describeAdapter('Fastify', build);

it('Fastify: the session holds across async hooks, a late body and an async handler', async () => {
  const app = Fastify();
  await app.register(consistency({ secret: SUITE_SECRET }));
  const seen: boolean[] = [];
  app.addHook('preValidation', async (req) => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    seen.push(currentSession() === req.consistency?.session);
  });
  app.post('/late', async (req) => {
    await new Promise((resolve) => setImmediate(resolve));
    seen.push(currentSession() === req.consistency?.session);
    return { ok: true };
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  // Over a real socket, with the body's second half late: the parser resumes from socket
  // events, outside the request's async context (inject() would not show it).
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(
      {
        port,
        host: '127.0.0.1',
        method: 'POST',
        path: '/late',
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.write('{"a":');
    setTimeout(() => req.end('1}'), 30);
  });
  expect(status).toBe(200);
  expect(seen).toEqual([true, true]);
  await app.close();
});

it('Fastify: a route level through c.level()', async () => {
  const app = Fastify();
  const c = consistency({ secret: SUITE_SECRET });
  await app.register(c);
  app.get('/strong', { preHandler: c.level('strong') }, async (req) => ({
    level: req.consistency?.level,
  }));
  const response = await app.inject({ method: 'GET', url: '/strong' });
  expect(response.json()).toEqual({ level: 'strong' });
  await app.close();
});
