// Shared set-up of the near-cache tests: a table of articles on the primary, a routed pool.
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { NearCache, type NearCacheOptions } from '../../../adapters/pg/near-cache/index.js';
import { parseLsn } from '../../../adapters/pg/replica-set.js';
import { createReplicatedPool, type ReplicatedPool } from '../../../adapters/pg/replicated-pool.js';
import { testEnv } from '../../harness/env.js';

export const env = testEnv();

export interface Article {
  id: number;
  slug: string;
  title: string;
  body: string;
  version: number;
}

/** A fresh articles table (unique name) with `rows` rows. */
export async function createArticles(db: pg.Pool, rows: number): Promise<string> {
  const table = `nc_articles_${randomBytes(4).toString('hex')}`;
  await db.query(
    `CREATE TABLE ${table} (id int PRIMARY KEY, slug text NOT NULL, title text NOT NULL,
       body text NOT NULL, version int NOT NULL DEFAULT 0)`,
  );
  await db.query(
    `INSERT INTO ${table} (id, slug, title, body)
     SELECT i, 'slug-' || i, 'Title ' || i, repeat('x', 20) FROM generate_series(1, $1) AS i`,
    [rows],
  );
  return table;
}

/** A routed pool over the primary and the undelayed replica. */
export function routedPool(): ReplicatedPool {
  const pool = createReplicatedPool({
    primary: { config: { connectionString: env.primaryUrl, max: 4 } },
    replicas: [{ name: 'replica-1', config: { connectionString: env.replicaUrl, max: 4 } }],
    replicaSetOptions: { checkTimeoutMs: 2000, connectTimeoutMs: 10_000 },
  });
  pool.on('error', () => {});
  return pool;
}

/** Opens a near cache on `table` (indexed by slug) over `pool`. */
export function openCache(
  table: string,
  pool: NearCacheOptions['pool'],
  extra: Partial<NearCacheOptions> = {},
): Promise<NearCache> {
  return NearCache.open({
    primary: env.primaryUrl,
    pool,
    tables: [{ name: table, indexes: { bySlug: ['slug'] } }],
    slotCheckIntervalMs: 0,
    ...extra,
  });
}

/** The primary's WAL insert location now, as a session floor would hold it. */
export async function primaryPosition(db: pg.Pool) {
  const { rows } = await db.query(
    `SELECT s.system_identifier::text AS stream, pg_walfile_name(pg_current_wal_insert_lsn()) AS walfile,
       pg_current_wal_insert_lsn()::text AS lsn FROM pg_control_system() s`,
  );
  return {
    stream: String(rows[0].stream),
    epoch: Number.parseInt(String(rows[0].walfile).slice(0, 8), 16),
    lsn: parseLsn(String(rows[0].lsn)),
  };
}

/** Rows of `table` on the primary, by id. */
export async function primaryRows(db: pg.Pool, table: string): Promise<Article[]> {
  return (await db.query(`SELECT id, slug, title, body, version FROM ${table} ORDER BY id`)).rows;
}
