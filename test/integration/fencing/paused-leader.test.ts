import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCausewayError } from '../../../src/errors.js';
import type { LeaseManager } from '../../../src/fencing/token.js';
import {
  deleteKeys,
  PgFenceGuard,
  pgFixture,
  RedisFenceGuard,
  redisFixture,
  sleep,
  suffix,
} from './fixtures.js';

/** A guarded store: writes one value per resource, each write fenced in the store itself. */
interface GuardedStore {
  readonly manager: LeaseManager;
  /** Advances the fence to `token` on its own (what a new leader does right after acquiring). */
  fence(resource: string, token: bigint): Promise<void>;
  write(resource: string, token: bigint, value: string): Promise<void>;
  read(resource: string): Promise<string | undefined>;
}

const pg = pgFixture();
const redis = redisFixture();
const dataTable = `fence_data_${suffix()}`;
const fenceTable = `fence_fences_${suffix()}`;
const pgGuard = new PgFenceGuard({ pool: pg.pool, table: fenceTable });
const redisGuard = new RedisFenceGuard({ redis: redis.redis, keyPrefix: redis.keyPrefix });

const stores: [string, GuardedStore][] = [
  [
    'PostgreSQL (check and UPDATE in one transaction)',
    {
      manager: pg.manager,
      fence: (resource, token) => pgGuard.check(resource, token),
      write: (resource, token, value) =>
        pgGuard.write(resource, token, async (client) => {
          await client.query(
            `INSERT INTO ${dataTable} (resource, value) VALUES ($1, $2)
             ON CONFLICT (resource) DO UPDATE SET value = excluded.value`,
            [resource, value],
          );
        }),
      read: async (resource) => {
        const { rows } = await pg.pool.query(`SELECT value FROM ${dataTable} WHERE resource = $1`, [
          resource,
        ]);
        return rows[0]?.value;
      },
    },
  ],
  [
    'Redis (check and SET in one script)',
    {
      manager: redis.manager,
      fence: (resource, token) => redisGuard.check(resource, token),
      write: (resource, token, value) =>
        redisGuard.setIfCurrent(resource, token, `${redis.keyPrefix}{${resource}}:data`, value),
      read: async (resource) =>
        (await redis.redis.get(`${redis.keyPrefix}{${resource}}:data`)) ?? undefined,
    },
  ],
];

beforeAll(async () => {
  await pg.pool.query(`CREATE TABLE ${dataTable} (resource text PRIMARY KEY, value text)`);
});
afterAll(async () => {
  await pg.pool.query(`DROP TABLE IF EXISTS ${dataTable}, ${fenceTable}`);
  await deleteKeys(redis.redis, redis.keyPrefix);
  await Promise.all([pg.cleanup(), redis.cleanup()]);
});

async function expectStale(promise: Promise<unknown>): Promise<void> {
  const outcome = await promise.then(
    () => 'written',
    (error: unknown) => (isCausewayError(error, 'STALE_FENCING_TOKEN') ? 'stale' : error),
  );
  expect(outcome).toBe('stale');
}

describe.each(stores)('a paused leader on %s', (_name, store) => {
  const TTL = 60;

  it('cannot overwrite the new leader once it wakes, in any interleaving', async () => {
    const scenario = fc.record({
      oldWritesBeforePause: fc.integer({ min: 0, max: 2 }),
      newWrites: fc.integer({ min: 1, max: 3 }),
      // With the fence advanced at takeover, the old leader's write may even race the new one's.
      fenceAtTakeover: fc.boolean(),
      lateWriteRacesNewWrite: fc.boolean(),
      lateWrites: fc.integer({ min: 1, max: 3 }),
    });
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const resource = `leader-${suffix()}`;
        const old = await store.manager.acquire(resource, { ttlMs: TTL, holder: 'old' });
        for (let i = 0; i < s.oldWritesBeforePause; i++) {
          await store.write(resource, old.token, `old-${i}`);
        }
        // The pause: a GC stall or a stopped VM, longer than the lease.
        await sleep(TTL + 40);
        const next = await store.manager.acquire(resource, { ttlMs: 10_000, holder: 'new' });
        expect(next.token).toBeGreaterThan(old.token);
        if (s.fenceAtTakeover) await store.fence(resource, next.token);

        const newWrites = async () => {
          for (let i = 0; i < s.newWrites; i++) await store.write(resource, next.token, `new-${i}`);
        };
        const lateWrites = async () => {
          for (let i = 0; i < s.lateWrites; i++) {
            await expectStale(store.write(resource, old.token, `late-${i}`));
          }
        };
        if (s.fenceAtTakeover && s.lateWriteRacesNewWrite) {
          await Promise.all([newWrites(), lateWrites()]);
        } else {
          await newWrites();
          await lateWrites();
        }
        expect(await store.read(resource)).toBe(`new-${s.newWrites - 1}`);
      }),
      { numRuns: 12 },
    );
  });

  it('a late write of the old leader under heavy concurrency never lands', async () => {
    const resource = `leader-${suffix()}`;
    const old = await store.manager.acquire(resource, { ttlMs: TTL, holder: 'old' });
    await sleep(TTL + 40);
    const next = await store.manager.acquire(resource, { ttlMs: 10_000, holder: 'new' });
    await store.fence(resource, next.token);
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        i % 2 === 0
          ? store.write(resource, old.token, `late-${i}`)
          : store.write(resource, next.token, 'new'),
      ),
    );
    results.forEach((result, i) => {
      if (i % 2 === 0) {
        expect(result.status).toBe('rejected');
        expect(
          isCausewayError((result as PromiseRejectedResult).reason, 'STALE_FENCING_TOKEN'),
        ).toBe(true);
      } else {
        expect(result.status).toBe('fulfilled');
      }
    });
    expect(await store.read(resource)).toBe('new');
  });
});
