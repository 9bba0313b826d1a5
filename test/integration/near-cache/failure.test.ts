import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NearCache } from '../../../adapters/pg/near-cache/index.js';
import { parseLsn } from '../../../adapters/pg/replica-set.js';
import type { ReplicatedPool } from '../../../adapters/pg/replicated-pool.js';
import { SessionContext, withSession } from '../../../src/session/context.js';
import {
  type Article,
  createArticles,
  env,
  openCache,
  primaryPosition,
  routedPool,
} from './support.js';

let db: pg.Pool;
let pool: ReplicatedPool;

beforeAll(async () => {
  db = new pg.Pool({ connectionString: env.primaryUrl, max: 4 });
  pool = routedPool();
});

afterAll(async () => {
  await pool.end();
  await db.end();
});

async function slotExists(slot: string): Promise<boolean> {
  const { rows } = await db.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [
    slot,
  ]);
  return rows.length === 1;
}

/** Ends the walsender streaming `slot` and drops the slot (retrying while it is still active). */
async function dropSlotUnderIt(slot: string): Promise<void> {
  await expect
    .poll(async () => {
      await db.query(
        'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL',
        [slot],
      );
      try {
        await db.query('SELECT pg_drop_replication_slot($1)', [slot]);
      } catch {
        // Still active for a moment (the walsender exits asynchronously): try again.
      }
      return slotExists(slot);
    })
    .toBe(false);
}

describe('near cache: failures', () => {
  it('slot dropped under it: stale (reads go to the pool), then re-snapshotted with what it missed', async () => {
    const table = await createArticles(db, 10);
    const cache = await openCache(table, pool, { retryDelayMs: 1500 });
    try {
      const before = cache.status();
      await dropSlotUnderIt(cache.slotName);
      await expect.poll(() => cache.status().state).toBe('stale');
      expect(cache.status().staleReason).toBe('stream-broken');
      // While stale, no floor-based read and no eventual read is answered from memory.
      await db.query(`UPDATE ${table} SET title = 'while stale' WHERE id = 1`);
      const session = new SessionContext({ id: 'stale' }, 'eventual');
      const during = await withSession(session, () => cache.table<Article>(table).get(2));
      expect(during).toMatchObject({ reason: 'not-live' });
      expect(during.source).not.toBe('near-cache');
      await expect.poll(() => cache.status().state, { timeout: 15_000 }).toBe('live');
      expect(cache.status().snapshots).toBe(before.snapshots + 1);
      expect(await slotExists(cache.slotName)).toBe(true);
      const after = await cache.table<Article>(table).get(1);
      expect(after).toMatchObject({ source: 'near-cache', value: { title: 'while stale' } });
    } finally {
      await cache.close();
    }
    expect(await slotExists(cache.slotName)).toBe(false);
  });

  it('a change it cannot decode (columns changed) makes it stale, then it re-snapshots', async () => {
    const table = await createArticles(db, 3);
    const cache = await openCache(table, pool, { retryDelayMs: 50 });
    try {
      await db.query(`ALTER TABLE ${table} ADD COLUMN extra int NOT NULL DEFAULT 7`);
      await db.query(`UPDATE ${table} SET title = 'after ddl' WHERE id = 1`);
      await expect.poll(() => cache.status().snapshots, { timeout: 15_000 }).toBe(2);
      await expect.poll(() => cache.status().state).toBe('live');
      const row = (await cache.table<Article & { extra: number }>(table).get(1)).value;
      expect(row).toMatchObject({ title: 'after ddl', extra: 7 });
    } finally {
      await cache.close();
    }
  });

  it('acknowledges what it applied (the slot frees WAL) and reports the lag and WAL status', async () => {
    const table = await createArticles(db, 3);
    const cache = await openCache(table, pool);
    try {
      await db.query(`UPDATE ${table} SET version = 5 WHERE id = 1`);
      const written = await primaryPosition(db);
      await expect
        .poll(() => (cache.status().position?.lsn ?? 0n) >= written.lsn, { timeout: 10_000 })
        .toBe(true);
      // Status updates go out every second: the slot's confirmed position follows the cache's.
      await expect
        .poll(
          async () => {
            const { rows } = await db.query(
              'SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1',
              [cache.slotName],
            );
            return parseLsn(String(rows[0].lsn)) >= written.lsn;
          },
          { timeout: 10_000 },
        )
        .toBe(true);
      await cache.checkSlot();
      const status = cache.status();
      expect(['reserved', 'extended']).toContain(status.walStatus);
      expect(typeof status.lagBytes).toBe('bigint');
      expect(typeof status.slotRetainedBytes).toBe('bigint');
      expect(status.heapBytes).toBeGreaterThanOrEqual(0);
    } finally {
      await cache.close();
    }
  });

  it('refuses to load more than maxRows, leaving no slot behind', async () => {
    const table = await createArticles(db, 30);
    const slotName = `nc_bound_${randomBytes(3).toString('hex')}`;
    await expect(openCache(table, pool, { maxRows: 10, slotName })).rejects.toMatchObject({
      code: 'CONFIG',
      message: expect.stringContaining('maxRows'),
    });
    expect(await slotExists(slotName)).toBe(false);
  });

  it('goes stale when the stream grows the tables past maxRows', async () => {
    const table = await createArticles(db, 5);
    const cache = await openCache(table, pool, { maxRows: 6, retryDelayMs: 60_000 });
    try {
      await db.query(
        `INSERT INTO ${table} (id, slug, title, body) VALUES (100, 'a', 'a', 'a'), (101, 'b', 'b', 'b')`,
      );
      await expect.poll(() => cache.status().state).toBe('stale');
      expect(cache.status().staleReason).toBe('memory-bound');
    } finally {
      await cache.close();
    }
  });
});

describe('near cache: bad configuration', () => {
  const open = (tables: string[], extra = {}) =>
    NearCache.open({ primary: env.primaryUrl, pool, tables, ...extra });

  it('names the table: unknown, no primary key, no replica identity, unsupported type', async () => {
    const suffix = randomBytes(3).toString('hex');
    await db.query(`CREATE TABLE nc_nokey_${suffix} (a int)`);
    await db.query(`CREATE TABLE nc_noident_${suffix} (a int PRIMARY KEY)`);
    await db.query(`ALTER TABLE nc_noident_${suffix} REPLICA IDENTITY NOTHING`);
    await db.query(`CREATE TABLE nc_bytes_${suffix} (a int PRIMARY KEY, b bytea)`);
    for (const [table, words] of [
      [`nc_missing_${suffix}`, 'does not exist'],
      [`nc_nokey_${suffix}`, 'no primary key'],
      [`nc_noident_${suffix}`, 'REPLICA IDENTITY'],
      [`nc_bytes_${suffix}`, "unsupported type 'bytea'"],
    ] as const) {
      const error = await open([table]).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CONFIG', details: { table } });
      expect((error as Error).message).toContain(table);
      expect((error as Error).message).toContain(words);
    }
  });

  it('rejects bad options and bad lookups', async () => {
    await expect(NearCache.open({ primary: env.primaryUrl, pool } as never)).rejects.toMatchObject({
      code: 'CONFIG',
    });
    await expect(open(['a b'])).rejects.toMatchObject({ code: 'CONFIG' });
    await expect(open(['x'], { slotName: 'Bad-Name' })).rejects.toMatchObject({ code: 'CONFIG' });
    await expect(open(['x'], { waitTimeoutMs: -1 })).rejects.toMatchObject({ code: 'CONFIG' });
    await expect(
      NearCache.open({ primary: env.primaryUrl, tables: ['x'] } as never),
    ).rejects.toMatchObject({ code: 'CONFIG' });
    const table = await createArticles(db, 2);
    const cache = await openCache(table, pool);
    try {
      expect(() => cache.table('nope')).toThrow(expect.objectContaining({ code: 'CONFIG' }));
      await expect(cache.table(table).lookup('nope', 1)).rejects.toMatchObject({
        code: 'INVALID_INPUT',
      });
      await expect(cache.table(table).get({ wrong: 1 })).rejects.toMatchObject({
        code: 'INVALID_INPUT',
      });
    } finally {
      await cache.close();
    }
  });
});
