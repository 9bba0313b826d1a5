import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NearCache } from '../../../adapters/pg/near-cache/index.js';
import type { ReplicatedPool } from '../../../adapters/pg/replicated-pool.js';
import { SessionContext, withSession } from '../../../src/session/context.js';
import {
  type Article,
  createArticles,
  env,
  openCache,
  primaryPosition,
  primaryRows,
  routedPool,
} from './support.js';

let db: pg.Pool;
let pool: ReplicatedPool;
const caches: NearCache[] = [];

beforeAll(async () => {
  db = new pg.Pool({ connectionString: env.primaryUrl, max: 6 });
  pool = routedPool();
});

afterAll(async () => {
  await Promise.all(caches.map((cache) => cache.close()));
  await pool.end();
  await db.end();
});

/** Random inserts, updates, deletes (some moving a row to a new key) until `stop` is set. */
async function writer(table: string, seed: number, stop: { done: boolean }): Promise<number> {
  let writes = 0;
  let state = seed;
  const next = (n: number) => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state % n;
  };
  while (!stop.done) {
    const id = 1 + next(400);
    const op = next(4);
    try {
      await write(table, id, op, next);
    } catch (error) {
      // A key moved onto one that exists: the primary refuses it, the cache sees nothing.
      if ((error as { code?: string }).code !== '23505') throw error;
    }
    writes++;
  }
  return writes;
}

async function write(table: string, id: number, op: number, next: (n: number) => number) {
  if (op === 0) {
    await db.query(
      `INSERT INTO ${table} (id, slug, title, body) VALUES ($1::int, 'slug-' || $1::int, 'New', 'b')
         ON CONFLICT (id) DO UPDATE SET version = ${table}.version + 1`,
      [id],
    );
  } else if (op === 1) {
    await db.query(`DELETE FROM ${table} WHERE id = $1`, [id]);
  } else if (op === 2) {
    // A transaction of two changes: the cache applies both or neither.
    await db.query(
      `WITH a AS (UPDATE ${table} SET version = version + 1, title = 'T' || version WHERE id = $1)
         UPDATE ${table} SET body = body || 'y' WHERE id = $2`,
      [id, 1 + next(400)],
    );
  } else {
    await db.query(`UPDATE ${table} SET id = id + 1000 WHERE id = $1`, [id]);
  }
}

describe('near cache: snapshot and stream', () => {
  it('converges to the primary with writers running through the snapshot and after', async () => {
    const table = await createArticles(db, 300);
    const stop = { done: false };
    const writers = [1, 2, 3].map((seed) => writer(table, seed, stop));
    // Opened while the writers run: the snapshot and the stream must neither miss nor repeat.
    const cache = await openCache(table, pool, { waitTimeoutMs: 10_000 });
    caches.push(cache);
    await new Promise((resolve) => setTimeout(resolve, 700));
    stop.done = true;
    const writes = (await Promise.all(writers)).reduce((a, b) => a + b, 0);
    expect(writes).toBeGreaterThan(20);
    const floor = await primaryPosition(db);
    const session = new SessionContext({ id: 'converge', writeFloor: floor });
    const answer = await withSession(session, () => cache.table<Article>(table).filter(() => true));
    // The cache waits (up to its waitTimeoutMs) until it has applied the session's floor.
    expect(answer).toMatchObject({ source: 'near-cache' });
    expect(['waited', 'floor-applied']).toContain(answer.reason);
    const cached = answer.value;
    const expected = await primaryRows(db, table);
    expect([...cached].sort((a, b) => a.id - b.id)).toEqual(expected);
    expect(cache.status()).toMatchObject({ state: 'live', rows: expected.length, snapshots: 1 });
  });

  it('looks rows up by primary key and by index, frozen', async () => {
    const table = await createArticles(db, 50);
    const cache = await openCache(table, pool);
    caches.push(cache);
    const articles = cache.table<Article>(table);
    const byId = await articles.get(7);
    expect(byId).toMatchObject({ source: 'near-cache', reason: 'eventual' });
    expect(byId.value).toMatchObject({ id: 7, slug: 'slug-7' });
    expect(Object.isFrozen(byId.value)).toBe(true);
    expect((await articles.get({ id: 8 })).value?.title).toBe('Title 8');
    expect((await articles.get(999)).value).toBeUndefined();
    const bySlug = await articles.lookup('bySlug', 'slug-9');
    expect(bySlug.value.map((row) => row.id)).toEqual([9]);
    await db.query(`UPDATE ${table} SET slug = 'moved' WHERE id = 9`);
    await expect.poll(async () => (await articles.lookup('bySlug', 'moved')).value.length).toBe(1);
    expect((await articles.lookup('bySlug', 'slug-9')).value).toEqual([]);
  });
});
