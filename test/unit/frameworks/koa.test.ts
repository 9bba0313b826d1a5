import Koa, { type Context } from 'koa';
import request from 'supertest';
import { expect, it } from 'vitest';
import { consistency, consistencyOf } from '../../../src/frameworks/koa.js';
import { currentSession } from '../../../src/session/context.js';
import {
  type BuildApp,
  bearerUser,
  describeAdapter,
  errorBody,
  type Sent,
  SUITE_SECRET,
} from '../../support/framework-suite.js';

/** The request body as JSON (Koa has no body parser of its own). */
async function jsonBody(ctx: Context): Promise<Record<string, string>> {
  let text = '';
  for await (const chunk of ctx.req) text += String(chunk);
  return text === '' ? {} : (JSON.parse(text) as Record<string, string>);
}

function sent(response: request.Response): Sent {
  const cookies = response.headers['set-cookie'] as unknown as string[] | undefined;
  return {
    status: response.status,
    header: (name) => response.headers[name] as string | undefined,
    setCookies: cookies ?? [],
    body: response.body as Record<string, unknown>,
  };
}

const build: BuildApp = async (logic, suite) => {
  const app = new Koa();
  app.silent = true; // the failing route's error is expected
  if (suite.customErrors) {
    app.use(async (ctx, next) => {
      try {
        await next();
      } catch (error) {
        ctx.status = 500;
        ctx.body = errorBody(error);
      }
    });
  }
  app.use(
    consistency({
      ...suite.options,
      ...(suite.withUserKey
        ? { userKey: (ctx: Context) => bearerUser(ctx.get('authorization')) }
        : {}),
    }),
  );
  app.use(async (ctx) => {
    const c = consistencyOf(ctx);
    const item = /^\/items\/(\w+)$/.exec(ctx.path);
    if (ctx.method === 'GET' && item !== null) {
      ctx.body = await logic.read(c, item[1]!);
    } else if (ctx.method === 'POST' && item !== null) {
      ctx.body = await logic.write(c, item[1]!, (await jsonBody(ctx))['value']!);
    } else if (ctx.method === 'POST' && ctx.path.startsWith('/fail/')) {
      ctx.body = await logic.writeThenFail(c, ctx.path.slice(6), (await jsonBody(ctx))['value']!);
    } else if (ctx.method === 'POST' && ctx.path === '/signup') {
      ctx.body = await logic.signup(c, (await jsonBody(ctx))['user']!);
    } else if (ctx.method === 'POST' && ctx.path === '/login') {
      ctx.body = await logic.login(c, (await jsonBody(ctx))['user']!);
    }
  });
  const server = app.listen(0, '127.0.0.1');
  return {
    send: async (method, path, headers = {}, body = undefined) => {
      const test = method === 'GET' ? request(server).get(path) : request(server).post(path);
      test.set(headers);
      return sent(await (body === undefined ? test : test.send(body)));
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
};

describeAdapter('Koa', build);

it('Koa: the session holds in a handler after awaiting a late body', async () => {
  const app = new Koa();
  app.use(consistency({ secret: SUITE_SECRET }));
  app.use(async (ctx) => {
    await jsonBody(ctx);
    ctx.body = { same: currentSession() === consistencyOf(ctx).session };
  });
  const response = await request(app.callback())
    .post('/')
    .send({ a: 'x'.repeat(100_000) });
  expect(response.body).toEqual({ same: true });
});

it('Koa: a route level through c.level()', async () => {
  const app = new Koa();
  const c = consistency({ secret: SUITE_SECRET });
  app.use(c);
  app.use(c.level('strong'));
  app.use((ctx) => {
    ctx.body = { level: consistencyOf(ctx).level };
  });
  const response = await request(app.callback()).get('/');
  expect(response.body).toEqual({ level: 'strong' });
});
