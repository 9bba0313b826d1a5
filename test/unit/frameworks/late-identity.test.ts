// userKey is evaluated when needed: authentication that runs after consistency() (per route)
// must still find the user's stored floors. Evaluated at the start of the request, as it once
// was, it saw no user and this read went to the stale replica.
import express, { type NextFunction, type Request, type Response } from 'express';
import request from 'supertest';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { MemoryReplicaSet } from '../../../adapters/memory/replica-set.js';
import { MemorySessionStore } from '../../../adapters/memory/session-store.js';
import { consistency, consistencyOf } from '../../../src/session/express.js';
import { bearerUser, SUITE_SECRET } from '../../support/framework-suite.js';

type AuthedRequest = Request & { user?: string };

let db: MemoryReplicaSet<string>;
let store: MemorySessionStore;
beforeEach(() => {
  db = new MemoryReplicaSet<string>({ replicas: [{ delayMs: Number.POSITIVE_INFINITY }] });
  store = new MemorySessionStore();
});
afterEach(async () => {
  await db.close();
  await store.close();
});

function app() {
  const server = express();
  server.use(
    consistency<AuthedRequest>({
      secret: SUITE_SECRET,
      replicaSet: db,
      store,
      userKey: (req) => req.user,
    }),
  );
  // Per-route authentication, after the middleware.
  const authenticate = (req: AuthedRequest, _res: Response, next: NextFunction) => {
    req.user = bearerUser(req.headers.authorization);
    next();
  };
  server.post('/items/:key', authenticate, async (req: Request, res: Response) => {
    await consistencyOf(req).write(db.write(String(req.params['key']), 'v'));
    res.json({ ok: true });
  });
  server.get('/items/:key', authenticate, async (req: Request, res: Response) => {
    const c = consistencyOf(req);
    const decision = await c.read();
    res.json({ value: db.read(decision.node, String(req.params['key'])).value ?? null });
  });
  return server;
}

it('finds the user known only after per-route authentication, at the read and at the response', async () => {
  const server = app();
  await request(server).post('/items/a').set('authorization', 'Bearer ann').expect(200);
  const read = await request(server).get('/items/a').set('authorization', 'Bearer ann');
  expect(read.body).toEqual({ value: 'v' });
  const other = await request(server).get('/items/a').set('authorization', 'Bearer bob');
  expect(other.body).toEqual({ value: null });
});

it('setUserKey needs a store and a non-empty key', async () => {
  const server = express();
  server.use(consistency({ secret: SUITE_SECRET }));
  server.get('/', (req: Request, res: Response) => {
    try {
      consistencyOf(req).setUserKey('ann');
      res.json({ code: null });
    } catch (error) {
      res.json({ code: (error as { code?: string }).code });
    }
  });
  expect((await request(server).get('/')).body).toEqual({ code: 'CONFIG' });
});
