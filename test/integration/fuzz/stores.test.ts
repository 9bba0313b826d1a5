/**
 * The PostgreSQL and Redis stores with hostile input, on real servers, for a bounded number of
 * runs: versioned stores (keys, values, contexts, options, remote states; the whole table or key
 * space compared before and after each refused call), the Redis session store (keys, states, and
 * corrupt hashes read back), and the fence guards and lease managers (resources, tokens and
 * options, checked against a model of the newest token). Every call succeeds or is refused with
 * a `CausewayError`; nothing else is thrown and nothing refused changes what is stored.
 */
import { randomBytes } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import pg from 'pg';
import request from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryVersionedStore } from '../../../adapters/memory/index.js';
import { PgFenceGuard, PgLeaseManager, PgVersionedStore } from '../../../adapters/pg/index.js';
import {
  RedisFenceGuard,
  RedisLeaseManager,
  RedisSessionStore,
  RedisVersionedStore,
} from '../../../adapters/redis/index.js';
import type { VersionedStore } from '../../../src/conflict/versioned-store.js';
import {
  DEFAULT_FENCING_TOKEN_HEADER,
  type FencedRequest,
  fenceGuard,
} from '../../../src/express.js';
import { MAX_RESOURCE_LENGTH } from '../../../src/index.js';
import { testEnv } from '../../harness/env.js';
import { assertJunkAcquireKeepsHolder, FenceModel } from '../../support/fence-fuzz.js';
import { expectTypedError, junkArb } from '../../support/junk.js';
import { assertStoreRefusesCleanly } from '../../support/store-fuzz.js';

const RUNS = 80;
const env = testEnv();
const suffix = randomBytes(4).toString('hex');
const pool = new pg.Pool({ connectionString: env.primaryUrl, max: 4 });
const redis = new Redis(env.redisUrl);
const tables: string[] = [];
const prefix = `fuzz:${suffix}:`;

afterAll(async () => {
  if (tables.length > 0) await pool.query(`DROP TABLE IF EXISTS ${tables.join(', ')}`);
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  await pool.end();
  redis.disconnect();
});

const KEYS = ['k1', 'k2', 'ключ', "it's"];

async function remoteState(handler: 'siblings' | 'lww'): Promise<string> {
  const remote = new MemoryVersionedStore<unknown>({ handler });
  await remote.put('k1', { from: 'remote' }, { actor: 'r' });
  return (await remote.getState('k1'))!;
}

/** Every key and field under `keyPrefix`, sorted. */
async function redisSnapshot(keyPrefix: string): Promise<[string, Record<string, string>][]> {
  const keys = (await redis.keys(`${keyPrefix}*`)).sort();
  return Promise.all(keys.map(async (key) => [key, await redis.hgetall(key)] as const)).then(
    (entries) => entries.map(([k, v]) => [k, v]),
  );
}

describe.each(['siblings', 'lww'] as const)(
  'versioned stores with hostile input (%s)',
  (handler) => {
    async function fuzz(store: VersionedStore<unknown>, snapshot: () => Promise<unknown>) {
      const counts = await assertStoreRefusesCleanly(store, {
        keys: KEYS,
        snapshot,
        remoteState: await remoteState(handler),
        numRuns: RUNS,
      });
      expect(counts.applied).toBeGreaterThan(0);
      expect(counts.refused).toBeGreaterThan(0);
    }

    it(`PgVersionedStore: the whole table is unchanged by a refused call (${RUNS} runs)`, async () => {
      const table = `fuzz_vs_${handler}_${suffix}`;
      tables.push(table);
      const store = new PgVersionedStore<unknown>({ pool, handler, table });
      await store.get('k1'); // creates the table
      await fuzz(store, async () => {
        const { rows } = await pool.query(`SELECT key, state FROM ${table} ORDER BY key`);
        return rows;
      });
    });

    it(`RedisVersionedStore: the whole key space is unchanged by a refused call (${RUNS} runs)`, async () => {
      const keyPrefix = `${prefix}vs:${handler}:`;
      await fuzz(new RedisVersionedStore<unknown>({ redis, handler, keyPrefix }), () =>
        redisSnapshot(keyPrefix),
      );
    });
  },
);

describe('RedisSessionStore with hostile keys, states and stored data', () => {
  const keyPrefix = `${prefix}session:`;
  const store = new RedisSessionStore({ redis, keyPrefix, timeoutMs: 2000 });
  const position = fc.record({
    stream: fc.constant('s'),
    epoch: fc.nat(3),
    lsn: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  });

  it(`set refuses a junk key or state with INVALID_INPUT and stores nothing (${RUNS} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.constantFrom('alice', 'bob'), junkArb),
        fc.oneof(
          position.map((writeFloor) => ({ id: 'u1', writeFloor })),
          junkArb,
          fc.record({ id: junkArb, writeFloor: fc.oneof(junkArb, position) }),
        ),
        async (key, state) => {
          const before = await redisSnapshot(keyPrefix);
          try {
            await store.set(key as string, state as never);
          } catch (error) {
            expectTypedError(error, ['INVALID_INPUT']);
            expect(await redisSnapshot(keyPrefix)).toEqual(before);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it(`get of a corrupt hash: a valid state or INVALID_INPUT (${RUNS} runs)`, async () => {
    const field = fc.oneof(
      fc.constant(undefined),
      fc.string({ maxLength: 20 }),
      fc.constantFrom('0', '-1', '1.5', 'ffffffffffffffff', '000000000000000g', ''),
    );
    await fc.assert(
      fc.asyncProperty(fc.tuple(field, field, field, field, field), async (values) => {
        const key = `corrupt-${randomBytes(4).toString('hex')}`;
        const fields = ['id', 's', 'e', 'w', 'r'].flatMap((name, i) =>
          values[i] === undefined ? [] : [name, values[i] as string],
        );
        if (fields.length > 0) await redis.hset(keyPrefix + key, ...fields);
        try {
          const state = await store.get(key);
          if (state !== undefined) {
            expect(typeof state.id).toBe('string');
            for (const floor of [state.writeFloor, state.readFloor]) {
              if (floor !== undefined) expect(typeof floor.lsn).toBe('bigint');
            }
          }
        } catch (error) {
          expectTypedError(error, ['INVALID_INPUT']);
        }
      }),
      { numRuns: RUNS },
    );
  });
});

describe('fence guards and lease managers with hostile arguments', () => {
  const table = `fuzz_fence_${suffix}`;
  const leaseTable = `fuzz_lease_${suffix}`;
  tables.push(table, leaseTable);
  const resourceArb = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom('r1', 'r2', "o'brien") },
    // PostgreSQL refuses NUL; both stores turn a lone surrogate into U+FFFD (a shared fence).
    { weight: 1, arbitrary: fc.constantFrom('a\u0000b', 'a\uD800', 'a\uDFFF') },
    { weight: 1, arbitrary: junkArb },
    {
      weight: 1,
      arbitrary: fc.string({
        minLength: MAX_RESOURCE_LENGTH - 1,
        maxLength: MAX_RESOURCE_LENGTH + 1,
      }),
    },
  );
  const tokenArb = fc.oneof(fc.bigInt({ min: -2n, max: 30n }), junkArb);

  for (const [name, guard, snapshot] of [
    [
      'PgFenceGuard',
      new PgFenceGuard({ pool, table }),
      async () => (await pool.query(`SELECT * FROM ${table} ORDER BY resource`)).rows,
    ],
    [
      'RedisFenceGuard',
      new RedisFenceGuard({ redis, keyPrefix: `${prefix}fence:` }),
      async () => {
        const keys = (await redis.keys(`${prefix}fence:*`)).sort();
        return Promise.all(keys.map(async (k) => [k, await redis.get(k)]));
      },
    ],
  ] as const) {
    it(`${name}: passes, STALE_FENCING_TOKEN or INVALID_INPUT as a model says (${RUNS} runs)`, async () => {
      const model = new FenceModel();
      await guard.check('r1', 0n);
      model.passed('r1', 0n);
      // Two resources that differ only in a lone surrogate would share one row or key.
      await guard.check('b\uD83D\uDE00', 5n);
      await expect(guard.check('b\uD83D', 1n)).rejects.toMatchObject({ code: 'INVALID_INPUT' });
      await fc.assert(
        fc.asyncProperty(resourceArb, tokenArb, async (resource, token) => {
          const before = await snapshot();
          try {
            await guard.check(resource as string, token as bigint);
          } catch (error) {
            expect(await snapshot()).toEqual(before);
            return model.refused(resource, token, error);
          }
          model.passed(resource, token);
        }),
        { numRuns: RUNS },
      );
    });
  }

  it(`fenceGuard over PgFenceGuard: a resource from the URL is 200, 409 or 400, never 500 (${RUNS} runs)`, async () => {
    const app = express();
    app.post(
      '/fenced/:shard',
      fenceGuard<FencedRequest & { params: Record<string, string> }>({
        guard: new PgFenceGuard({ pool, table }),
        resource: (req) => req.params['shard'] as string,
      }),
      (_req, res) => {
        res.json({ ok: true });
      },
    );
    app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
      res.status(500).json({ unexpected: String(error) });
    });
    const shardArb = fc.oneof(
      // Malformed percent-encoding is Express's own 400 (URIError), before the guard runs.
      fc.constantFrom('%00', 'a%00b', 'r1'),
      fc.string({ minLength: 1, maxLength: 10 }).map(encodeURIComponent),
    );
    await fc.assert(
      fc.asyncProperty(shardArb, fc.bigInt({ min: 0n, max: 50n }), async (shard, token) => {
        const response = await request(app)
          .post(`/fenced/${shard}`)
          .set(DEFAULT_FENCING_TOKEN_HEADER, token.toString());
        expect([200, 400, 409], JSON.stringify(response.body)).toContain(response.status);
      }),
      { numRuns: RUNS },
    );
  });

  for (const [name, leases] of [
    ['PgLeaseManager', new PgLeaseManager({ pool, table: leaseTable })],
    ['RedisLeaseManager', new RedisLeaseManager({ redis, keyPrefix: `${prefix}lease:` })],
  ] as const) {
    it(`${name}: a junk acquire is refused and the holder keeps its lease (${RUNS} runs)`, async () => {
      await assertJunkAcquireKeepsHolder(leases, { resourceArb, numRuns: RUNS });
    });
  }
});
