import { createServer, request as httpRequest } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import express5, { type Express, type NextFunction, type Request, type Response } from 'express';
import request from 'supertest';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryReplicaSet } from '../../../adapters/memory/replica-set.js';
import { MemorySessionStore } from '../../../adapters/memory/session-store.js';
import { CausewayError, ErrorCode } from '../../../src/errors.js';
import {
  type ConsistencyHandler,
  type ConsistencyOptions,
  consistency,
  consistencyOf,
} from '../../../src/express.js';
import { currentSession, type SessionState } from '../../../src/session/context.js';
import { Router } from '../../../src/session/router.js';
import type { SessionStore } from '../../../src/session/session-store.js';
import { installTelemetry } from '../../support/otel.js';

interface ExpressFactory {
  (): Express;
  json: typeof express5.json;
}

// The `express4` alias (Express 4) ships no types; the structural API used here is the same.
const express4 = createRequire(import.meta.url)('express4') as ExpressFactory;
const SECRET = 'test-secret-of-at-least-32-chars!';

const otel = installTelemetry();
afterAll(() => otel.stop());

/** An Express app over an in-memory replicated key-value store, the way a user would write one. */
function buildApp(
  createApp: ExpressFactory,
  db: MemoryReplicaSet<string>,
  options: Partial<ConsistencyOptions> = {},
) {
  const app = createApp();
  const c: ConsistencyHandler = consistency({ secret: SECRET, replicaSet: db, ...options });
  // A request span, so that route events have somewhere to go.
  app.use((_req: Request, res: Response, next: NextFunction) => {
    otel.tracer.startActiveSpan('request', (span) => {
      res.on('finish', () => span.end());
      next();
    });
  });
  app.use(c);
  app.use(createApp.json());
  app.post('/items/:key', async (req: Request, res: Response) => {
    const position = db.write(String(req.params['key']), String(req.body.value));
    await consistencyOf(req).write(position);
    res.json({ ok: true });
  });
  const read = async (req: Request, res: Response, next: NextFunction) => {
    try {
      const session = consistencyOf(req);
      const decision = await session.read();
      const { value, position } = db.read(decision.node, String(req.params['key']));
      session.session.noteRead(position);
      res.json({
        value: value ?? null,
        target: decision.target,
        node: decision.node,
        reason: decision.reason,
      });
    } catch (error) {
      next(error); // Express 4 needs this; Express 5 would also catch the rejection itself.
    }
  };
  app.get('/items/:key', read);
  app.get('/strong/items/:key', c.level('strong'), read);
  app.get('/ping', (_req: Request, res: Response) => {
    res.json({ pong: true });
  });
  app.post('/fail-after-write/:key', async (req: Request) => {
    await consistencyOf(req).write(db.write(String(req.params['key']), 'x'));
    throw new CausewayError(ErrorCode.INVALID_INPUT, 'bad payload');
  });
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const status = error instanceof CausewayError ? error.httpStatus : 500;
    res.status(status).json({ code: error instanceof CausewayError ? error.code : 'UNKNOWN' });
  });
  return { app, c };
}

function tokenOf(response: request.Response): string {
  const token: unknown = response.headers['causeway-session'];
  expect(token).toBeTypeOf('string');
  return token as string;
}

function cookieOf(response: request.Response): string | undefined {
  const cookies = response.headers['set-cookie'] as unknown as string[] | undefined;
  return cookies?.find((cookie) => cookie.startsWith('causeway-session='));
}

describe.each([
  ['Express 5', express5 as unknown as ExpressFactory],
  ['Express 4', express4],
])('consistency() on %s', (_name, createApp) => {
  let db: MemoryReplicaSet<string>;
  beforeEach(() => {
    // Replicas apply writes only on catchUp(): a replica lagging as long as the test needs.
    db = new MemoryReplicaSet<string>({
      replicas: [{ delayMs: Number.POSITIVE_INFINITY }, { delayMs: Number.POSITIVE_INFINITY }],
    });
  });
  afterEach(() => db.close());

  it('reads your writes: leader until a replica caught up, then the replica', async () => {
    const { app } = buildApp(createApp, db);
    const written = await request(app).post('/items/a').send({ value: 'v1' }).expect(200);
    const token = tokenOf(written);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);

    const bare = await request(app).get('/items/a').expect(200);
    expect(bare.body).toMatchObject({ value: null, target: 'replica' }); // what a plain replica read sees

    const fresh = await request(app).get('/items/a').set('causeway-session', token).expect(200);
    expect(fresh.body).toEqual({
      value: 'v1',
      target: 'leader',
      node: 'leader',
      reason: 'write-floor-not-replicated',
    });

    db.catchUp();
    const later = await request(app).get('/items/a').set('causeway-session', token).expect(200);
    expect(later.body).toMatchObject({ value: 'v1', target: 'replica', reason: 'sticky' });
  });

  it('round-trips the token through the cookie, with safe attributes', async () => {
    const { app } = buildApp(createApp, db);
    const agent = request.agent(app);
    const written = await agent.post('/items/b').send({ value: 'v2' }).expect(200);
    const cookie = cookieOf(written);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Lax');
    expect(cookie).toContain('Path=/');
    expect(cookie).not.toContain('Secure');
    const read = await agent.get('/items/b').expect(200);
    expect(read.body).toMatchObject({ value: 'v2', target: 'leader' });

    const secure = buildApp(createApp, db, { secureCookie: true }).app;
    expect(cookieOf(await request(secure).post('/items/c').send({ value: 'v' }))).toContain(
      '; Secure',
    );
  });

  it('the session stays current (AsyncLocalStorage) after a body parser, even for a late body', async () => {
    const app = createApp();
    app.use(consistency({ secret: SECRET }));
    app.use(createApp.json());
    app.post('/', (req: Request, res: Response) => {
      const session = currentSession();
      res.json({ same: session !== undefined && session === consistencyOf(req).session });
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const { port } = server.address() as AddressInfo;
    const body = await new Promise<string>((resolve, reject) => {
      const headers = { 'content-type': 'application/json', 'content-length': '7' };
      const req = httpRequest(
        { port, host: '127.0.0.1', method: 'POST', path: '/', headers },
        (res) => {
          let text = '';
          res.on('data', (chunk) => {
            text += chunk;
          });
          res.on('end', () => resolve(text));
        },
      );
      req.on('error', reject);
      req.flushHeaders();
      setTimeout(() => req.end('{"a":1}'), 50); // the body arrives in a later packet
    });
    server.close();
    expect(JSON.parse(body)).toEqual({ same: true });
  });

  it('writes the token when another middleware also wraps writeHead, before or after it', async () => {
    const wrapWriteHead = (name: string) => (_req: Request, res: Response, next: NextFunction) => {
      const previous = res.writeHead;
      res.writeHead = function (this: Response, ...args: unknown[]) {
        res.setHeader(name, 'yes');
        return (previous as (...a: unknown[]) => Response).apply(this, args);
      } as Response['writeHead'];
      next();
    };
    const app = createApp();
    app.use(wrapWriteHead('x-before'));
    app.use(consistency({ secret: SECRET }));
    app.use(wrapWriteHead('x-after'));
    app.get('/write', (req: Request, res: Response) => {
      consistencyOf(req).session.noteWrite({ stream: 's', epoch: 1, lsn: 5n });
      res.json({});
    });
    const response = await request(app).get('/write').expect(200);
    expect(response.headers['x-before']).toBe('yes');
    expect(response.headers['x-after']).toBe('yes');
    expect(consistency({ secret: SECRET }).verify(tokenOf(response)).writeFloor?.lsn).toBe(5n);
  });

  it('writes the token only when the session changed', async () => {
    const { app } = buildApp(createApp, db);
    const ping = await request(app).get('/ping').expect(200);
    expect(ping.headers['causeway-session']).toBeUndefined();
    expect(ping.headers['set-cookie']).toBeUndefined();
  });

  it('per-route level override', async () => {
    const { app } = buildApp(createApp, db);
    db.write('d', 'v');
    db.catchUp();
    const response = await request(app).get('/strong/items/d').expect(200);
    expect(response.body).toMatchObject({ target: 'leader', reason: 'strong' });
    expect((await request(app).get('/items/d').expect(200)).body.target).toBe('replica');
  });

  it('adds the causeway-route debug header when asked', async () => {
    const { app } = buildApp(createApp, db, { routeHeader: true });
    const token = tokenOf(await request(app).post('/items/e').send({ value: 'v' }));
    const response = await request(app).get('/items/e').set('causeway-session', token).expect(200);
    expect(response.headers['causeway-route']).toBe(
      'leader;node=leader;reason=write-floor-not-replicated;level=read-your-writes',
    );
    expect(
      (await request(buildApp(createApp, db).app).get('/items/e')).headers['causeway-route'],
    ).toBeUndefined();
  });

  it('records route events on the request span and counts routed reads', async () => {
    const { app } = buildApp(createApp, db);
    const before = await otel.counter('causeway.route.reads', {
      'causeway.reason': 'write-floor-not-replicated',
    });
    const token = tokenOf(await request(app).post('/items/f').send({ value: 'v' }));
    otel.spans.reset();
    await request(app).get('/items/f').set('causeway-session', token).expect(200);
    const span = otel.spans.getFinishedSpans().find((s) => s.name === 'request');
    expect(span?.events.find((e) => e.name === 'causeway.route')?.attributes).toMatchObject({
      'causeway.target': 'leader',
      'causeway.reason': 'write-floor-not-replicated',
      'causeway.level': 'read-your-writes',
    });
    expect(
      await otel.counter('causeway.route.reads', {
        'causeway.reason': 'write-floor-not-replicated',
      }),
    ).toBe(before + 1);
  });

  it('an untrusted token starts a fresh session, counts it and clears the cookie', async () => {
    const { app } = buildApp(createApp, db);
    const before = await otel.counter('causeway.session.invalid_tokens', {
      'causeway.reason': 'bad-signature',
    });
    const other = consistency({ secret: 'another-secret-of-at-least-32-chars' });
    const forged = other.issue({
      id: 'x',
      writeFloor: { stream: db.stream, epoch: 1, lsn: 1000n },
    });
    const response = await request(app)
      .get('/ping')
      .set('cookie', `causeway-session=${forged}`)
      .expect(200);
    expect(cookieOf(response)).toMatch(/^causeway-session=; Max-Age=0/);
    expect(
      await otel.counter('causeway.session.invalid_tokens', { 'causeway.reason': 'bad-signature' }),
    ).toBe(before + 1);
    // The forged floor is not trusted: reads are not pinned to the leader by it.
    db.write('g', 'v');
    db.catchUp();
    const read = await request(app).get('/items/g').set('causeway-session', forged).expect(200);
    expect(read.body.target).toBe('replica');
  });

  it("onInvalidToken: 'reject' answers 400 INVALID_SESSION_TOKEN", async () => {
    const { app } = buildApp(createApp, db, { onInvalidToken: 'reject' });
    const response = await request(app).get('/ping').set('causeway-session', 'AAAA').expect(400);
    expect(response.body).toMatchObject({
      error: { code: 'INVALID_SESSION_TOKEN', reason: 'malformed' },
    });
  });

  it('a 100 KB token header never crashes the server', async () => {
    const huge = 'A'.repeat(100 * 1024);
    const { app } = buildApp(createApp, db, { onInvalidToken: 'reject' });
    // Node's own 16 KB header limit answers first on a default server...
    const status = await request(app)
      .get('/ping')
      .set('causeway-session', huge)
      .then((r) => r.status)
      .catch(() => 431);
    expect(status).toBe(431);
    // ...and with a larger limit the middleware refuses it unread.
    const server = createServer({ maxHeaderSize: 256 * 1024 }, app);
    const response = await request(server).get('/ping').set('causeway-session', huge).expect(400);
    expect(response.body.error.reason).toBe('oversized');
    const lenient = createServer({ maxHeaderSize: 256 * 1024 }, buildApp(createApp, db).app);
    await request(lenient).get('/ping').set('causeway-session', huge).expect(200);
  });

  it('passes errors to next and still remembers the writes made before them', async () => {
    const { app } = buildApp(createApp, db);
    if (createApp === express4) {
      // Express 4 does not catch rejected handlers; the error path is tested on the read route.
      const written = await request(app).post('/items/h').send({ value: 'v' });
      const router = buildApp(createApp, db, { onNoCaughtUp: 'error' }).app;
      const response = await request(router)
        .get('/items/h')
        .set('causeway-session', tokenOf(written));
      expect(response.status).toBe(503);
      expect(response.body.code).toBe('NO_REPLICA_CAUGHT_UP');
      return;
    }
    const failed = await request(app).post('/fail-after-write/i').expect(400);
    expect(failed.body.code).toBe('INVALID_INPUT');
    const token = tokenOf(failed);
    expect(token).toBeDefined();
    const read = await request(app).get('/items/i').set('causeway-session', token).expect(200);
    expect(read.body).toMatchObject({ value: 'x', target: 'leader' });
  });

  it('c.level() without consistency() before it passes a CONFIG error to next', async () => {
    const app = createApp();
    const c = consistency({ secret: SECRET });
    app.get('/x', c.level('strong'), (_req: Request, res: Response) => {
      res.json({});
    });
    app.use((error: CausewayError, _req: Request, res: Response, _next: NextFunction) => {
      res.status(500).json({ code: error.code });
    });
    expect((await request(app).get('/x').expect(500)).body.code).toBe('CONFIG');
  });

  it('a session store carries read-your-writes to a cookie-less second device', async () => {
    const store = new MemorySessionStore();
    const { app } = buildApp(createApp, db, {
      store,
      userKey: (req) => req.headers['x-user'] as string | undefined,
    });
    await request(app).post('/items/j').set('x-user', 'u1').send({ value: 'v' }).expect(200);
    const phone = await request(app).get('/items/j').set('x-user', 'u1').expect(200);
    expect(phone.body).toMatchObject({ value: 'v', target: 'leader' });
    const stranger = await request(app).get('/items/j').set('x-user', 'u2').expect(200);
    expect(stranger.body.target).toBe('replica');
    await store.close();
  });

  it('a failing session store fails safe: reads go to the leader, and it is recorded', async () => {
    const broken: SessionStore = {
      get: () => Promise.reject(new Error('connection refused')),
      set: () => Promise.reject(new Error('connection refused')),
      close: async () => {},
    };
    const { app } = buildApp(createApp, db, { store: broken, userKey: () => 'u1' });
    db.write('k', 'v');
    db.catchUp();
    const before = await otel.counter('causeway.session.store_failures');
    otel.spans.reset();
    const response = await request(app).get('/items/k').expect(200);
    expect(response.body).toMatchObject({
      target: 'leader',
      reason: 'floors-uncertain',
      value: 'v',
    });
    expect(await otel.counter('causeway.session.store_failures')).toBeGreaterThan(before);
    const span = otel.spans.getFinishedSpans().find((s) => s.name === 'request');
    expect(span?.events.map((e) => e.name)).toContain('causeway.session.store_failure');
  });
});

describe('the handler as direct API', () => {
  it('run() issues a token that a later run() reads its writes with', async () => {
    const db = new MemoryReplicaSet<string>({ replicas: [{ delayMs: Number.POSITIVE_INFINITY }] });
    const c = consistency({ secret: SECRET, replicaSet: db });
    const first = await c.run(undefined, (session) => {
      session.noteWrite(db.write('k', 'v'));
      return 'written';
    });
    expect(first.result).toBe('written');
    expect(first.token).toBeDefined();
    const second = await c.run(first.token, (session) => c.router!.route(session));
    expect(second.result).toMatchObject({ target: 'leader', reason: 'write-floor-not-replicated' });
    expect(second.token).toBe(first.token);
    const state: SessionState = c.verify(first.token!);
    expect(state.writeFloor?.lsn).toBe(1n);
    await expect(
      consistency({ secret: SECRET, onInvalidToken: 'reject' }).run('garbage', () => 1),
    ).rejects.toMatchObject({ code: 'INVALID_SESSION_TOKEN' });
    await db.close();
  });

  it('carries a request session to a queued job and restores it in the worker', async () => {
    const c = consistency({ secret: SECRET });
    const floor = { stream: 's', epoch: 1, lsn: 42n };
    const { result: job } = await c.run(undefined, (session) => {
      session.noteWrite(floor);
      return { userId: 7, causewaySession: c.sessionForJob() };
    });
    c.withJobSession(job, (session) => {
      expect(currentSession()).toBe(session);
      expect(session.writeFloor).toEqual(floor);
    });
  });

  it('rejects bad options with CONFIG', () => {
    for (const bad of [
      {},
      { secret: 'short' },
      { secret: SECRET, onInvalidToken: 'ignore' },
      { secret: SECRET, level: 'fresh' },
      { secret: SECRET, store: {} as SessionStore }, // a store needs userKey
      { secret: SECRET, cookieDomain: 'a;b' },
      // router options belong on a router passed in, not silently ignored
      {
        secret: SECRET,
        router: new Router({ replicaSet: new MemoryReplicaSet() }),
        onNoCaughtUp: 'wait',
      },
    ]) {
      expect(() => consistency(bad as ConsistencyOptions)).toThrow(
        expect.objectContaining({ code: 'CONFIG' }),
      );
    }
  });
});
