import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { MemoryFenceGuard, MemoryLeaseManager } from '../../../adapters/memory/index.js';
import { PgFenceGuard, PgLeaseManager } from '../../../adapters/pg/index.js';
import { RedisFenceGuard, RedisLeaseManager } from '../../../adapters/redis/index.js';
import type { LeaseManager } from '../../../src/fencing/token.js';
import { testEnv } from '../../harness/env.js';

/** A lease store under test, with private tables or keys and a way to clean them up. */
export interface LeaseFixture {
  readonly name: string;
  readonly manager: LeaseManager;
  cleanup(): Promise<void>;
}

export const suffix = () => randomBytes(4).toString('hex');

export function memoryFixture(): LeaseFixture {
  return { name: 'memory', manager: new MemoryLeaseManager(), cleanup: async () => {} };
}

export function pgFixture(): LeaseFixture & { pool: pg.Pool; table: string } {
  const pool = new pg.Pool({ connectionString: testEnv().primaryUrl, max: 8 });
  const table = `fence_leases_${suffix()}`;
  return {
    name: 'pg',
    pool,
    table,
    manager: new PgLeaseManager({ pool, table }),
    async cleanup() {
      await pool.query(`DROP TABLE IF EXISTS ${table}`);
      await pool.end();
    },
  };
}

export function redisFixture(): LeaseFixture & { redis: Redis; keyPrefix: string } {
  const redis = new Redis(testEnv().redisUrl);
  const keyPrefix = `fence-test:${suffix()}:`;
  return {
    name: 'redis',
    redis,
    keyPrefix,
    manager: new RedisLeaseManager({ redis, keyPrefix }),
    async cleanup() {
      await deleteKeys(redis, keyPrefix);
      redis.disconnect();
    },
  };
}

export async function deleteKeys(redis: Redis, keyPrefix: string): Promise<void> {
  const keys = await redis.keys(`${keyPrefix}*`);
  if (keys.length > 0) await redis.del(...keys);
}

/** Memory, PostgreSQL and Redis fence guards over the same kinds of storage as the managers. */
export { MemoryFenceGuard, PgFenceGuard, RedisFenceGuard };

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
