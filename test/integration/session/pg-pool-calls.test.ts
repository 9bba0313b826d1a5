import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { SessionContext, withSession } from '../../../src/session/context.js';
import { comparePositions } from '../../../src/session/position.js';
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
} = tableForFile('route_calls', {
  replica: env.replicaUrl,
  lagging: env.laggingReplicaUrl,
});

afterAll(() => otel.stop());

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
    const { pool } = routedPool({ replica: env.replicaUrl }, { router: { telemetry: 'span' } });
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
