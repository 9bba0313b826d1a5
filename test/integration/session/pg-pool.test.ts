import { createRequire } from 'node:module';
import express, { type Request, type Response } from 'express';
import pg from 'pg';
import request from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { PgReplicaSet } from '../../../adapters/pg/replica-set.js';
import { consistency } from '../../../src/express.js';
import { SessionContext, withSession } from '../../../src/session/context.js';
import { comparePositions, hasReached } from '../../../src/session/position.js';
import { testEnv } from '../../harness/env.js';
import { installTelemetry } from '../../support/otel.js';
import { beforeLaggingApplies, caughtUp, routedPool, tableForFile } from './routed-pool-support.js';

const env = testEnv();
const otel = installTelemetry();
// Every replica has the table before a test reads it there.
const {
  table: TABLE,
  direct,
  newId,
} = tableForFile('route_items', {
  replica: env.replicaUrl,
  lagging: env.laggingReplicaUrl,
});
const SECRET = 'pg-routing-test-secret-32-chars-long!';
// The `express4` alias (Express 4) ships no types; the part used here is the same as Express 5's.
const express4 = createRequire(import.meta.url)('express4') as typeof express;

afterAll(() => otel.stop());

describe('read-your-writes through the Express middleware', () => {
  it('without Causeway a read on the lagging replica right after a write is stale', async () => {
    const lagging = new pg.Client({ connectionString: env.laggingReplicaUrl });
    await lagging.connect();
    try {
      await beforeLaggingApplies(async () => {
        const id = newId();
        await direct.query(`INSERT INTO ${TABLE} (id, v) VALUES ($1, 'fresh')`, [id]);
        const read = await lagging.query(`SELECT v FROM ${TABLE} WHERE id = $1`, [id]);
        expect(read.rows).toEqual([]); // the anomaly: our own write is not there
      });
    } finally {
      await lagging.end();
    }
  });

  it.each([
    ['Express 5', express],
    ['Express 4', express4],
  ])(
    'with the middleware (%s) and the routed pool the same sequence returns the fresh row',
    async (_name, createApp) => {
      const { pool, events } = routedPool({ lagging: env.laggingReplicaUrl });
      await pool.replicaSet.refresh();
      const app = createApp();
      app.use(consistency({ secret: SECRET, router: pool.router }));
      app.post('/items/:id', async (req: Request, res: Response) => {
        await pool.query(`INSERT INTO ${TABLE} (id, v) VALUES ($1, 'fresh')`, [
          Number(req.params['id']),
        ]);
        res.json({ ok: true });
      });
      app.get('/items/:id', async (req: Request, res: Response) => {
        const read = await pool.query(`SELECT v FROM ${TABLE} WHERE id = $1`, [
          Number(req.params['id']),
        ]);
        res.json({ v: read.rows[0]?.v ?? null });
      });

      const { id, token, first } = await beforeLaggingApplies(async () => {
        const id = newId();
        const written = await request(app).post(`/items/${id}`).expect(200);
        const token = written.headers['causeway-session'] as string;
        expect(token).toEqual(expect.any(String));
        expect(events.at(-1)).toMatchObject({ target: 'leader', reason: 'not-read-only' });

        // At once: the lagging replica has not applied the write, so the read goes to the leader.
        const first = await request(app)
          .get(`/items/${id}`)
          .set('causeway-session', token)
          .expect(200);
        expect(first.body).toEqual({ v: 'fresh' });
        expect(events.at(-1)).toMatchObject({
          target: 'leader',
          reason: 'write-floor-not-replicated',
        });
        return { id, token, first };
      });

      // As soon as the replica has caught up, reads go there again, and still see the row. The
      // floor to reach is the write and also the leader read since (which saw the leader's state,
      // so a replica behind it could make reads go backwards).
      const latest = (first.headers['causeway-session'] as string | undefined) ?? token;
      const state = consistency({ secret: SECRET }).verify(latest);
      expect(comparePositions(state.readFloor!, state.writeFloor!)).not.toBe('before');
      await caughtUp(pool, 'lagging', new SessionContext(state).floorFor('read-your-writes'));
      const second = await request(app)
        .get(`/items/${id}`)
        .set('causeway-session', latest)
        .expect(200);
      expect(second.body).toEqual({ v: 'fresh' });
      expect(events.at(-1)).toMatchObject({ target: 'replica', node: 'lagging' });
    },
  );
});

describe('a queued job carries the session to its worker', () => {
  it("the worker reads the request's write on the leader while the replica lags", async () => {
    const { pool, events } = routedPool({ lagging: env.laggingReplicaUrl });
    await pool.replicaSet.refresh();
    const c = consistency({ secret: SECRET, router: pool.router });
    const queue: { id: number; causewaySession: string | undefined }[] = [];
    const app = express();
    app.use(c);
    app.post('/items/:id', async (req: Request, res: Response) => {
      const id = Number(req.params['id']);
      await pool.query(`INSERT INTO ${TABLE} (id, v) VALUES ($1, 'queued')`, [id]);
      queue.push({ id, causewaySession: c.sessionForJob() });
      res.json({});
    });

    await beforeLaggingApplies(async () => {
      queue.length = 0;
      await request(app).post(`/items/${newId()}`).expect(200);
      const job = JSON.parse(JSON.stringify(queue[0])) as (typeof queue)[number];
      expect(job.causewaySession).toEqual(expect.any(String));
      // The worker (another process, as far as the session is concerned).
      const read = await c.withJobSession(job, () =>
        pool.query(`SELECT v FROM ${TABLE} WHERE id = $1`, [job.id]),
      );
      expect(read.rows).toEqual([{ v: 'queued' }]);
      expect(events.at(-1)).toMatchObject({
        target: 'leader',
        reason: 'write-floor-not-replicated',
      });
      // Without the token the worker's session has no floor: the replica, which lacks the row.
      const bare = await withSession({ id: 'bare-worker' }, () =>
        pool.query(`SELECT v FROM ${TABLE} WHERE id = $1`, [job.id]),
      );
      expect(bare.rows).toEqual([]);
    });
  });
});

describe('PgReplicaSet positions', () => {
  it('a background check answered late never moves a position learnt since back', async () => {
    const replica = new pg.Pool({ connectionString: env.replicaUrl, max: 2 });
    // The real replica, whose check answers (the multi-statement BEGIN; ...) can be held back.
    let hold: Promise<void> | undefined;
    let answered: (() => void) | undefined;
    const held = {
      query: async (text: string, values?: unknown[]) => {
        const result = await replica.query(text, values);
        if (hold !== undefined && text.startsWith('BEGIN;')) {
          answered?.();
          await hold;
        }
        return result;
      },
      connect: () => replica.connect(),
    };
    const set = new PgReplicaSet({
      primary: env.primaryUrl,
      replicas: [{ name: 'replica', pool: held }],
      pollIntervalMs: 0,
      checkTimeoutMs: 2000,
    });
    try {
      await set.refresh();
      let release!: () => void;
      hold = new Promise((resolve) => {
        release = resolve;
      });
      const checkAnswered = new Promise<void>((resolve) => {
        answered = resolve;
      });
      const check = set.refresh();
      await checkAnswered; // the replica's position as of now, not yet delivered
      await direct.query(`INSERT INTO ${TABLE} (id, v) VALUES ($1, 'late-check')`, [newId()]);
      const written = (await set.writePosition())!;
      expect(await set.waitFor('replica', written, 15_000)).toBe(true);
      release();
      await check;
      expect(hasReached(set.snapshot().replicas[0]!.position, written)).toBe(true);
    } finally {
      await set.close();
      await replica.end();
    }
  });
});

describe('onNoCaughtUp', () => {
  it("'wait' waits for the lagging replica to apply the write, then reads there", async () => {
    const { pool, events } = routedPool(
      { lagging: env.laggingReplicaUrl },
      { router: { onNoCaughtUp: 'wait', waitTimeoutMs: 15_000 } },
    );
    await pool.replicaSet.refresh();
    // A run whose read was routed within the delay must have waited (and then ends after it,
    // so a failure is retried only when the write-to-route gap alone was late).
    await beforeLaggingApplies(async () => {
      const id = newId();
      const started = performance.now();
      const read = await withSession(new SessionContext({ id: 'waiter' }), async () => {
        await pool.query(`INSERT INTO ${TABLE} (id, v) VALUES ($1, 'waited')`, [id]);
        return pool.query(`SELECT v FROM ${TABLE} WHERE id = $1`, [id]);
      });
      expect(read.rows).toEqual([{ v: 'waited' }]);
      const last = events.at(-1)!;
      const routedAfter = performance.now() - started - (last.waitedMs ?? 0);
      if (routedAfter < env.replicaDelayMs) {
        expect(last).toMatchObject({ target: 'replica', node: 'lagging', reason: 'waited' });
        expect(last.waitedMs).toBeGreaterThan(0);
      } else {
        throw new Error(`routed ${Math.round(routedAfter)} ms after the write: try again`);
      }
    });
  });

  it("'error' rejects with NO_REPLICA_CAUGHT_UP, in both calling conventions", async () => {
    const { pool } = routedPool(
      { lagging: env.laggingReplicaUrl },
      { router: { onNoCaughtUp: 'error' } },
    );
    await pool.replicaSet.refresh();
    await beforeLaggingApplies(() =>
      withSession(new SessionContext({ id: 'impatient' }), async () => {
        await pool.query(`INSERT INTO ${TABLE} (id, v) VALUES ($1, 'e')`, [newId()]);
        await expect(pool.query('SELECT 1')).rejects.toMatchObject({
          code: 'NO_REPLICA_CAUGHT_UP',
        });
        const viaCallback = await new Promise<unknown>((resolve) => {
          pool.query('SELECT 1', (error) => resolve(error));
        });
        expect(viaCallback).toMatchObject({ code: 'NO_REPLICA_CAUGHT_UP' });
      }),
    );
  });
});
