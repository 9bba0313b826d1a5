import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import express, { type Request, type Response } from 'express';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqlClassifier } from '../../../adapters/pg/classify/index.js';
import { PgReplicaSet } from '../../../adapters/pg/replica-set.js';
import {
  createReplicatedPool,
  type PoolRouteEvent,
  type ReplicatedPool,
} from '../../../adapters/pg/replicated-pool.js';
import { consistency } from '../../../src/express.js';
import { SessionContext, withSession } from '../../../src/session/context.js';
import { comparePositions, hasReached, type Position } from '../../../src/session/position.js';
import { testEnv } from '../../harness/env.js';
import { installTelemetry } from '../../support/otel.js';

const env = testEnv();
const otel = installTelemetry();
const TABLE = `route_items_${randomBytes(4).toString('hex')}`;
const SECRET = 'pg-routing-test-secret-32-chars-long!';
// The `express4` alias (Express 4) ships no types; the part used here is the same as Express 5's.
const express4 = createRequire(import.meta.url)('express4') as typeof express;

let direct: pg.Pool;
const pools: ReplicatedPool[] = [];
// One classifier for every pool of the file, its catalog loaded before the first test: a new
// pool's own would send calls and operators to the primary until its catalog has loaded.
const classifier = new SqlClassifier();

/** A routed pool over the primary and the given replicas, recording its route events. */
function routedPool(
  replicas: Record<string, string>,
  extra: Partial<Parameters<typeof createReplicatedPool>[0]> = {},
) {
  const pool = createReplicatedPool({
    primary: { config: { connectionString: env.primaryUrl, max: 4 } },
    replicas: Object.entries(replicas).map(([name, url]) => ({
      name,
      config: { connectionString: url, max: 4 },
    })),
    // A check slower than the default 100 ms would mark a replica down for a second; on a
    // loaded CI machine that happens, and tests asserting a replica target would flake.
    replicaSetOptions: { checkTimeoutMs: 2000, connectTimeoutMs: 10_000 },
    classifier,
    ...extra,
  });
  pool.on('error', () => {});
  const events: PoolRouteEvent[] = [];
  pool.on('route', (event: PoolRouteEvent) => events.push(event));
  pools.push(pool);
  return { pool, events };
}

/** Waits until `node` has applied `position` (the lagging replica needs about its delay). */
async function caughtUp(pool: ReplicatedPool, node: string, position: Position | undefined) {
  expect(position).toBeDefined();
  expect(await pool.replicaSet.waitFor(node, position!, 15_000)).toBe(true);
}

/**
 * Runs `attempt` (a write, then what must hold while the lagging replica has not applied it)
 * until a run ends within the replica's apply delay of its start: such a run proves the replica
 * could not have applied the write (the delay counts from the commit, after the start). A loaded
 * machine can stall a run past the delay, after which the replica may have caught up: a failure
 * in such a late run says nothing, so it is retried (at most 5 runs); a failure on time is real.
 */
async function beforeLaggingApplies<T>(attempt: () => Promise<T>): Promise<T> {
  for (let run = 1; ; run++) {
    const started = performance.now();
    try {
      return await attempt();
    } catch (error) {
      if (performance.now() - started < env.replicaDelayMs || run === 5) throw error;
    }
  }
}

beforeAll(async () => {
  direct = new pg.Pool({ connectionString: env.primaryUrl, max: 2 });
  classifier.useCatalog((sql) => direct.query(sql));
  await classifier.ready();
  await direct.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v text NOT NULL)`);
  // Every replica must have the table before a test reads it there.
  const { pool } = routedPool({ replica: env.replicaUrl, lagging: env.laggingReplicaUrl });
  const created = await pool.replicaSet.writePosition();
  await caughtUp(pool, 'replica', created);
  await caughtUp(pool, 'lagging', created);
});

afterAll(async () => {
  await Promise.all(pools.filter((pool) => !pool.ended).map((pool) => pool.end()));
  await direct.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await direct.end();
  otel.stop();
});

let nextId = 1;
const newId = () => nextId++;

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
      { onNoCaughtUp: 'wait', waitTimeoutMs: 15_000 },
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
    const { pool } = routedPool({ lagging: env.laggingReplicaUrl }, { onNoCaughtUp: 'error' });
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

describe('drop-in pg.Pool', () => {
  it('accepts every query call form and routes reads in a session', async () => {
    const { pool, events } = routedPool({ replica: env.replicaUrl });
    await pool.replicaSet.refresh();
    const id = newId();
    await direct.query(`INSERT INTO ${TABLE} (id, v) VALUES ($1, 'forms')`, [id]);
    // An eventual read promises nothing about a write made outside the session: wait until
    // the replica has the row so the assertions below are about call forms, not lag.
    await caughtUp(pool, 'replica', await pool.replicaSet.writePosition());
    const session = new SessionContext({ id: 'forms' }, 'eventual');
    const sql = `SELECT v FROM ${TABLE} WHERE id = $1`;
    await withSession(session, async () => {
      expect((await pool.query(sql, [id])).rows).toEqual([{ v: 'forms' }]);
      expect((await pool.query({ text: sql, values: [id] })).rows).toEqual([{ v: 'forms' }]);
      expect((await pool.query({ text: sql, rowMode: 'array' }, [id])).rows).toEqual([['forms']]);
      expect((await pool.query({ name: 'route-forms', text: sql, values: [id] })).rows).toEqual([
        { v: 'forms' },
      ]);
      expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      const viaCallback = await new Promise((resolve, reject) => {
        pool.query(sql, [id], (error, result) => (error ? reject(error) : resolve(result.rows)));
      });
      expect(viaCallback).toEqual([{ v: 'forms' }]);
      const textCallback = await new Promise((resolve, reject) => {
        pool.query('SELECT 2 AS two', (error, result) =>
          error ? reject(error) : resolve(result.rows),
        );
      });
      expect(textCallback).toEqual([{ two: 2 }]);
    });
    // The replica was caught up for an eventual read: all seven went there, and the read
    // floor moved to what the replica had applied.
    expect(events.map((e) => e.target)).toEqual(Array(7).fill('replica'));
    expect(session.readFloor).toBeDefined();
    expect(session.writeFloor).toBeUndefined();
    // Errors come back in both conventions.
    await expect(
      withSession(session, () => pool.query('SELECT * FROM route_missing')),
    ).rejects.toThrow(/does not exist/);
  });

  it('outside a session it is a pool on the primary; readOutsideSession moves reads', async () => {
    const { pool, events } = routedPool({ replica: env.replicaUrl });
    await pool.replicaSet.refresh();
    const read = await pool.query('SELECT pg_is_in_recovery() AS standby');
    expect(read.rows).toEqual([{ standby: false }]);
    expect(events.at(-1)).toMatchObject({ target: 'leader', reason: 'outside-session' });

    const eventual = routedPool({ replica: env.replicaUrl }, { readOutsideSession: 'replica' });
    await eventual.pool.replicaSet.refresh();
    await eventual.pool.query('SELECT 1');
    expect(eventual.events.at(-1)).toMatchObject({ target: 'replica', reason: 'no-session' });
  });

  it('writes go to the primary and raise the write floor to a position past the commit', async () => {
    const { pool, events } = routedPool({ replica: env.replicaUrl });
    const session = new SessionContext({ id: 'writer' });
    const id = newId();
    await withSession(session, () =>
      pool.query(`INSERT INTO ${TABLE} (id, v) VALUES ($1, 'w')`, [id]),
    );
    expect(events.at(-1)).toMatchObject({ target: 'leader', reason: 'not-read-only' });
    const floor = session.writeFloor;
    expect(floor).toBeDefined();
    // The primary's flushed WAL (which includes the commit) is not past the floor.
    const flushed = await direct.query('SELECT pg_current_wal_flush_lsn()::text AS lsn');
    expect(floor!.lsn >= lsnOf(flushed.rows[0].lsn) - 1_000_000n).toBe(true);
    // Statements that change nothing (SET, BEGIN) go to the primary without a floor.
    await withSession(session, () => pool.query('SET statement_timeout = 0'));
    expect(session.writeFloor).toBe(floor);
    // A "read" calling nextval() is a write.
    await direct.query(`CREATE SEQUENCE IF NOT EXISTS ${TABLE}_seq`);
    await withSession(session, () => pool.query(`SELECT nextval('${TABLE}_seq')`));
    expect(events.at(-1)).toMatchObject({ target: 'leader', statement: 'calls nextval()' });
    expect(comparePositions(session.writeFloor!, floor!)).toBe('after');
    await direct.query(`DROP SEQUENCE ${TABLE}_seq`);
  });

  it('a checked-out client is the primary, and a transaction raises the floor at COMMIT', async () => {
    const { pool, events } = routedPool({ replica: env.replicaUrl });
    const forwarded: string[] = [];
    for (const event of ['connect', 'acquire', 'release'] as const) {
      pool.on(event, () => forwarded.push(event));
    }
    const session = new SessionContext({ id: 'txn' });
    const id = newId();
    await withSession(session, async () => {
      const client = await pool.connect();
      try {
        expect(pool.totalCount).toBeGreaterThanOrEqual(1);
        // A provably read-only statement, yet on the primary: this client is the primary's.
        const readOnly = await client.query('SHOW transaction_read_only');
        expect(readOnly.rows).toEqual([{ transaction_read_only: 'off' }]);
        await client.query('BEGIN');
        await client.query(`INSERT INTO ${TABLE} (id, v) VALUES ($1, 'txn')`, [id]);
        expect(session.writeFloor).toBeUndefined(); // not committed yet
        await client.query('COMMIT');
        expect(session.writeFloor).toBeDefined(); // raised before COMMIT resolved
      } finally {
        client.release();
      }
      expect(() => client.release()).toThrow(/already been released/);
    });
    expect(events.every((e) => e.target === 'leader' && e.reason === 'checked-out-client')).toBe(
      true,
    );
    expect(forwarded).toEqual(expect.arrayContaining(['connect', 'acquire', 'release']));

    // A rolled-back transaction raises nothing.
    const before = session.writeFloor;
    await withSession(session, async () => {
      const client = await pool.connect();
      await client.query('BEGIN');
      await client.query(`INSERT INTO ${TABLE} (id, v) VALUES ($1, 'gone')`, [newId()]);
      await client.query('ROLLBACK');
      client.release();
    });
    expect(session.writeFloor).toBe(before);

    // The callback form, with `done`, and an autocommit write on the client.
    await withSession(session, async () => {
      await new Promise<void>((resolve, reject) => {
        pool.connect((error, client, done) => {
          if (error || client === undefined) return reject(error);
          client.query(`UPDATE ${TABLE} SET v = 'txn2' WHERE id = $1`, [id]).then(() => {
            done();
            resolve();
          }, reject);
        });
      });
    });
    expect(comparePositions(session.writeFloor!, before!)).toBe('after');
    expect(pool.idleCount).toBeGreaterThanOrEqual(1);
    expect(pool.waitingCount).toBe(0);
  });

  it('retries on the leader when a replica refuses a write it could not see (a view)', async () => {
    const { pool, events } = routedPool({ replica: env.replicaUrl });
    await direct.query(`CREATE SEQUENCE ${TABLE}_vseq`);
    await direct.query(`CREATE VIEW ${TABLE}_next AS SELECT nextval('${TABLE}_vseq') AS n`);
    try {
      await caughtUp(pool, 'replica', await pool.replicaSet.writePosition());
      const session = new SessionContext({ id: 'view' }, 'eventual');
      const result = await withSession(session, () => pool.query(`SELECT n FROM ${TABLE}_next`));
      expect(result.rows).toEqual([{ n: '1' }]);
      expect(events.slice(-2)).toMatchObject([
        { target: 'replica', node: 'replica', statement: 'select' },
        { target: 'leader', reason: 'replica-error' },
      ]);
      // A refused write is no sign of a sick replica: it stays in service.
      expect(pool.replicaSet.snapshot().replicas[0]!.healthy).toBe(true);
    } finally {
      await direct.query(`DROP VIEW ${TABLE}_next`);
      await direct.query(`DROP SEQUENCE ${TABLE}_vseq`);
    }
  });

  it('runs Submittables on the primary', async () => {
    const { pool, events } = routedPool({ replica: env.replicaUrl });
    const result = await withSession(new SessionContext({ id: 's' }), () =>
      pool.query(new pg.Query('SELECT 42 AS n')),
    );
    expect((result as unknown as pg.QueryResult).rows).toEqual([{ n: 42 }]);
    expect(events.at(-1)).toMatchObject({ target: 'leader', reason: 'submittable' });
  });
});

describe('Kysely over the routed pool', () => {
  interface Database {
    [TABLE]: { id: number; v: string };
  }

  it('reads its own writes inside withSession; every statement on the primary by default', async () => {
    const { pool, events } = routedPool({ lagging: env.laggingReplicaUrl });
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    const id = newId();
    const rows = await withSession({ id: 'kysely' }, async () => {
      await db.insertInto(TABLE).values({ id, v: 'k' }).execute();
      return db.selectFrom(TABLE).selectAll().where('id', '=', id).execute();
    });
    expect(rows).toEqual([{ id, v: 'k' }]);
    expect(events.map((e) => [e.target, e.reason])).toEqual([
      ['leader', 'checked-out-client'],
      ['leader', 'checked-out-client'],
    ]);
  });

  it('with routeCheckedOutReads, reads reach a replica once it has the write', async () => {
    const { pool, events } = routedPool(
      { lagging: env.laggingReplicaUrl },
      { routeCheckedOutReads: true },
    );
    await pool.replicaSet.refresh();
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    const { id, session } = await beforeLaggingApplies(async () => {
      const id = newId();
      const session = new SessionContext({ id: 'kysely-routed' });
      await withSession(session, async () => {
        await db.insertInto(TABLE).values({ id, v: 'k2' }).execute();
        const fresh = await db.selectFrom(TABLE).select('v').where('id', '=', id).execute();
        expect(fresh).toEqual([{ v: 'k2' }]);
        expect(events.at(-1)).toMatchObject({
          target: 'leader',
          reason: 'write-floor-not-replicated',
        });
      });
      return { id, session };
    });
    await withSession(session, async () => {
      await caughtUp(pool, 'lagging', session.floorFor('read-your-writes'));
      const later = await db.selectFrom(TABLE).select('v').where('id', '=', id).execute();
      expect(later).toEqual([{ v: 'k2' }]);
      expect(events.at(-1)).toMatchObject({ target: 'replica', node: 'lagging' });
      // A transaction stays on the primary.
      await db.transaction().execute(async (trx) => {
        await trx.selectFrom(TABLE).select('v').where('id', '=', id).execute();
      });
    });
    expect(events.slice(-3).map((e) => e.reason)).toEqual([
      'checked-out-client',
      'checked-out-client',
      'checked-out-client',
    ]);
    await db.destroy();
  });
});

describe('telemetry', () => {
  it('records the route of a pooled read as a causeway.route span', async () => {
    const { pool } = routedPool({ replica: env.replicaUrl }, { telemetry: 'span' });
    await pool.replicaSet.refresh();
    otel.spans.reset();
    await withSession(new SessionContext({ id: 'spans' }, 'eventual'), () =>
      pool.query('SELECT 1'),
    );
    const route = otel.spans.getFinishedSpans().filter((span) => span.name === 'causeway.route');
    expect(route).toHaveLength(1);
    expect(route[0]!.attributes).toMatchObject({
      'causeway.target': 'replica',
      'causeway.node': 'replica',
      'causeway.level': 'eventual',
    });
  });

  it('by default adds a causeway.route event to the active span', async () => {
    const { pool } = routedPool({ replica: env.replicaUrl });
    await pool.replicaSet.refresh();
    otel.spans.reset();
    await otel.tracer.startActiveSpan('request', async (span) => {
      await withSession(new SessionContext({ id: 'events' }, 'eventual'), () =>
        pool.query('SELECT 1'),
      );
      span.end();
    });
    const [request] = otel.spans.getFinishedSpans().filter((span) => span.name === 'request');
    const event = request!.events.find((e) => e.name === 'causeway.route');
    expect(event?.attributes).toMatchObject({ 'causeway.target': 'replica' });
  });
});

function lsnOf(text: string): bigint {
  const [hi, lo] = text.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}
