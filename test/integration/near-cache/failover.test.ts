import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NearCache } from '../../../adapters/pg/near-cache/index.js';
import { SessionContext, withSession } from '../../../src/session/context.js';
import {
  type PgServer,
  type ReplicaServer,
  startPostgresPrimary,
  startReplica,
} from '../../harness/cluster.js';
import { startRelay } from '../../support/tcp-relay.js';
import { type Article, createArticles } from './support.js';

// Its own primary and replica: the replica is promoted, which the shared cluster must not see.
let primary: PgServer;
let replica: ReplicaServer;
let relay: Awaited<ReturnType<typeof startRelay>>;

beforeAll(async () => {
  primary = await startPostgresPrimary({ name: 'nc-failover-primary' });
  replica = await startReplica(primary, { name: 'nc-failover-replica' });
  relay = await startRelay(primary.port);
});

afterAll(async () => {
  await relay?.close();
  await replica?.stop();
  await primary?.stop().catch(() => {});
});

describe('near cache: failover', () => {
  it('after a promotion it re-snapshots on the new timeline and never answers from the old one', async () => {
    const db = new pg.Pool({ connectionString: relay.url, max: 2 });
    db.on('error', () => {});
    const table = await createArticles(db, 5);
    const onReplica = new pg.Client({ connectionString: replica.url });
    await onReplica.connect();
    await expect
      .poll(
        async () =>
          (await onReplica.query(`SELECT to_regclass('${table}') IS NOT NULL AS t`)).rows[0].t,
      )
      .toBe(true);
    await onReplica.end();
    const cache = await NearCache.open({
      primary: relay.url,
      pool: db,
      tables: [table],
      retryDelayMs: 100,
      slotCheckIntervalMs: 0,
    });
    try {
      const old = cache.status().position!;
      expect(old.epoch).toBe(1);
      await primary.crash();
      await replica.promote();
      relay.moveTo(replica.port);
      await expect.poll(() => cache.status().position?.epoch, { timeout: 30_000 }).toBe(2);
      expect(cache.status()).toMatchObject({ state: 'live', snapshots: 2 });
      expect(cache.status().position?.stream).toBe(old.stream);
      // A session whose floor is of the old timeline: not comparable, so the pool answers.
      const session = new SessionContext({ id: 'old-history', writeFloor: old });
      const answer = await withSession(session, () => cache.table<Article>(table).get(1));
      expect(answer).toMatchObject({ reason: 'other-history', source: 'leader' });
      // Writes on the new primary reach the cache on its new timeline.
      await db.query(`UPDATE ${table} SET title = 'on timeline 2' WHERE id = 2`);
      await expect
        .poll(async () => (await cache.table<Article>(table).get(2)).value?.title)
        .toBe('on timeline 2');
    } finally {
      await cache.close();
      await db.end();
    }
  });
});
