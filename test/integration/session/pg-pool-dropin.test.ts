import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionContext, withSession } from '../../../src/session/context.js';
import { testEnv } from '../../harness/env.js';
import { runTsx } from '../../support/child-process.js';
import { caughtUp, classifierReady, endRoutedPools, routedPool } from './routed-pool-support.js';

const env = testEnv();
const TABLE = `dropin_${randomBytes(4).toString('hex')}`;
const TENANT = `tenant_${randomBytes(4).toString('hex')}`;
let direct: pg.Pool;

beforeAll(async () => {
  await classifierReady();
  direct = new pg.Pool({ connectionString: env.primaryUrl, max: 2 });
  await direct.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v text NOT NULL)`);
  await direct.query(`INSERT INTO ${TABLE} VALUES (1, 'public')`);
  await direct.query(`CREATE SCHEMA ${TENANT}`);
  await direct.query(`CREATE TABLE ${TENANT}.${TABLE} (id int PRIMARY KEY, v text NOT NULL)`);
  await direct.query(`INSERT INTO ${TENANT}.${TABLE} VALUES (1, 'tenant')`);
  const { pool } = routedPool({ replica: env.replicaUrl });
  await caughtUp(pool, 'replica', await pool.replicaSet.writePosition());
});

afterAll(async () => {
  await endRoutedPools();
  await direct.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await direct.query(`DROP SCHEMA IF EXISTS ${TENANT} CASCADE`);
  await direct.end();
});

describe('the routed pool is a pg.Pool of the primary', () => {
  it('has its class, options, counts and events, with the very clients connect() hands out', async () => {
    const { pool } = routedPool({ replica: env.replicaUrl }, {}, { max: 3, maxUses: 7 });
    expect(pool).toBeInstanceOf(pg.Pool);
    expect(pool.options).toMatchObject({ max: 3, maxUses: 7, idleTimeoutMillis: 10_000 });
    expect([pool.totalCount, pool.idleCount, pool.waitingCount, pool.expiredCount]).toEqual([
      0, 0, 0, 0,
    ]);
    const seen: Record<string, unknown[]> = { connect: [], acquire: [], release: [], remove: [] };
    pool.on('connect', (client) => seen['connect']!.push(client));
    pool.on('acquire', (client) => seen['acquire']!.push(client));
    pool.on('release', (_error, client) => seen['release']!.push(client));
    pool.on('remove', (client) => seen['remove']!.push(client));
    const client = await pool.connect();
    expect(client).toBeInstanceOf(pg.Client);
    expect(seen['connect']).toEqual([client]);
    expect(seen['acquire']).toEqual([client]);
    expect([pool.totalCount, pool.idleCount]).toEqual([1, 0]);
    const removed = new Promise((resolve) => pool.once('remove', resolve));
    client.release(new Error('discard it'));
    expect(seen['release']).toEqual([client]);
    await removed;
    expect(seen['remove']).toEqual([client]);
    expect(pool.totalCount).toBe(0);
  });

  it("keeps health checks and position reads off the pool's own connections", async () => {
    const { pool } = routedPool({ replica: env.replicaUrl }, {}, { maxUses: 1 });
    const acquired: unknown[] = [];
    pool.on('acquire', (client) => acquired.push(client));
    await pool.replicaSet.refresh();
    await pool.replicaSet.writePosition();
    expect(acquired).toEqual([]);
    expect(pool.totalCount).toBe(0);
    // A write in a session: one checkout for the statement, its write floor read elsewhere.
    const session = new SessionContext({ id: 'own-connections' });
    await withSession(session, () => pool.query(`UPDATE ${TABLE} SET v = v WHERE id = 1`));
    expect(acquired).toHaveLength(1);
    expect(session.writeFloor).toBeDefined();
  });

  it('lets the process exit with allowExitOnIdle, never ended', async () => {
    const child = fileURLToPath(new URL('./children/exit-on-idle.ts', import.meta.url));
    const result = await runTsx(child);
    expect(result.stdout).not.toContain('still running');
    expect(result.code).toBe(0);
  }, 20_000);

  it('end(callback) calls back, and end() twice is the error pg.Pool gives', async () => {
    const { pool } = routedPool({ replica: env.replicaUrl });
    await pool.query('SELECT 1');
    await new Promise<void>((resolve) => pool.end(() => resolve()));
    expect(pool.ended).toBe(true);
    await expect(pool.end()).rejects.toThrow('Called end on pool more than once');
  });

  it('waits for a connection as pg.Pool does, and times out only with connectionTimeoutMillis', async () => {
    // The replica set's default connectTimeoutMs (2 s) must not become the primary's.
    const { pool } = routedPool(
      { replica: env.replicaUrl },
      { replicaSetOptions: { checkTimeoutMs: 2000 } },
      { max: 1 },
    );
    const held = await pool.connect();
    // No checkout timeout of its own: still waiting after longer than the old 2 s one.
    let settled = false;
    const waiting = pool.connect().finally(() => {
      settled = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(settled).toBe(false);
    held.release();
    (await waiting).release();
    const { pool: strict } = routedPool(
      { replica: env.replicaUrl },
      {},
      { max: 1, connectionTimeoutMillis: 100 },
    );
    const busy = await strict.connect();
    await expect(strict.connect()).rejects.toThrow('timeout exceeded when trying to connect');
    busy.release();
  });
});

describe('ending', () => {
  it('a pool ended mid-read finishes the read and leaves no connection on any node', async () => {
    const name = `causeway-end-${randomBytes(4).toString('hex')}`;
    const { pool } = routedPool({ replica: env.replicaUrl }, {}, { application_name: name });
    await pool.replicaSet.refresh();
    const session = new SessionContext({ id: 'ended-mid-read' }, 'eventual');
    const reading = withSession(session, () =>
      pool.query('SELECT count(*)::int AS n FROM generate_series(1, 300000)'),
    );
    await new Promise((resolve) => setTimeout(resolve, 5));
    const ending = pool.end();
    expect((await reading).rows).toEqual([{ n: 300000 }]);
    await ending;
    for (const url of [env.primaryUrl, env.replicaUrl]) {
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      try {
        // A backend leaves pg_stat_activity a moment after its client has closed the socket.
        let left = -1;
        for (const deadline = Date.now() + 3000; left !== 0 && Date.now() < deadline; ) {
          const { rows } = await admin.query(
            'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
            [name],
          );
          left = rows[0].n;
          if (left !== 0) await new Promise((resolve) => setTimeout(resolve, 50));
        }
        expect(left).toBe(0);
      } finally {
        await admin.end();
      }
    }
  });
});

describe("'connect' listeners run on replica connections too", () => {
  it('a search_path set on connect holds for routed reads (no other tenant rows)', async () => {
    const { pool, events } = routedPool({ replica: env.replicaUrl });
    pool.on('connect', (client) => {
      void client.query(`SET search_path TO ${TENANT}`);
    });
    await pool.replicaSet.refresh();
    const session = new SessionContext({ id: 'tenant' }, 'eventual');
    const read = await withSession(session, () =>
      pool.query(`SELECT v FROM ${TABLE} WHERE id = 1`),
    );
    expect(events.at(-1)).toMatchObject({ target: 'replica' });
    expect(read.rows).toEqual([{ v: 'tenant' }]);
  });

  it('a replica connection whose setup failed is not used: the read goes to the primary', async () => {
    const { pool, events } = routedPool({ replica: env.replicaUrl });
    pool.on('connect', (client) => {
      // Fails on a replica only (division by zero while in recovery).
      client.query('SELECT CASE WHEN pg_is_in_recovery() THEN 1 / 0 ELSE 1 END').catch(() => {});
    });
    await pool.replicaSet.refresh();
    const session = new SessionContext({ id: 'setup-fails' }, 'eventual');
    const read = await withSession(session, () =>
      pool.query(`SELECT v FROM ${TABLE} WHERE id = 1`),
    );
    expect(read.rows).toEqual([{ v: 'public' }]);
    // (The listener's own statement on the new primary connection is a route event too.)
    const routed = events.filter((event) => event.reason !== 'checked-out-client');
    expect(routed.slice(-2)).toMatchObject([
      { target: 'replica' },
      { target: 'leader', reason: 'replica-error' },
    ]);
    expect(pool.replicaSet.snapshot().replicas[0]!.healthy).toBe(true);
  });
});
