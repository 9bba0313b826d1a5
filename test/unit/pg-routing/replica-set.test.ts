import fc from 'fast-check';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { formatLsn, PgReplicaSet, parseLsn } from '../../../adapters/pg/replica-set.js';
import { createReplicatedPool } from '../../../adapters/pg/replicated-pool.js';
import { codeOf } from '../../support/errors.js';

// Nothing here connects: polling is off and no query runs (ports are never dialled).
const URL = 'postgres://postgres@127.0.0.1:9/none';

describe('LSNs', () => {
  it('parses PostgreSQL text LSNs as (hi << 32) | lo', () => {
    expect(parseLsn('0/0')).toBe(0n);
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n);
    expect(parseLsn('ffffffff/ffffffff')).toBe(2n ** 64n - 1n);
  });

  it('round-trips through formatLsn and keeps the order', () => {
    const lsn = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    fc.assert(
      fc.property(lsn, lsn, (a, b) => {
        expect(parseLsn(formatLsn(a))).toBe(a);
        expect(a < b).toBe(parseLsn(formatLsn(a)) < parseLsn(formatLsn(b)));
      }),
    );
  });

  it('refuses malformed text with INVALID_INPUT', () => {
    for (const bad of ['', '0', '0/', '/0', 'g/0', '1/2/3', '123456789/0', ' 0/0']) {
      expect(
        codeOf(() => parseLsn(bad)),
        bad,
      ).toBe('INVALID_INPUT');
    }
  });
});

describe('options', () => {
  it('names nodes primary, replica-1, ... unless told otherwise', async () => {
    const own = new pg.Pool({ connectionString: URL });
    const set = new PgReplicaSet({
      primary: { pool: own },
      replicas: [URL, { name: 'reports', config: { connectionString: URL } }],
      pollIntervalMs: 0,
    });
    expect(set.nodeNames).toEqual(['primary', 'replica-1', 'reports']);
    expect(set.pool('primary')).toBe(own);
    // Replicas are not trusted before their first check; the leader always is.
    const { leader, replicas } = set.snapshot();
    expect(leader.healthy).toBe(true);
    expect(replicas.every((r) => !r.healthy && r.position === undefined)).toBe(true);
    expect(await set.waitFor('nobody', { stream: 's', epoch: 1, lsn: 1n }, 10)).toBe(false);
    await set.close();
    // A pool passed in stays open (it can still be ended by its owner).
    expect(own.ending).toBe(false);
    await own.end();
  });

  it('refuses bad options with CONFIG', () => {
    const bad: unknown[] = [
      undefined,
      {},
      { primary: URL },
      { primary: URL, replicas: [URL], pollIntervalMs: -1 },
      { primary: URL, replicas: [], pollJitter: 1 },
      { primary: URL, replicas: [], maxLagBytes: Number.NaN },
      { primary: URL, replicas: [{ name: 'primary', config: URL }] },
      // A hole in a sparse array is a missing replica, not one map() skips.
      { primary: URL, replicas: new Array(1) },
      { primary: 42, replicas: [] },
      { primary: { pool: {} }, replicas: [] },
    ];
    for (const options of bad) {
      expect(
        codeOf(() => new PgReplicaSet(options as never)),
        JSON.stringify(options),
      ).toBe('CONFIG');
    }
    expect(codeOf(() => createReplicatedPool({ replicas: [] }))).toBe('CONFIG');
    expect(
      codeOf(() =>
        createReplicatedPool({
          primary: URL,
          replicas: [],
          readOutsideSession: 'sometimes' as never,
          replicaSetOptions: { pollIntervalMs: 0 },
        }),
      ),
    ).toBe('CONFIG');
  });

  it('takes pg Pools as they are and leaves them open; a primary pool lends its options', async () => {
    const primary = new pg.Pool({ connectionString: URL });
    const replica = new pg.Pool({ connectionString: URL });
    const pool = createReplicatedPool({
      primary,
      replicas: [{ name: 'reports', pool: replica }],
      replicaSetOptions: { pollIntervalMs: 0 },
    });
    // The replicated pool is the primary's pg.Pool, built from the options of the one given.
    expect(pool).toBeInstanceOf(pg.Pool);
    expect(pool.replicaSet.pool('primary')).toBe(pool);
    expect(pool.options.connectionString).toBe(URL);
    expect(pool.replicaSet.pool('reports')).toBe(replica);
    await pool.end();
    expect(primary.ending || replica.ending).toBe(false);
    await Promise.all([primary.end(), replica.end()]);
  });

  it('shares a replica set passed in and leaves it open on end()', async () => {
    const set = new PgReplicaSet({ primary: URL, replicas: [URL], pollIntervalMs: 0 });
    const pool = createReplicatedPool({ replicaSet: set, router: { level: 'monotonic' } });
    expect(pool.replicaSet).toBe(set);
    expect(pool.router.level).toBe('monotonic');
    expect(pool.totalCount).toBe(0);
    await pool.end();
    expect(pool.ended).toBe(true);
    expect(pool.ending).toBe(true);
    await expect(pool.end()).rejects.toThrow(/more than once/);
    expect(set.pool('primary')).toBeDefined();
    await set.close();
  });
});

describe('a primary given as a list of candidates', () => {
  const at = (port: number, database = 'none') =>
    `postgres://postgres@127.0.0.1:${port}/${database}`;
  const refusal = (options: Record<string, unknown>) => {
    try {
      new PgReplicaSet({ replicas: [], pollIntervalMs: 0, ...options } as never);
    } catch (error) {
      return error as { code?: string; message: string };
    }
    return undefined;
  };

  it('refuses an empty list, a non-URL entry, another database, a host named twice', () => {
    const cases: [unknown, RegExp][] = [
      [[], /must not be empty/],
      [[at(9), 42], /URLs or \{ config \}/],
      [[at(9), at(10, 'other')], /one user and database/],
      [[at(9), at(9)], /names 127\.0\.0\.1:9 twice/],
    ];
    for (const [primary, message] of cases) {
      const error = refusal({ primary });
      expect(error?.code, String(primary)).toBe('CONFIG');
      expect(error?.message).toMatch(/PgReplicaSet: primary/);
      expect(error?.message).toMatch(message);
    }
  });

  it('refuses replicas that are neither a list nor a function, and a bad failoverPollIntervalMs', () => {
    expect(refusal({ primary: [at(9)], replicas: 'x' })?.message).toMatch(/replicas must be/);
    for (const bad of [-1, Number.NaN, '100']) {
      const error = refusal({ primary: [at(9)], failoverPollIntervalMs: bad });
      expect(error?.code).toBe('CONFIG');
      expect(error?.message).toMatch(/failoverPollIntervalMs/);
    }
  });

  it("names the leader 'primary' and opens nothing until used", async () => {
    const set = new PgReplicaSet({
      primary: [at(9), { config: { connectionString: at(10) } }],
      replicas: () => [at(11)],
      pollIntervalMs: 0,
    });
    expect(set.nodeNames).toEqual(['primary']);
    expect(set.connectionConfig('primary')?.connectionString).toBe(at(9));
    await set.close();
    const pool = createReplicatedPool({ primary: [at(9), at(10)], replicas: () => [] });
    expect(pool.replicaSet.nodeNames).toEqual(['primary']);
    expect(pool.totalCount).toBe(0);
    await pool.end();
  });
});
