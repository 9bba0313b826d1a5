import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NearCache } from '../../../adapters/pg/near-cache/index.js';
import type { ReplicatedPool } from '../../../adapters/pg/replicated-pool.js';
import { SessionContext, withSession } from '../../../src/session/context.js';
import {
  NearCacheCounterName,
  NearCacheEventName,
  NearCacheSpanName,
} from '../../../src/telemetry.js';
import { installTelemetry, type Telemetry } from '../../support/otel.js';
import {
  type Article,
  createArticles,
  env,
  openCache,
  primaryPosition,
  routedPool,
} from './support.js';

let otel: Telemetry;
let db: pg.Pool;
let pool: ReplicatedPool;
let cache: NearCache;
let table: string;

beforeAll(async () => {
  otel = installTelemetry();
  db = new pg.Pool({ connectionString: env.primaryUrl, max: 2 });
  pool = routedPool();
  table = await createArticles(db, 4);
  cache = await openCache(table, pool);
});

afterAll(async () => {
  await cache?.close();
  await pool.end();
  await db.end();
  otel.stop();
});

describe('near cache: telemetry', () => {
  it('counts hits and misses by target and reason, with an event on the active span', async () => {
    const hits = await otel.counter(NearCacheCounterName.READS, {
      'causeway.target': 'near-cache',
      'causeway.reason': 'eventual',
    });
    const now = await primaryPosition(db);
    await otel.tracer.startActiveSpan('request', async (span) => {
      await withSession(new SessionContext({ id: 'e' }, 'eventual'), () =>
        cache.table<Article>(table).get(1),
      );
      const ahead = new SessionContext({
        id: 'a',
        writeFloor: { ...now, lsn: now.lsn + 10n ** 9n },
      });
      await withSession(ahead, () => cache.table<Article>(table).get(1));
      span.end();
    });
    expect(
      await otel.counter(NearCacheCounterName.READS, {
        'causeway.target': 'near-cache',
        'causeway.reason': 'eventual',
      }),
    ).toBe(hits + 1);
    expect(
      await otel.counter(NearCacheCounterName.READS, { 'causeway.reason': 'wait-timed-out' }),
    ).toBeGreaterThanOrEqual(1);
    const request = otel.spans.getFinishedSpans().find((span) => span.name === 'request');
    const reads = request?.events.filter((event) => event.name === NearCacheEventName.READ) ?? [];
    expect(reads.map((event) => event.attributes?.['causeway.reason'])).toEqual([
      'eventual',
      'wait-timed-out',
    ]);
  });

  it('records the snapshot as a span and counts applied commits', async () => {
    const snapshot = otel.spans
      .getFinishedSpans()
      .find((span) => span.name === NearCacheSpanName.SNAPSHOT);
    expect(snapshot?.attributes['causeway.near_cache.rows']).toBe(4);
    expect(String(snapshot?.attributes['causeway.near_cache.position'])).toMatch(/^1\/[0-9a-f]+$/);
    const commits = await otel.counter(NearCacheCounterName.COMMITS);
    await db.query(`UPDATE ${table} SET version = 1 WHERE id = 1`);
    await expect.poll(() => otel.counter(NearCacheCounterName.COMMITS)).toBeGreaterThan(commits);
    expect(await otel.counter(NearCacheCounterName.SNAPSHOTS)).toBeGreaterThanOrEqual(1);
  });
});
