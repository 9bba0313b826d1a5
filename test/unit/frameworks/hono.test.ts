import { Hono } from 'hono';
import { expect, it } from 'vitest';
import { type ConsistencyEnv, consistency } from '../../../src/frameworks/hono.js';
import { currentSession } from '../../../src/session/context.js';
import {
  type BuildApp,
  bearerUser,
  bodyOf,
  describeAdapter,
  errorBody,
  type Sent,
  SUITE_SECRET,
} from '../../support/framework-suite.js';

async function sent(response: Response): Promise<Sent> {
  return {
    status: response.status,
    header: (name) => response.headers.get(name) ?? undefined,
    setCookies: response.headers.getSetCookie(),
    body: bodyOf(await response.text()),
  };
}

const build: BuildApp = async (logic, suite) => {
  const app = new Hono<ConsistencyEnv>();
  app.use(
    consistency({
      ...suite.options,
      ...(suite.withUserKey ? { userKey: (c) => bearerUser(c.req.header('authorization')) } : {}),
    }),
  );
  if (suite.customErrors) app.onError((error, c) => c.json(errorBody(error), 500));
  app.post('/items/:key', async (c) => {
    const { value } = await c.req.json<{ value: string }>();
    return c.json(await logic.write(c.get('consistency'), c.req.param('key'), value));
  });
  app.post('/fail/:key', async (c) => {
    const { value } = await c.req.json<{ value: string }>();
    return c.json(await logic.writeThenFail(c.get('consistency'), c.req.param('key'), value));
  });
  app.get('/items/:key', async (c) =>
    c.json(await logic.read(c.get('consistency'), c.req.param('key'))),
  );
  app.post('/signup', async (c) => {
    const { user } = await c.req.json<{ user: string }>();
    return c.json(await logic.signup(c.get('consistency'), user));
  });
  app.post('/login', async (c) => {
    const { user } = await c.req.json<{ user: string }>();
    return c.json(await logic.login(c.get('consistency'), user));
  });
  return {
    send: async (method, path, headers = {}, body = undefined) =>
      sent(
        await app.request(path, {
          method,
          headers:
            body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        }),
      ),
    close: async () => {},
  };
};

describeAdapter('Hono', build);

it('Hono: the session holds in a handler after awaiting the body, and c.level() sets a level', async () => {
  const app = new Hono<ConsistencyEnv>();
  const c = consistency({ secret: SUITE_SECRET });
  app.use(c);
  app.post('/strong', c.level('strong'), async (ctx) => {
    await ctx.req.text();
    await new Promise((resolve) => setTimeout(resolve, 5));
    const session = ctx.get('consistency');
    return ctx.json({ same: currentSession() === session.session, level: session.level });
  });
  const response = await app.request('/strong', { method: 'POST', body: 'x'.repeat(100_000) });
  expect(await response.json()).toEqual({ same: true, level: 'strong' });
});
