import { expect, it } from 'vitest';
import { consistency, consistencyOf } from '../../../src/frameworks/fetch.js';
import { currentSession } from '../../../src/session/context.js';
import {
  type BuildApp,
  bearerUser,
  bodyOf,
  describeAdapter,
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

// Route handlers in the shape of Next.js's app router (`export const GET = ...`), dispatched here
// by path as Next.js would.
const build: BuildApp = async (logic, suite) => {
  const c = consistency({
    ...suite.options,
    ...(suite.withUserKey
      ? { userKey: (request: Request) => bearerUser(request.headers.get('authorization')) }
      : {}),
  });
  type Params = { params: Promise<{ key: string }> };
  const GET = c.withConsistency(async (request: Request, { params }: Params) =>
    Response.json(await logic.read(consistencyOf(request), (await params).key)),
  );
  const POST = c.withConsistency(async (request: Request, { params }: Params) => {
    const { value } = (await request.json()) as { value: string };
    return Response.json(await logic.write(consistencyOf(request), (await params).key, value));
  });
  const account = (action: 'signup' | 'login') =>
    c.withConsistency(async (request: Request) => {
      const { user } = (await request.json()) as { user: string };
      return Response.json(await logic[action](consistencyOf(request), user));
    });
  const fail = c.withConsistency(async (request: Request, { params }: Params) => {
    const { value } = (await request.json()) as { value: string };
    return Response.json(
      await logic.writeThenFail(consistencyOf(request), (await params).key, value),
    );
  });
  const signup = account('signup');
  const login = account('login');
  return {
    send: async (method, path, headers = {}, body = undefined) => {
      const request = new Request(`http://app.test${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const key = /^\/(?:items|fail)\/(\w+)$/.exec(path)?.[1];
      const params = { params: Promise.resolve({ key: key ?? '' }) };
      if (path === '/signup') return sent(await signup(request));
      if (path === '/login') return sent(await login(request));
      if (path.startsWith('/fail/')) return sent(await fail(request, params));
      return sent(await (method === 'GET' ? GET(request, params) : POST(request, params)));
    },
    close: async () => {},
  };
};

describeAdapter('Fetch API', build, { errorsReachHost: true });

it('Fetch: the session holds across awaits; an immutable response gets the token on a copy', async () => {
  const c = consistency({ secret: SUITE_SECRET });
  const handler = c.withConsistency(
    async (request: Request) => {
      await request.text();
      await new Promise((resolve) => setTimeout(resolve, 5));
      const session = consistencyOf(request);
      expect(currentSession()).toBe(session.session);
      expect(session.level).toBe('strong');
      session.session.noteWrite({ stream: 's', epoch: 1, lsn: 10n });
      return Response.redirect('http://app.test/next', 303); // immutable headers
    },
    { level: 'strong' },
  );
  const response = await handler(new Request('http://app.test/', { method: 'POST', body: 'x' }));
  expect(response.status).toBe(303);
  expect(response.headers.get('location')).toBe('http://app.test/next');
  expect(c.verify(response.headers.get('causeway-session')!).writeFloor?.lsn).toBe(10n);
});
