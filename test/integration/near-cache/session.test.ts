import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NearCache } from '../../../adapters/pg/near-cache/index.js';
import type { ReplicatedPool } from '../../../adapters/pg/replicated-pool.js';
import { SessionContext, withSession } from '../../../src/session/context.js';
import { checkHistory, HistoryRecorder } from '../../../src/testing/index.js';
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
let table: string;
let cache: NearCache;

beforeAll(async () => {
  db = new pg.Pool({ connectionString: env.primaryUrl, max: 4 });
  pool = routedPool();
  table = await createArticles(db, 20);
  cache = await openCache(table, pool);
});

afterAll(async () => {
  await cache?.close();
  await pool.end();
  await db.end();
});

const articles = () => cache.table<Article>(table);

describe('near cache: reads honour the session', () => {
  it('read-your-writes: a write through the routed pool, then the cache shows it', async () => {
    for (let i = 0; i < 5; i++) {
      const session = new SessionContext();
      const title = `written ${i}`;
      const answer = await withSession(session, async () => {
        await pool.query(`UPDATE ${table} SET title = $1 WHERE id = 3`, [title]);
        return articles().get(3);
      });
      expect(answer.value?.title).toBe(title);
      // From memory once the stream delivered the commit (waiting if needed), or from the pool.
      if (answer.source === 'near-cache') {
        expect(['floor-applied', 'waited']).toContain(answer.reason);
        expect(session.readFloor).toEqual(answer.position);
      } else {
        expect(answer.reason).toBe('wait-timed-out');
      }
    }
  });

  it('falls through to the router when the floor is out of reach within the wait', async () => {
    const now = await primaryPosition(db);
    // A floor ahead of everything: neither the cache nor a replica reaches it, the primary answers.
    const session = new SessionContext({
      id: 'ahead',
      writeFloor: { ...now, lsn: now.lsn + 10n ** 9n },
    });
    const answer = await withSession(session, () => articles().get(4));
    expect(answer).toMatchObject({ source: 'leader', node: 'primary', reason: 'wait-timed-out' });
    expect(answer.value?.id).toBe(4);
    expect(Object.isFrozen(answer.value)).toBe(true);
  });

  it('eventual answers from memory at once, whatever the floor', async () => {
    const now = await primaryPosition(db);
    const session = new SessionContext(
      { id: 'eventual', writeFloor: { ...now, lsn: now.lsn + 10n ** 9n } },
      'eventual',
    );
    const answer = await withSession(session, () => articles().get(5));
    expect(answer).toMatchObject({ source: 'near-cache', reason: 'eventual' });
  });

  it('a staleness bound: from memory when heard from within it, else after asking the server', async () => {
    const loose = await withSession(
      new SessionContext({ id: 'loose' }, { maxStalenessMs: 60_000 }),
      () => articles().get(5),
    );
    expect(loose).toMatchObject({ source: 'near-cache', reason: 'within-staleness' });
    // A bound of 0 is never met at once: the cache asks the server for a keepalive and answers
    // when it arrives (the cache then heard from the primary after the read began).
    const tight = await withSession(
      new SessionContext({ id: 'tight' }, { maxStalenessMs: 0 }),
      () => articles().get(5),
    );
    expect(tight).toMatchObject({ source: 'near-cache', reason: 'waited' });
  });

  it('strong goes to the primary and raises the read floor', async () => {
    const session = new SessionContext({ id: 'strong' }, 'strong');
    const answer = await withSession(session, () => articles().lookup('bySlug', 'slug-6'));
    expect(answer).toMatchObject({ source: 'leader', reason: 'strong' });
    expect(answer.value.map((row) => row.id)).toEqual([6]);
    expect(session.readFloor).toBeDefined();
  });

  it('monotonic: a read from memory raises the read floor to the cache position', async () => {
    const session = new SessionContext({ id: 'mono' }, 'monotonic');
    const answer = await withSession(session, () => articles().filter((row) => row.id < 3));
    expect(answer.source).toBe('near-cache');
    expect(answer.value.map((row) => row.id).sort()).toEqual([1, 2]);
    expect(session.readFloor).toEqual(cache.status().position);
  });

  it('a plain pg.Pool on the primary serves the fall-through and raises the read floor', async () => {
    const plainTable = await createArticles(db, 5);
    const plain = await openCache(plainTable, db);
    try {
      const now = await primaryPosition(db);
      const session = new SessionContext({
        id: 'plain',
        writeFloor: { ...now, lsn: now.lsn + 10n ** 9n },
      });
      const answer = await withSession(session, () => plain.table<Article>(plainTable).get(1));
      expect(answer).toMatchObject({ source: 'leader', reason: 'wait-timed-out' });
      // The read floor rose to the primary's position after the read (below the write floor).
      expect(session.readFloor?.stream).toBe(now.stream);
      expect(session.readFloor!.lsn).toBeGreaterThanOrEqual(now.lsn);
    } finally {
      await plain.close();
    }
  });

  it('a concurrent session workload through the cache has no violations (history checker)', async () => {
    const recorder = new HistoryRecorder();
    const keys = [11, 12, 13, 14];
    let writeId = 0;
    const run = async (name: string) => {
      const session = new SessionContext({ id: name });
      for (let step = 0; step < 25; step++) {
        const key = keys[(step * 7 + name.length) % keys.length]!;
        const startedAt = recorder.now();
        if (step % 3 === 0) {
          const { rows } = await withSession(session, () =>
            pool.query(
              `UPDATE ${table} SET version = version + 1 WHERE id = $1 RETURNING version`,
              [key],
            ),
          );
          recorder.write({
            session: name,
            key: String(key),
            id: `w${writeId++}`,
            version: rows[0].version,
            node: 'primary',
            startedAt,
            endedAt: recorder.now(),
            acknowledged: true,
          });
        } else {
          // One snapshot of every key: checks consistent prefix as well as the session guarantees.
          const answer = await withSession(session, () =>
            articles().filter((row) => keys.includes(row.id)),
          );
          const observed: Record<string, number> = {};
          for (const row of answer.value) observed[String(row.id)] = row.version;
          recorder.read({
            session: name,
            observed,
            node: answer.node,
            startedAt,
            endedAt: recorder.now(),
          });
        }
      }
    };
    await Promise.all(['s1', 's22', 's333', 's4444', 's55555'].map(run));
    const result = checkHistory(recorder.operations());
    expect(result.violations).toEqual([]);
    const nodes = new Set(
      recorder
        .operations()
        .filter((op) => op.kind === 'read')
        .map((op) => op.node),
    );
    expect(nodes.has('near-cache')).toBe(true);
  });
});
