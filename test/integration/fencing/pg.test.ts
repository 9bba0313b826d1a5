import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PgFenceGuard,
  PgLeaseManager,
  pgFenceTableSql,
  pgLeaseTableSql,
} from '../../../adapters/pg/index.js';
import { isCausewayError } from '../../../src/errors.js';
import { type PgServer, startPostgresPrimary } from '../../harness/cluster.js';
import { testEnv } from '../../harness/env.js';
import { suffix } from './fixtures.js';

const pool = new pg.Pool({ connectionString: testEnv().primaryUrl, max: 6 });
const fenceTable = `fence_fences_${suffix()}`;
const dataTable = `fence_data_${suffix()}`;
const guard = new PgFenceGuard({ pool, table: fenceTable });
const created: string[] = [fenceTable, dataTable];

beforeAll(async () => {
  await pool.query(`CREATE TABLE ${dataTable} (id int PRIMARY KEY, value text)`);
  await pool.query(`INSERT INTO ${dataTable} VALUES (1, 'initial')`);
});
afterAll(async () => {
  await pool.query(`DROP TABLE IF EXISTS ${created.join(', ')}`);
  await pool.end();
});

async function storedValue(): Promise<string> {
  const { rows } = await pool.query(`SELECT value FROM ${dataTable} WHERE id = 1`);
  return rows[0].value;
}

async function stale(promise: Promise<unknown>): Promise<boolean> {
  return promise.then(
    () => false,
    (error: unknown) => {
      if (isCausewayError(error, 'STALE_FENCING_TOKEN')) return true;
      throw error;
    },
  );
}

describe('PgFenceGuard in the caller’s transaction', () => {
  it('a stale check after the UPDATE rolls the UPDATE back with it', async () => {
    const resource = `r-${suffix()}`;
    await guard.check(resource, 10n);
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`UPDATE ${dataTable} SET value = 'stale write' WHERE id = 1`);
      expect(await stale(guard.check(resource, 9n, { client }))).toBe(true);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    expect(await storedValue()).toBe('initial');
  });

  it('a check whose transaction rolls back leaves the fence where it was', async () => {
    const resource = `r-${suffix()}`;
    await guard.check(resource, 5n);
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await guard.check(resource, 50n, { client });
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    await guard.check(resource, 6n); // 50 was never recorded
  });

  it('concurrent checks queue on the row: the older token waits, then loses', async () => {
    const resource = `r-${suffix()}`;
    await guard.check(resource, 1n);
    const newer = await pool.connect();
    const older = await pool.connect();
    try {
      await newer.query('BEGIN');
      await guard.check(resource, 8n, { client: newer });
      await older.query('BEGIN');
      let settled = false;
      const olderCheck = guard.check(resource, 7n, { client: older }).finally(() => {
        settled = true;
      });
      await new Promise((r) => setTimeout(r, 200));
      expect(settled).toBe(false); // blocked on the newer transaction's row lock
      await newer.query('COMMIT');
      expect(await stale(olderCheck)).toBe(true);
      await older.query('ROLLBACK');
    } finally {
      newer.release();
      older.release();
    }
  });

  it('if the newer transaction rolls back, the older token waiting behind it passes', async () => {
    const resource = `r-${suffix()}`;
    await guard.check(resource, 1n);
    const newer = await pool.connect();
    const older = await pool.connect();
    try {
      await newer.query('BEGIN');
      await guard.check(resource, 8n, { client: newer });
      await older.query('BEGIN');
      const olderCheck = guard.check(resource, 7n, { client: older });
      await new Promise((r) => setTimeout(r, 100));
      await newer.query('ROLLBACK');
      await olderCheck;
      await older.query('COMMIT');
    } finally {
      newer.release();
      older.release();
    }
    expect(await stale(guard.check(resource, 6n))).toBe(true);
  });

  it('write() commits the write with the check and rolls back when the callback throws', async () => {
    const resource = `r-${suffix()}`;
    const result = await guard.write(resource, 3n, async (client) => {
      await client.query(`UPDATE ${dataTable} SET value = 'by 3' WHERE id = 1`);
      return 'done';
    });
    expect(result).toBe('done');
    await expect(
      guard.write(resource, 4n, async (client) => {
        await client.query(`UPDATE ${dataTable} SET value = 'by 4' WHERE id = 1`);
        throw new Error('application failure');
      }),
    ).rejects.toThrow('application failure');
    expect(await storedValue()).toBe('by 3');
    // 4 was rolled back with the write, so 3 is still current; 2 is stale and never runs.
    await guard.write(resource, 3n, async () => undefined);
    let ran = false;
    expect(
      await stale(
        guard.write(resource, 2n, async () => {
          ran = true;
        }),
      ),
    ).toBe(true);
    expect(ran).toBe(false);
    await pool.query(`UPDATE ${dataTable} SET value = 'initial' WHERE id = 1`);
  });
});

describe('PgLeaseManager and PgFenceGuard options and tables', () => {
  it('exports idempotent SQL for migrations, with schema-qualified names', async () => {
    const schema = `fence_schema_${suffix()}`;
    await pool.query(`CREATE SCHEMA ${schema}`);
    try {
      for (const sql of [
        pgLeaseTableSql(`${schema}.leases`),
        pgFenceTableSql(`${schema}.fences`),
      ]) {
        await pool.query(sql);
        await pool.query(sql);
      }
      const manager = new PgLeaseManager({ pool, table: `${schema}.leases`, createTable: false });
      const lease = await manager.acquire('job', { ttlMs: 1000 });
      const fence = new PgFenceGuard({ pool, table: `${schema}.fences`, createTable: false });
      await fence.check('job', lease.token);
    } finally {
      await pool.query(`DROP SCHEMA ${schema} CASCADE`);
    }
  });

  it('creates its table on first use, also when many instances race to do it', async () => {
    const table = `fence_leases_${suffix()}`;
    created.push(table);
    const managers = Array.from({ length: 6 }, () => new PgLeaseManager({ pool, table }));
    const leases = await Promise.all(
      managers.map((manager, i) => manager.acquire(`job-${i}`, { ttlMs: 1000 })),
    );
    expect(leases.map((l) => l.token)).toEqual(leases.map(() => 1n));
  });

  it('with createTable false, a missing table is the database error', async () => {
    const manager = new PgLeaseManager({
      pool,
      table: `fence_missing_${suffix()}`,
      createTable: false,
    });
    await expect(manager.acquire('job', { ttlMs: 1000 })).rejects.toMatchObject({ code: '42P01' });
  });

  it('refuses unusable options with CONFIG', () => {
    for (const build of [
      () => new PgLeaseManager({ pool, table: 'bad name; DROP TABLE x' }),
      () => new PgLeaseManager({ pool, table: 'a.b.c' }),
      () => new PgFenceGuard({ pool: {} as pg.Pool }),
      () => new PgFenceGuard({ pool, createTable: 'yes' as unknown as boolean }),
    ]) {
      expect(build).toThrow(expect.objectContaining({ code: 'CONFIG' }));
    }
  });

  it('refuses an unknown check option with CONFIG rather than checking outside the transaction', async () => {
    await expect(guard.check('r', 1n, { clinet: pool } as never)).rejects.toMatchObject({
      code: 'CONFIG',
      message: 'PgFenceGuard.check: unknown option "clinet" (did you mean client?)',
    });
  });

  it('refuses malformed tokens and resources with INVALID_INPUT', async () => {
    for (const call of [
      guard.check('r', -1n),
      guard.check('r', 2n ** 63n),
      guard.check('r', 5 as unknown as bigint),
      guard.check('x'.repeat(300), 1n),
      guard.write('r', 'abc' as unknown as bigint, async () => undefined),
    ]) {
      await expect(call).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    }
  });
});

describe('PgLeaseManager across a restart of the database', () => {
  let server: PgServer;
  let serverPool: pg.Pool;

  beforeAll(async () => {
    server = await startPostgresPrimary({ name: 'fence-restart' });
    serverPool = new pg.Pool({ connectionString: server.url, max: 2 });
    // Idle clients die with the server; the pool drops them and reports it here.
    serverPool.on('error', () => {});
  });
  afterAll(async () => {
    await serverPool?.end();
    await server?.stop();
  });

  it('tokens keep growing after a crash and restart, for a new holder and a new manager', async () => {
    const manager = new PgLeaseManager({ pool: serverPool });
    const before = await manager.acquire('leader', { ttlMs: 60_000, holder: 'a' });
    const again = await manager.acquire('leader', { ttlMs: 60_000, holder: 'a' });
    await again.release();
    await server.crash();
    await server.start();
    const after = await new PgLeaseManager({ pool: serverPool }).acquire('leader', {
      ttlMs: 60_000,
      holder: 'b',
    });
    expect(again.token).toBeGreaterThan(before.token);
    expect(after.token).toBeGreaterThan(again.token);
  });
});
