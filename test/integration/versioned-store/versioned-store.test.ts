import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryVersionedStore } from '../../../adapters/memory/versioned-store.js';
import { PgVersionedStore, versionedStoreSql } from '../../../adapters/pg/versioned-store.js';
import { RedisVersionedStore } from '../../../adapters/redis/versioned-store.js';
import { startRedis } from '../../harness/cluster.js';
import { testEnv } from '../../harness/env.js';
import { versionedStoreSuite } from './suite.js';

const env = testEnv();
const suffix = randomBytes(4).toString('hex');
const tables = [`vs_${suffix}_0`, `vs_${suffix}_1`] as const;
const prefixes = [`vs:${suffix}:0:`, `vs:${suffix}:1:`] as const;

const pool = new pg.Pool({ connectionString: env.primaryUrl, max: 20 });
const redis = new Redis(env.redisUrl);

afterAll(async () => {
  for (const table of tables) await pool.query(`DROP TABLE IF EXISTS ${table}`);
  for (const prefix of prefixes) {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  await pool.end();
  redis.disconnect();
});

versionedStoreSuite('MemoryVersionedStore', async (options) => new MemoryVersionedStore(options));

versionedStoreSuite(
  'PgVersionedStore',
  async (options, replica) => new PgVersionedStore({ ...options, pool, table: tables[replica] }),
);

versionedStoreSuite(
  'RedisVersionedStore',
  async (options, replica) =>
    new RedisVersionedStore({ ...options, redis, keyPrefix: prefixes[replica] }),
);

describe('PgVersionedStore specifics', () => {
  it('creates its table idempotently from many stores at once', async () => {
    const table = `vs_${suffix}_ddl`;
    try {
      const stores = Array.from(
        { length: 5 },
        () => new PgVersionedStore({ pool, handler: 'siblings', table }),
      );
      await Promise.all(stores.map((store, i) => store.put('k', i, { actor: `a${i}` })));
      expect((await stores[0]!.get('k')).values).toHaveLength(5);
    } finally {
      await pool.query(`DROP TABLE IF EXISTS ${table}`);
    }
  });

  it('with createTable: false uses a table made from the exported SQL', async () => {
    const table = `vs_${suffix}_own`;
    try {
      const store = new PgVersionedStore({ pool, handler: 'lww', table, createTable: false });
      await expect(store.get('k')).rejects.toThrow();
      await pool.query(versionedStoreSql(table));
      expect((await store.put('k', 'v', { actor: 'a' })).values).toEqual(['v']);
    } finally {
      await pool.query(`DROP TABLE IF EXISTS ${table}`);
    }
  });

  it('a refused first write leaves no row behind', async () => {
    const store = new PgVersionedStore({ pool, handler: 'siblings', table: tables[0] });
    await expect(store.put('fresh', 1, { actor: 'a', context: 'bad!' })).rejects.toThrow();
    const { rows } = await pool.query(
      `SELECT count(*)::int AS n FROM ${tables[0]} WHERE key = 'fresh'`,
    );
    expect(rows[0].n).toBe(0);
  });
});

describe('RedisVersionedStore specifics', () => {
  it('re-sends its script after the server forgot it (SCRIPT FLUSH)', async () => {
    // A private server: flushing scripts on the shared one would disturb other test files.
    const server = await startRedis({ name: 'vs-noscript' });
    const client = new Redis(server.url);
    try {
      const store = new RedisVersionedStore({ redis: client, handler: 'siblings' });
      await store.put('flush', 1, { actor: 'a' });
      await client.script('FLUSH');
      const { context } = await store.get('flush');
      expect((await store.put('flush', 2, { context, actor: 'a' })).values).toEqual([2]);
    } finally {
      client.disconnect();
      await server.stop();
    }
  });
});
