import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { Redis } from 'ioredis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryReplicaSet } from '../../../adapters/memory/replica-set.js';
import { RedisSessionStore } from '../../../adapters/redis/session-store.js';
import { consistency, consistencyOf } from '../../../src/express.js';
import type { Position } from '../../../src/session/position.js';
import { type RedisServer, startRedis } from '../../harness/cluster.js';
import { testEnv } from '../../harness/env.js';
import { installTelemetry } from '../../support/otel.js';

const SECRET = 'test-secret-of-at-least-32-chars!';
// The stores' call bound in these tests. The default (100 ms) is right for a service, but a CI
// machine running every suite at once can stall a healthy Redis call that long: the tests below
// are about what the store and the middleware do, and a stopped Redis fails well within it.
const SLOW_MACHINE_MS = 2000;
const prefix = `causeway:test:session:${randomUUID()}:`;
const at = (lsn: bigint, epoch = 1): Position => ({ stream: '7301234567890123456', epoch, lsn });

const otel = installTelemetry();
let redis: Redis;

beforeAll(() => {
  redis = new Redis(testEnv().redisUrl);
});
afterAll(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
  otel.stop();
});

describe('RedisSessionStore (shared Redis)', () => {
  it('round-trips state, including 64-bit LSNs', async () => {
    const store = new RedisSessionStore({ redis, keyPrefix: prefix, timeoutMs: SLOW_MACHINE_MS });
    expect(await store.get('nobody')).toBeUndefined();
    const big = (1n << 64n) - 2n;
    await store.set('u1', { id: 'a', writeFloor: at(big), readFloor: at(big + 1n) });
    expect(await store.get('u1')).toEqual({
      id: 'a',
      writeFloor: at(big),
      readFloor: at(big + 1n),
    });
    await store.set('u1b', { id: 'b' });
    expect(await store.get('u1b')).toEqual({ id: 'b' });
  });

  it('merges forward only: an older floor never overwrites a newer one', async () => {
    const store = new RedisSessionStore({ redis, keyPrefix: prefix, timeoutMs: SLOW_MACHINE_MS });
    await store.set('u2', { id: 'first', writeFloor: at(0x100n), readFloor: at(0x50n) });
    await store.set('u2', { id: 'second', writeFloor: at(0xffn), readFloor: at(0x1000n) });
    expect(await store.get('u2')).toEqual({
      id: 'first',
      writeFloor: at(0x100n),
      readFloor: at(0x1000n),
    });
    // An older epoch is ignored, a newer one replaces both floors.
    await store.set('u2', { id: 'x', writeFloor: at(0xfffffn, 0) });
    expect((await store.get('u2'))?.writeFloor).toEqual(at(0x100n));
    await store.set('u2', { id: 'x', writeFloor: at(0x1n, 2) });
    expect(await store.get('u2')).toEqual({ id: 'first', writeFloor: at(0x1n, 2) });
  });

  it('keeps the floor of concurrent writers (no lost update)', async () => {
    const store = new RedisSessionStore({ redis, keyPrefix: prefix, timeoutMs: SLOW_MACHINE_MS });
    const lsns = Array.from({ length: 50 }, (_, i) => (i * 7919) % 1000);
    await Promise.all(
      lsns.map((lsn) => store.set('u3', { id: `d${lsn}`, writeFloor: at(BigInt(lsn)) })),
    );
    expect((await store.get('u3'))?.writeFloor).toEqual(at(BigInt(Math.max(...lsns))));
  });

  it('expires a key ttlMs after its last write', async () => {
    const store = new RedisSessionStore({
      redis,
      keyPrefix: prefix,
      timeoutMs: SLOW_MACHINE_MS,
      ttlMs: 30_000,
    });
    await store.set('u4', { id: 'a' });
    const ttl = await redis.pttl(`${prefix}u4`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(30_000);
  });

  it('rejects bad options with CONFIG', () => {
    expect(() => new RedisSessionStore({} as never)).toThrow(
      expect.objectContaining({ code: 'CONFIG' }),
    );
    expect(() => new RedisSessionStore({ redis, ttlMs: 0 })).toThrow(
      expect.objectContaining({ code: 'CONFIG' }),
    );
  });
});

describe('the middleware over a Redis that stops mid-test', () => {
  let server: RedisServer;
  let client: Redis;
  let db: MemoryReplicaSet<string>;

  beforeAll(async () => {
    server = await startRedis({ name: 'session-store' });
    client = new Redis(server.url, { maxRetriesPerRequest: 1 });
    client.on('error', () => {}); // connection errors are expected while it is stopped
    db = new MemoryReplicaSet<string>({ replicas: [{ delayMs: Number.POSITIVE_INFINITY }] });
  });
  afterAll(async () => {
    client.disconnect();
    await db.close();
    await server.stop();
  });

  function app() {
    const store = new RedisSessionStore({ redis: client, timeoutMs: SLOW_MACHINE_MS });
    const server = express();
    server.use((_req: Request, res: Response, next: NextFunction) => {
      otel.tracer.startActiveSpan('request', (span) => {
        res.on('finish', () => span.end());
        next();
      });
    });
    server.use(
      consistency({
        secret: SECRET,
        replicaSet: db,
        store,
        userKey: (req) => req.headers['x-user'] as string,
      }),
    );
    server.post('/items/:key', async (req: Request, res: Response) => {
      await consistencyOf(req).write(db.write(String(req.params['key']), 'v'));
      res.json({});
    });
    server.get('/items/:key', async (req: Request, res: Response) => {
      const decision = await consistencyOf(req).read();
      res.json({
        ...decision,
        value: db.read(decision.node, String(req.params['key'])).value ?? null,
      });
    });
    return server;
  }

  it('reads your writes across devices while Redis is up, and the leader once it is down', async () => {
    const laptop = app();
    await request(laptop).post('/items/a').set('x-user', 'alice').expect(200);
    // The phone has no cookie: the floor comes from Redis. The middleware merges it there as
    // the response goes out, without holding the response for it: wait until it has landed.
    const kept = new RedisSessionStore({ redis: client, timeoutMs: SLOW_MACHINE_MS });
    for (let i = 0; (await kept.get('alice'))?.writeFloor === undefined; i++) {
      if (i === 200) throw new Error('the write floor never reached Redis');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const phone = await request(laptop).get('/items/a').set('x-user', 'alice').expect(200);
    expect(phone.body).toMatchObject({
      target: 'leader',
      reason: 'write-floor-not-replicated',
      value: 'v',
    });
    db.catchUp();
    expect((await request(laptop).get('/items/a').set('x-user', 'alice')).body.target).toBe(
      'replica',
    );

    await server.stop();
    const before = await otel.counter('causeway.session.store_failures');
    otel.spans.reset();
    const down = await request(laptop).get('/items/a').set('x-user', 'alice').expect(200);
    expect(down.body).toMatchObject({ target: 'leader', reason: 'floors-uncertain', value: 'v' });
    expect(await otel.counter('causeway.session.store_failures')).toBeGreaterThan(before);
    const span = otel.spans.getFinishedSpans().find((s) => s.name === 'request');
    expect(span?.events.map((e) => e.name)).toContain('causeway.session.store_failure');

    // Once the client has reconnected, replicas serve reads again.
    await server.start();
    let target = '';
    for (let i = 0; i < 150 && target !== 'replica'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      target = (await request(laptop).get('/items/a').set('x-user', 'alice')).body.target;
    }
    expect(target).toBe('replica');
  });
});
