import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { SessionContext, withSession } from '../../../src/session/context.js';
import { testEnv } from '../../harness/env.js';
import { routedPool, tableForFile } from './routed-pool-support.js';

const env = testEnv();
const { table: TABLE, direct } = tableForFile('checkout', { replica: env.replicaUrl });

/** A pool whose primary has one connection, waited for at most 2 s, taken on demand. */
async function onePrimaryConnection() {
  const routed = routedPool(
    { replica: env.replicaUrl },
    { routeCheckedOutReads: 'on-demand' },
    { max: 1, connectionTimeoutMillis: 2000 },
  );
  await routed.pool.ready();
  return routed;
}

describe('clients checked out of the routed pool take the primary only when they need it', () => {
  it('many checked-out clients read from the replica at once with one primary connection', async () => {
    const { pool, events } = await onePrimaryConnection();
    const acquired: unknown[] = [];
    pool.on('acquire', (client) => acquired.push(client));
    await withSession(new SessionContext({ id: 'many-readers' }), async () => {
      const clients = await Promise.all(Array.from({ length: 6 }, () => pool.connect()));
      try {
        const reads = await Promise.all(
          clients.map((client) => client.query(`SELECT count(*)::int AS n FROM ${TABLE}`)),
        );
        expect(reads.map((read) => read.rows[0].n)).toEqual(Array(6).fill(0));
        expect(events.map((event) => event.target)).toEqual(Array(6).fill('replica'));
        expect([pool.totalCount, pool.waitingCount, acquired.length]).toEqual([0, 0, 0]);
      } finally {
        for (const client of clients) client.release();
      }
    });
  });

  it('a checked-out client that writes takes a primary connection then, and keeps its transaction on one backend', async () => {
    const { pool, events } = await onePrimaryConnection();
    const acquired: pg.PoolClient[] = [];
    pool.on('acquire', (client) => acquired.push(client));
    const released = new Promise((resolve) => pool.once('release', resolve));
    await withSession(new SessionContext({ id: 'writer' }), async () => {
      const client = await pool.connect();
      try {
        await client.query(`SELECT count(*) FROM ${TABLE}`);
        expect(events.map((event) => event.target)).toEqual(['replica']);
        expect(pool.totalCount).toBe(0);
        await client.query('BEGIN');
        expect([pool.totalCount, acquired.length]).toEqual([1, 1]);
        const first = await client.query(
          'SELECT pg_backend_pid() AS pid, pg_is_in_recovery() AS standby',
        );
        await client.query(`INSERT INTO ${TABLE} VALUES (1, 'in-transaction')`);
        const seen = await client.query(
          `SELECT v, pg_backend_pid() AS pid FROM ${TABLE} WHERE id = 1`,
        );
        await client.query('COMMIT');
        expect(first.rows[0].standby).toBe(false);
        expect(seen.rows).toEqual([{ v: 'in-transaction', pid: first.rows[0].pid }]);
        expect((client as pg.PoolClient & { processID: number }).processID).toBe(first.rows[0].pid);
        // Once it has run something on the primary, the checkout stays there until released.
        const after = await client.query('SELECT pg_backend_pid() AS pid');
        expect(after.rows[0].pid).toBe(first.rows[0].pid);
        // A second checkout waits for the one primary connection, as pg.Pool would.
        const other = await pool.connect();
        await expect(other.query(`INSERT INTO ${TABLE} VALUES (2, 'x')`)).rejects.toThrow(
          /timeout/i,
        );
        other.release();
      } finally {
        client.release();
      }
    });
    expect(await released).toBeUndefined();
    expect([pool.totalCount, pool.idleCount]).toEqual([1, 1]);
  });

  it('a rolled-back transaction leaves nothing, and the next checkout reads from the replica', async () => {
    const { pool, events } = await onePrimaryConnection();
    await withSession(new SessionContext({ id: 'rollback' }), async () => {
      const client = await pool.connect();
      await client.query('BEGIN');
      await client.query(`INSERT INTO ${TABLE} VALUES (3, 'rolled back')`);
      await client.query('ROLLBACK');
      client.release();
      const next = await pool.connect();
      try {
        events.length = 0;
        await next.query(`SELECT count(*) FROM ${TABLE}`);
        expect(events.map((event) => event.target)).toEqual(['replica']);
      } finally {
        next.release();
      }
    });
    const { rows } = await direct.query(`SELECT count(*)::int AS n FROM ${TABLE} WHERE id = 3`);
    expect(rows[0].n).toBe(0);
  });
});

describe('statements sent on a checked-out client without waiting', () => {
  for (const mode of [true, 'on-demand'] as const) {
    it(`settle in the order sent, as on a pg client (routeCheckedOutReads: ${mode})`, async () => {
      const { pool, events } = routedPool(
        { replica: env.replicaUrl },
        { routeCheckedOutReads: mode },
      );
      await pool.ready();
      await withSession(new SessionContext({ id: `order-${mode}` }), async () => {
        const client = await pool.connect();
        try {
          const settled: string[] = [];
          const slow = client
            .query('SELECT count(*) FROM generate_series(1, 2000000)')
            .then(() => settled.push('slow'));
          const quick = client.query('SELECT 1 AS one').then(() => settled.push('quick'));
          await Promise.all([slow, quick]);
          expect(settled).toEqual(['slow', 'quick']);
          expect(events.map((event) => event.target)).toEqual(['replica', 'replica']);
        } finally {
          client.release();
        }
      });
    });
  }
});
