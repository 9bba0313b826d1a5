// End to end on the real cluster: PostgreSQL with the replica that applies 1.5 s late, the
// harness's Redis as the session store, and an HTTP client that keeps no cookies and sends no
// session token, only `Authorization`, as mobile apps and other services do. Read-your-writes
// must hold across signup, login and every later request, through Express and Fastify.
import { randomBytes } from 'node:crypto';
import express, { type Request, type Response } from 'express';
import Fastify, { type FastifyRequest } from 'fastify';
import { Redis } from 'ioredis';
import pg from 'pg';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReplicatedPool, type ReplicatedPool } from '../../../adapters/pg/replicated-pool.js';
import { RedisSessionStore } from '../../../adapters/redis/session-store.js';
import { consistency as fastifyConsistency } from '../../../src/frameworks/fastify.js';
import type { RequestConsistency } from '../../../src/session/exchange.js';
import { consistency, consistencyOf } from '../../../src/session/express.js';
import type { SessionStore } from '../../../src/session/session-store.js';
import { testEnv } from '../../harness/env.js';
import { bearerUser } from '../../support/framework-suite.js';

const env = testEnv();
const SECRET = 'cookieless-e2e-secret-of-32-chars!!';
const USERS = `cl_users_${randomBytes(4).toString('hex')}`;
const NOTES = `cl_notes_${randomBytes(4).toString('hex')}`;

let direct: pg.Pool;
let pool: ReplicatedPool;
let redis: Redis;

beforeAll(async () => {
  direct = new pg.Pool({ connectionString: env.primaryUrl, max: 2 });
  await direct.query(`CREATE TABLE ${USERS} (name text PRIMARY KEY, password text NOT NULL)`);
  await direct.query(`CREATE TABLE ${NOTES} (owner text NOT NULL, body text NOT NULL)`);
  // Only the lagging replica: any read routed to a replica within 1.5 s of a write misses it.
  pool = createReplicatedPool({
    primary: { config: { connectionString: env.primaryUrl, max: 4 } },
    replicas: [{ name: 'lagging', config: { connectionString: env.laggingReplicaUrl, max: 4 } }],
    replicaSetOptions: { checkTimeoutMs: 2000, connectTimeoutMs: 10_000 },
  });
  pool.on('error', () => {});
  const created = await pool.replicaSet.writePosition();
  expect(await pool.replicaSet.waitFor('lagging', created!, 15_000)).toBe(true);
  redis = new Redis(env.redisUrl, { lazyConnect: false });
});

afterAll(async () => {
  await pool?.end();
  await direct?.query(`DROP TABLE IF EXISTS ${USERS}, ${NOTES}`);
  await direct?.end();
  redis?.disconnect();
});

/** The handlers of the app, on any framework: signup, login, a note, the user's notes. */
const handlers = {
  async signup(c: RequestConsistency | undefined, name: string) {
    await pool.query(`INSERT INTO ${USERS} VALUES ($1, 'pw')`, [name]);
    c?.setUserKey(name);
    return { token: name };
  },
  async login(c: RequestConsistency | undefined, name: string) {
    c?.setUserKey(name); // before the lookup: its read must see the signup
    const { rows } = await pool.query(`SELECT password FROM ${USERS} WHERE name = $1`, [name]);
    return { found: rows.length === 1 };
  },
  async addNote(user: string, body: string) {
    await pool.query(`INSERT INTO ${NOTES} VALUES ($1, $2)`, [user, body]);
    return { ok: true };
  },
  async notes(user: string) {
    const { rows } = await pool.query(`SELECT body FROM ${NOTES} WHERE owner = $1`, [user]);
    return { notes: rows.map((row: { body: string }) => row.body) };
  },
};

type Call = (
  method: 'GET' | 'POST',
  path: string,
  auth?: string,
) => Promise<Record<string, unknown>>;

function expressApp(store: SessionStore | undefined): Call {
  const app = express();
  app.use(
    consistency({
      secret: SECRET,
      router: pool.router,
      ...(store === undefined
        ? {}
        : { store, userKey: (req: Request) => bearerUser(req.headers.authorization) }),
    }),
  );
  const c = (req: Request) => (store === undefined ? undefined : consistencyOf(req));
  const user = (req: Request) => bearerUser(req.headers.authorization)!;
  app.post('/signup/:name', async (req: Request, res: Response) => {
    res.json(await handlers.signup(c(req), String(req.params['name'])));
  });
  app.post('/login/:name', async (req: Request, res: Response) => {
    res.json(await handlers.login(c(req), String(req.params['name'])));
  });
  app.post('/notes/:body', async (req: Request, res: Response) => {
    res.json(await handlers.addNote(user(req), String(req.params['body'])));
  });
  app.get('/notes', async (req: Request, res: Response) => {
    res.json(await handlers.notes(user(req)));
  });
  return async (method, path, auth) => {
    const test = method === 'GET' ? request(app).get(path) : request(app).post(path);
    if (auth !== undefined) test.set('authorization', `Bearer ${auth}`);
    const response = await test;
    expect(response.status).toBe(200);
    return response.body as Record<string, unknown>;
  };
}

async function fastifyApp(store: SessionStore | undefined): Promise<Call> {
  const app = Fastify();
  await app.register(
    fastifyConsistency({
      secret: SECRET,
      router: pool.router,
      ...(store === undefined
        ? {}
        : { store, userKey: (req: FastifyRequest) => bearerUser(req.headers.authorization) }),
    }),
  );
  type P = { Params: { name: string; body: string } };
  const c = (req: FastifyRequest) => (store === undefined ? undefined : req.consistency!);
  const user = (req: FastifyRequest) => bearerUser(req.headers.authorization)!;
  app.post<P>('/signup/:name', (req) => handlers.signup(c(req), req.params.name));
  app.post<P>('/login/:name', (req) => handlers.login(c(req), req.params.name));
  app.post<P>('/notes/:body', (req) => handlers.addNote(user(req), req.params.body));
  app.get('/notes', (req) => handlers.notes(user(req)));
  await app.ready();
  return async (method, url, auth) => {
    const response = await app.inject({
      method,
      url,
      headers: auth === undefined ? {} : { authorization: `Bearer ${auth}` },
    });
    expect(response.statusCode).toBe(200);
    return response.json();
  };
}

/**
 * Signup, login, a note, the notes: what the client saw. A run that took longer than the
 * replica's delay says nothing (the replica may have caught up): it is retried, at most 5 times.
 */
async function journey(call: Call) {
  for (let run = 1; ; run++) {
    const name = `u${randomBytes(6).toString('hex')}`;
    const started = performance.now();
    await call('POST', `/signup/${name}`);
    const login = await call('POST', `/login/${name}`);
    await call('POST', '/notes/first', name);
    const notes = await call('GET', '/notes', name);
    const onTime = performance.now() - started < env.replicaDelayMs;
    if (onTime || run === 5) return { onTime, login, notes };
  }
}

describe.each([
  ['Express', async (store: SessionStore | undefined) => expressApp(store)],
  ['Fastify', fastifyApp],
])('a client with no cookies and no session token, on %s', (_name, build) => {
  it('reads its writes across signup, login and later requests (Redis store, 1.5 s replica)', async () => {
    const store = new RedisSessionStore({
      redis,
      keyPrefix: `cl-${randomBytes(4).toString('hex')}:`,
      timeoutMs: 2000,
    });
    const seen = await journey(await build(store));
    expect(seen.onTime).toBe(true);
    expect(seen.login).toEqual({ found: true });
    expect(seen.notes).toEqual({ notes: ['first'] });
  });

  it('with tokens alone (no store) the same client misses its own writes on the replica', async () => {
    const seen = await journey(await build(undefined));
    if (!seen.onTime) return; // a loaded machine: the replica may have caught up
    expect(seen.login).toEqual({ found: false });
    expect(seen.notes).toEqual({ notes: [] });
  });
});
