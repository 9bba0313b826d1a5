import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryVersionedStore } from '../../../adapters/memory/versioned-store.js';
import { PgVersionedStore, versionedStoreSql } from '../../../adapters/pg/versioned-store.js';
import { RedisVersionedStore } from '../../../adapters/redis/versioned-store.js';
import { HybridLogicalClock } from '../../../src/clocks/hlc.js';
import { LwwRegister } from '../../../src/conflict/lww.js';
import type { VersionedStore } from '../../../src/conflict/versioned-store.js';
import { ErrorCode, isCausewayError } from '../../../src/errors.js';
import { testEnv } from '../../harness/env.js';

// Issue 11, item 5: a writer whose clock ran 10 minutes ahead stored a timestamp that every
// correctly-clocked writer then refused with CLOCK_DRIFT (20 of 20 puts and every delete).
// Now the store refuses the fast writer against its own clock (PostgreSQL clock_timestamp(),
// Redis TIME), and a timestamp already stored by a fast clock locks nobody out.

const env = testEnv();
const suffix = randomBytes(4).toString('hex');
const table = `vs_clock_${suffix}`;
const prefix = `vs-clock:${suffix}:`;
const pool = new pg.Pool({ connectionString: env.primaryUrl, max: 4 });
const redis = new Redis(env.redisUrl);
const TEN_MINUTES = 10 * 60 * 1000;

afterAll(async () => {
  await pool.query(`DROP TABLE IF EXISTS ${table}`);
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  await pool.end();
  redis.disconnect();
});

const fastClock = () =>
  new HybridLogicalClock({ nodeId: 'fast', physicalClock: () => Date.now() + TEN_MINUTES });

/** The serialized state of a write made by a clock 10 minutes ahead. */
function stateFromTheFuture(): string {
  const register = new LwwRegister<string>({ clock: fastClock() });
  register.put('from a clock 10 minutes ahead', { actor: 'fast' });
  return register.encode();
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return isCausewayError(error) ? error.code : String(error);
  }
}

interface Backend {
  store(clock?: HybridLogicalClock): VersionedStore<string>;
  /** Writes a state straight into the storage (as a store without the check once did). */
  seed(key: string, state: string): Promise<void>;
}

const backends: Record<string, Backend> = {
  PgVersionedStore: {
    store: (clock) =>
      new PgVersionedStore({ pool, table, handler: 'lww', ...(clock && { clock }) }),
    seed: async (key, state) => {
      await pool.query(versionedStoreSql(table));
      await pool.query(`INSERT INTO ${table} (key, state) VALUES ($1, $2)`, [key, state]);
    },
  },
  RedisVersionedStore: {
    store: (clock) =>
      new RedisVersionedStore({
        redis,
        keyPrefix: prefix,
        handler: 'lww',
        ...(clock && { clock }),
      }),
    seed: async (key, state) => {
      await redis.hset(prefix + key, 's', state, 'v', 'seeded');
    },
  },
};

for (const [name, backend] of Object.entries(backends)) {
  describe(`${name}: LWW writers against the storage's clock`, () => {
    it('refuses a writer 10 minutes ahead with CLOCK_DRIFT and stores nothing', async () => {
      const key = `fast-${randomBytes(4).toString('hex')}`;
      const fast = backend.store(fastClock());
      expect(await codeOf(fast.put(key, 'v', { actor: 'fast' }))).toBe(ErrorCode.CLOCK_DRIFT);
      expect(await codeOf(fast.delete(key, { actor: 'fast' }))).toBe(ErrorCode.CLOCK_DRIFT);
      expect(await fast.getState(key)).toBeUndefined();
      // A correctly-clocked writer is not refused.
      expect((await backend.store().put(key, 'v', { actor: 'right' })).values).toEqual(['v']);
    });

    it('lets 20 of 20 correctly-clocked puts and a delete through a key a fast clock wrote', async () => {
      const key = `locked-${randomBytes(4).toString('hex')}`;
      await backend.seed(key, stateFromTheFuture());
      const writers = [backend.store(), backend.store()];
      for (let i = 0; i < 20; i++) {
        const writer = writers[i % 2]!;
        const { context } = await writer.get(key);
        expect((await writer.put(key, `put ${i}`, { context, actor: `w${i % 2}` })).values).toEqual(
          [`put ${i}`],
        );
      }
      // Blind writes (no context) get through too, and so does a delete.
      expect((await writers[0]!.put(key, 'blind', { actor: 'w0' })).values).toEqual(['blind']);
      expect((await writers[1]!.delete(key, { actor: 'w1' })).deleted).toBe(true);
    });
  });
}

describe("MemoryVersionedStore: LWW writers against the store's clock", () => {
  it('refuses a writer ahead of the storageClock option', async () => {
    const store = new MemoryVersionedStore<string>({
      handler: 'lww',
      clock: fastClock(),
      storageClock: () => Date.now(),
    });
    expect(await codeOf(store.put('k', 'v', { actor: 'fast' }))).toBe(ErrorCode.CLOCK_DRIFT);
    const sameTime = new MemoryVersionedStore<string>({
      handler: 'lww',
      clock: fastClock(),
      storageClock: () => Date.now() + TEN_MINUTES,
    });
    expect((await sameTime.put('k', 'v', { actor: 'fast' })).values).toEqual(['v']);
  });
});
