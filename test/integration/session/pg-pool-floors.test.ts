import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqlClassifier } from '../../../adapters/pg/classify/index.js';
import { SessionContext, withSession } from '../../../src/session/context.js';
import { testEnv } from '../../harness/env.js';
import {
  beforeLaggingApplies,
  caughtUp,
  classifierReady,
  endRoutedPools,
  routedPool,
} from './routed-pool-support.js';

const env = testEnv();
const TABLE = `floors_${randomBytes(4).toString('hex')}`;
let direct: pg.Pool;
let nextId = 1;

beforeAll(async () => {
  await classifierReady();
  direct = new pg.Pool({ connectionString: env.primaryUrl, max: 2 });
  await direct.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v text NOT NULL)`);
  const { pool } = routedPool({ replica: env.replicaUrl, lagging: env.laggingReplicaUrl });
  const created = await pool.replicaSet.writePosition();
  await caughtUp(pool, 'replica', created);
  await caughtUp(pool, 'lagging', created);
});

afterAll(async () => {
  await endRoutedPools();
  await direct.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await direct.end();
});

describe('floors belong to the session running each statement', () => {
  it('a client kept checked out and used by one session after another raises each one’s floor', async () => {
    const { pool } = routedPool({ lagging: env.laggingReplicaUrl });
    await pool.replicaSet.refresh();
    const worker = await pool.connect();
    try {
      await beforeLaggingApplies(async () => {
        const first = new SessionContext({ id: `first-${nextId}` });
        const second = new SessionContext({ id: `second-${nextId}` });
        const [a, b] = [nextId++, nextId++];
        await withSession(first, () =>
          worker.query(`INSERT INTO ${TABLE} VALUES ($1, 'first')`, [a]),
        );
        await withSession(second, () =>
          worker.query(`INSERT INTO ${TABLE} VALUES ($1, 'second')`, [b]),
        );
        expect(second.writeFloor).toBeDefined();
        const read = await withSession(second, () =>
          pool.query(`SELECT v FROM ${TABLE} WHERE id = $1`, [b]),
        );
        expect(read.rows).toEqual([{ v: 'second' }]);
      });
    } finally {
      worker.release();
    }
  });

  it('a read on a checked-out client raises the read floor before its result is returned', async () => {
    const { pool } = routedPool({ replica: env.replicaUrl });
    const session = new SessionContext({ id: 'held-read' }, 'monotonic');
    await withSession(session, async () => {
      const client = await pool.connect();
      try {
        await client.query(`SELECT count(*) FROM ${TABLE}`);
        expect(session.readFloor).toBeDefined();
      } finally {
        client.release();
      }
    });
  });

  it('pool.query waiting for a connection raises its own session’s floor, not the releaser’s', async () => {
    // pg-pool hands a released client to the next waiter from inside release(): the waiter's
    // statement must still run as the waiter's session.
    const { pool } = routedPool({ lagging: env.laggingReplicaUrl }, {}, { max: 1 });
    await pool.replicaSet.refresh();
    const holder = new SessionContext({ id: `holder-${nextId}` });
    const waiter = new SessionContext({ id: `waiter-${nextId}` });
    const id = nextId++;
    const held = await withSession(holder, () => pool.connect());
    const write = withSession(waiter, () =>
      pool.query(`INSERT INTO ${TABLE} VALUES ($1, 'waiter')`, [id]),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(pool.waitingCount).toBe(1);
    withSession(holder, () => held.release());
    await write;
    expect(waiter.writeFloor).toBeDefined();
    expect(holder.writeFloor).toBeUndefined();
    await beforeLaggingApplies(async () => {
      const read = await withSession(waiter, () =>
        pool.query(`SELECT v FROM ${TABLE} WHERE id = $1`, [id]),
      );
      expect(read.rows).toEqual([{ v: 'waiter' }]);
    });
  });
});

describe('timeouts inside a session', () => {
  it('query_timeout fails a statement on a checked-out client before it could have finished', async () => {
    const { pool } = routedPool({ replica: env.replicaUrl });
    const session = new SessionContext({ id: 'query-timeout' });
    const sleep = { text: 'SELECT pg_sleep(3)', query_timeout: 300 };
    await withSession(session, async () => {
      const client = await pool.connect();
      const started = performance.now();
      try {
        await expect(client.query(sleep)).rejects.toThrow('Query read timeout');
        // Failed before the 3 s statement could end: nothing of ours queued behind it.
        expect(performance.now() - started).toBeLessThan(2500);
      } finally {
        client.release(new Error('timed out'));
      }
      // pool.query: the timed-out connection is discarded, the next statement does not wait.
      const again = performance.now();
      await expect(pool.query(sleep)).rejects.toThrow('Query read timeout');
      expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      expect(performance.now() - again).toBeLessThan(2500);
    });
  });

  it('statement_timeout comes back as the server sends it', async () => {
    const { pool } = routedPool({ replica: env.replicaUrl }, {}, { statement_timeout: 200 });
    const session = new SessionContext({ id: 'statement-timeout' });
    await withSession(session, async () => {
      const client = await pool.connect();
      try {
        await expect(client.query('SELECT pg_sleep(3)')).rejects.toMatchObject({ code: '57014' });
      } finally {
        client.release();
      }
    });
  });
});

describe('replica health: only a lost connection counts', () => {
  it('a parameter the driver cannot serialise or a wrong parameter count fails that query only', async () => {
    const { pool, events } = routedPool({ replica: env.replicaUrl });
    await pool.replicaSet.refresh();
    const session = new SessionContext({ id: 'client-errors' }, 'eventual');
    let nested: unknown = [1];
    for (let depth = 0; depth < 100_000; depth++) nested = [nested];
    await withSession(session, async () => {
      for (let i = 0; i < 5; i++) {
        await expect(
          pool.query(`SELECT v FROM ${TABLE} WHERE id = ANY($1)`, [nested]),
        ).rejects.toThrow();
        await expect(
          pool.query(`SELECT v FROM ${TABLE} WHERE id = $1`, [1, 2]),
        ).rejects.toMatchObject({ code: '08P01' });
      }
      expect(pool.replicaSet.snapshot().replicas[0]!.healthy).toBe(true);
      await pool.query(`SELECT count(*) FROM ${TABLE}`);
    });
    // Neither was retried on the leader, and reads still reach the replica.
    expect(events.some((event) => event.reason === 'replica-error')).toBe(false);
    expect(events.at(-1)).toMatchObject({ target: 'replica' });
  });
});

describe('read-only transactions (routeCheckedOutReads)', () => {
  it('BEGIN READ ONLY runs whole on a replica; its end raises the read floor', async () => {
    const { pool, events } = routedPool(
      { replica: env.replicaUrl },
      { routeCheckedOutReads: true },
    );
    await pool.replicaSet.refresh();
    const session = new SessionContext({ id: 'read-only-txn' }, 'monotonic');
    await withSession(session, async () => {
      const client = await pool.connect();
      try {
        await client.query('BEGIN READ ONLY');
        expect(client.getTransactionStatus()).toBe('T');
        const inside = await client.query('SELECT pg_is_in_recovery() AS standby');
        expect(inside.rows).toEqual([{ standby: true }]);
        expect(session.readFloor).toBeUndefined();
        await client.query('COMMIT');
        expect(session.readFloor).toBeDefined();
        expect(client.getTransactionStatus()).toBe('I');
        // Any other transaction stays on the primary.
        await client.query('START TRANSACTION');
        const primary = await client.query('SELECT pg_is_in_recovery() AS standby');
        expect(primary.rows).toEqual([{ standby: false }]);
        await client.query('ROLLBACK');
      } finally {
        client.release();
      }
    });
    expect(events.filter((e) => e.reason === 'read-only-transaction')).toHaveLength(2);
  });

  it('a replica answering 25006 sends the read to the primary and tells the classifier', async () => {
    const told: string[] = [];
    const builtIn = new SqlClassifier();
    const classifier = {
      classify: (sql: string) => builtIn.classify(sql),
      notReadOnly: (sql: string) => told.push(sql),
      useCatalog: (query: Parameters<SqlClassifier['useCatalog']>[0]) => builtIn.useCatalog(query),
    };
    const { pool, events } = routedPool({ replica: env.replicaUrl }, { classifier });
    await builtIn.ready();
    await direct.query(`CREATE SEQUENCE ${TABLE}_seq`);
    await direct.query(`CREATE VIEW ${TABLE}_next AS SELECT nextval('${TABLE}_seq') AS n`);
    try {
      await caughtUp(pool, 'replica', await pool.replicaSet.writePosition());
      const session = new SessionContext({ id: 'view-25006' }, 'eventual');
      const sql = `SELECT n FROM ${TABLE}_next`;
      expect((await withSession(session, () => pool.query(sql))).rows).toEqual([{ n: '1' }]);
      expect(events.at(-1)).toMatchObject({ target: 'leader', reason: 'replica-error' });
      expect(told).toEqual([sql]);
    } finally {
      await direct.query(`DROP VIEW ${TABLE}_next`);
      await direct.query(`DROP SEQUENCE ${TABLE}_seq`);
    }
  });
});
