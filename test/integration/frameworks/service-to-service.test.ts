// Two services on the real cluster, each behind its own consistency() and its own routed pool
// over the primary and the replica 1.5 s behind. Service A writes, then calls service B: with
// the session forwarded, B reads at least what A wrote, and A reads what B wrote in the call.
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { context, defaultTextMapGetter, defaultTextMapSetter } from '@opentelemetry/api';
import express, { type Request, type Response } from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReplicatedPool, type ReplicatedPool } from '../../../adapters/pg/replicated-pool.js';
import { consistency as fastifyConsistency } from '../../../src/frameworks/fastify.js';
import {
  forwardingFetch,
  SessionPropagator,
  sessionFromContext,
  withFloor,
} from '../../../src/propagation/index.js';
import { currentSession, withSession } from '../../../src/session/context.js';
import { consistency } from '../../../src/session/express.js';
import { testEnv } from '../../harness/env.js';

const env = testEnv();
const SECRET = 'two-services-share-this-32-char-secret';
const TABLE = `s2s_${randomBytes(4).toString('hex')}`;

let direct: pg.Pool;
const pools: ReplicatedPool[] = [];
let serviceB: FastifyInstance;
let serviceBUrl: string;
let serviceA: Server;
let serviceAUrl: string;

function routedPool(): ReplicatedPool {
  const pool = createReplicatedPool({
    primary: { config: { connectionString: env.primaryUrl, max: 4 } },
    replicas: [{ name: 'lagging', config: { connectionString: env.laggingReplicaUrl, max: 4 } }],
    replicaSetOptions: { checkTimeoutMs: 2000, connectTimeoutMs: 10_000 },
  });
  pool.on('error', () => {});
  pools.push(pool);
  return pool;
}

beforeAll(async () => {
  direct = new pg.Pool({ connectionString: env.primaryUrl, max: 2 });
  await direct.query(`CREATE TABLE ${TABLE} (id text PRIMARY KEY, acked boolean NOT NULL)`);
  const poolA = routedPool();
  const poolB = routedPool();
  const created = await poolB.replicaSet.writePosition();
  expect(await poolB.replicaSet.waitFor('lagging', created!, 15_000)).toBe(true);

  // Service B (Fastify): reads a row, or acknowledges it (a write).
  serviceB = Fastify();
  await serviceB.register(fastifyConsistency({ secret: SECRET, router: poolB.router }));
  serviceB.get<{ Params: { id: string } }>('/rows/:id', async (req) => {
    const { rows } = await poolB.query(`SELECT acked FROM ${TABLE} WHERE id = $1`, [req.params.id]);
    return { found: rows.length === 1 };
  });
  serviceB.post<{ Params: { id: string } }>('/rows/:id/ack', async (req) => {
    await poolB.query(`UPDATE ${TABLE} SET acked = true WHERE id = $1`, [req.params.id]);
    return { ok: true };
  });
  await serviceB.listen({ port: 0, host: '127.0.0.1' });
  serviceBUrl = `http://127.0.0.1:${(serviceB.server.address() as AddressInfo).port}`;

  // Service A (Express): writes a row, then asks B about it, forwarding its session or not.
  const app = express();
  const c = consistency({ secret: SECRET, router: poolA.router });
  app.use(c);
  const forward = forwardingFetch(c);
  app.post('/rows/:id', async (req: Request, res: Response) => {
    const id = String(req.params['id']);
    await poolA.query(`INSERT INTO ${TABLE} VALUES ($1, false)`, [id]);
    const call = req.query['forward'] === 'no' ? fetch : forward;
    const seenByB = await (await call(`${serviceBUrl}/rows/${id}`)).json();
    await call(`${serviceBUrl}/rows/${id}/ack`, { method: 'POST' });
    const { rows } = await poolA.query(`SELECT acked FROM ${TABLE} WHERE id = $1`, [id]);
    res.json({ seenByB, ackSeenByA: rows[0]?.acked === true });
  });
  serviceA = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => serviceA.once('listening', resolve));
  serviceAUrl = `http://127.0.0.1:${(serviceA.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => serviceA?.close(resolve));
  await serviceB?.close();
  await Promise.all(pools.map((pool) => pool.end()));
  await direct?.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await direct?.end();
});

/** Runs `attempt` until one run ends within the replica's delay (else it proves nothing). */
async function onTime<T>(attempt: () => Promise<T>): Promise<{ result: T; onTime: boolean }> {
  for (let run = 1; ; run++) {
    const started = performance.now();
    const result = await attempt();
    const inTime = performance.now() - started < env.replicaDelayMs;
    if (inTime || run === 5) return { result, onTime: inTime };
  }
}

describe('service to service', () => {
  it('B reads what A wrote, and A what B wrote, when A forwards its session', async () => {
    const { result, onTime: inTime } = await onTime(async () => {
      const id = randomBytes(6).toString('hex');
      return (await fetch(`${serviceAUrl}/rows/${id}`, { method: 'POST' })).json();
    });
    expect(inTime).toBe(true);
    expect(result).toEqual({ seenByB: { found: true }, ackSeenByA: true });
  });

  it('without forwarding, B misses what A just wrote', async () => {
    const { result, onTime: inTime } = await onTime(async () => {
      const id = randomBytes(6).toString('hex');
      return (await fetch(`${serviceAUrl}/rows/${id}?forward=no`, { method: 'POST' })).json();
    });
    if (!inTime) return; // a loaded machine: the replica may have caught up
    expect(result).toMatchObject({ seenByB: { found: false } });
  });

  it('withFloor: a consumer of a message carrying the write position reads the write', async () => {
    const pool = pools[1]!;
    const { result, onTime: inTime } = await onTime(async () => {
      const id = randomBytes(6).toString('hex');
      // The producer: writes in a session and puts the position in the message (lsn as text).
      const message = await withSession(undefined, async () => {
        await pool.query(`INSERT INTO ${TABLE} VALUES ($1, false)`, [id]);
        const floor = currentSession()!.writeFloor!;
        return JSON.stringify({ id, position: { ...floor, lsn: floor.lsn.toString() } });
      });
      const { position } = JSON.parse(message) as {
        position: { stream: string; epoch: number; lsn: string };
      };
      const read = () => pool.query(`SELECT 1 FROM ${TABLE} WHERE id = $1`, [id]);
      const withoutFloor = await withSession(undefined, read);
      const withIt = await withFloor(position, read);
      return { without: withoutFloor.rows.length, with: withIt.rows.length };
    });
    expect(result.with).toBe(1);
    if (inTime) expect(result.without).toBe(0);
  });

  it('SessionPropagator: injects the current session, extracts it, ignores forged tokens', async () => {
    const c = consistency({ secret: SECRET });
    const propagator = new SessionPropagator(c);
    expect(propagator.fields()).toEqual(['causeway-session']);
    const carrier: Record<string, string> = {};
    const floor = { stream: 's', epoch: 1, lsn: 42n };
    await withSession(undefined, (session) => {
      session.noteWrite(floor);
      propagator.inject(context.active(), carrier, defaultTextMapSetter);
    });
    const extracted = propagator.extract(context.active(), carrier, defaultTextMapGetter);
    expect(sessionFromContext(extracted)?.writeFloor).toEqual(floor);
    const forged = propagator.extract(
      context.active(),
      { 'causeway-session': `${carrier['causeway-session']}x` },
      defaultTextMapGetter,
    );
    expect(sessionFromContext(forged)).toBeUndefined();
    const other = new SessionPropagator(
      consistency({ secret: 'another-service-secret-32-characters!' }),
    );
    expect(
      sessionFromContext(other.extract(context.active(), carrier, defaultTextMapGetter)),
    ).toBeUndefined();
    // Outside any session nothing is injected.
    const empty: Record<string, string> = {};
    propagator.inject(context.active(), empty, defaultTextMapSetter);
    expect(empty).toEqual({});
  });
});
