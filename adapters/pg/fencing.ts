import { randomUUID } from 'node:crypto';
import {
  type AcquireOptions,
  assertFencingToken,
  assertResource,
  booleanOption,
  type FenceGuard,
  knownOptions,
  type Lease,
  type LeaseManager,
  leaseNotHeld,
  resolveAcquireOptions,
  staleFencingToken,
  traceFenceCheck,
  traceLeaseAcquire,
} from '../../src/adapter-kit.js';
import {
  connectClient,
  type PgQueryable,
  type PgQueryablePool,
  quoteTable,
  resolvePool,
  TableCreator,
} from './sql.js';

/** Default table of `PgLeaseManager`. */
export const DEFAULT_PG_LEASE_TABLE = 'causeway_leases';
/** Default table of `PgFenceGuard`. */
export const DEFAULT_PG_FENCE_TABLE = 'causeway_fences';

/**
 * The lease table: one row per resource, never deleted, so `token` (the last one granted) only
 * grows. `expires_at` is by the database's clock.
 */
export function pgLeaseTableSql(table = DEFAULT_PG_LEASE_TABLE): string {
  return `CREATE TABLE IF NOT EXISTS ${quoteTable(table, 'pgLeaseTableSql')} (
  resource text PRIMARY KEY,
  holder text NOT NULL,
  token bigint NOT NULL CHECK (token > 0),
  expires_at timestamptz NOT NULL
)`;
}

/** The fence table: the newest token each guarded resource has seen. */
export function pgFenceTableSql(table = DEFAULT_PG_FENCE_TABLE): string {
  return `CREATE TABLE IF NOT EXISTS ${quoteTable(table, 'pgFenceTableSql')} (
  resource text PRIMARY KEY,
  max_token bigint NOT NULL CHECK (max_token >= 0)
)`;
}

interface PgFencingOptions {
  /** A `pg.Pool` (or anything with `query` and `connect`); the caller keeps ownership. */
  pool: PgQueryablePool;
  /**
   * Create the table on first use (`CREATE TABLE IF NOT EXISTS`, through the pool, once per
   * instance). Default: true. Set false if
   * you run `pgLeaseTableSql()` / `pgFenceTableSql()` in your own migrations.
   */
  createTable?: boolean;
}

export interface PgLeaseManagerOptions extends PgFencingOptions {
  /** Lease table, `name` or `schema.name`. Default: `causeway_leases`. */
  table?: string;
}

export interface PgFenceGuardOptions extends PgFencingOptions {
  /** Fence table, `name` or `schema.name`. Default: `causeway_fences`. */
  table?: string;
}

/** Options of `PgFenceGuard.check`. */
export interface PgFenceCheckOptions {
  /**
   * The guarded transaction's client: the check then commits or rolls back with the write.
   * Default: the pool, in a transaction of its own — that only advances the fence (useful right
   * after acquiring a lease, to shut out older holders at once); it guards no write.
   */
  client?: PgQueryable;
}

/** The options both fencing classes share, validated; `table` comes back quoted. */
function resolveFencingOptions(
  options: PgFencingOptions & { table?: string },
  owner: string,
  defaultTable: string,
  tableSql: (table: string) => string,
): { pool: PgQueryablePool; table: string; creator: TableCreator } {
  const checked = knownOptions(options, owner, ['pool', 'createTable', 'table']);
  const pool = resolvePool(checked.pool, owner);
  const createTable = booleanOption(owner, 'createTable', checked.createTable, true);
  const tableName = checked.table ?? defaultTable;
  const table = quoteTable(tableName, owner);
  return {
    pool,
    table,
    creator: new TableCreator(pool, createTable ? tableSql(tableName) : undefined),
  };
}

const EPOCH_MS = '(extract(epoch FROM expires_at) * 1000)::bigint::text AS expires_at_ms';

/**
 * Leases in a PostgreSQL table, timed by the database's clock (`clock_timestamp()`), so that
 * the application servers' clocks do not matter. Acquire, renew and release are one statement
 * each. The row of a resource is never deleted (release only expires it), so its token grows
 * across holders, releases and restarts of the database.
 */
export class PgLeaseManager implements LeaseManager {
  readonly #pool: PgQueryablePool;
  readonly #table: TableCreator;
  readonly #acquireSql: string;
  readonly #renewSql: string;
  readonly #releaseSql: string;

  constructor(options: PgLeaseManagerOptions) {
    const { pool, table, creator } = resolveFencingOptions(
      options,
      'PgLeaseManager',
      DEFAULT_PG_LEASE_TABLE,
      pgLeaseTableSql,
    );
    this.#pool = pool;
    this.#table = creator;
    // A row that is not returned is live and another holder's: the WHERE of DO UPDATE failed.
    this.#acquireSql = `INSERT INTO ${table} AS t (resource, holder, token, expires_at)
VALUES ($1, $2, 1, clock_timestamp() + $3::float8 * interval '1 millisecond')
ON CONFLICT (resource) DO UPDATE
SET holder = excluded.holder, token = t.token + 1, expires_at = excluded.expires_at
WHERE t.expires_at <= clock_timestamp() OR t.holder = excluded.holder
RETURNING token::text AS token, ${EPOCH_MS}`;
    this.#renewSql = `UPDATE ${table}
SET expires_at = clock_timestamp() + $4::float8 * interval '1 millisecond'
WHERE resource = $1 AND holder = $2 AND token = $3::bigint AND expires_at > clock_timestamp()
RETURNING ${EPOCH_MS}`;
    this.#releaseSql = `UPDATE ${table} SET expires_at = clock_timestamp()
WHERE resource = $1 AND holder = $2 AND token = $3::bigint AND expires_at > clock_timestamp()`;
  }

  acquire(resource: string, options: AcquireOptions): Promise<Lease> {
    return traceLeaseAcquire(resource, async () => {
      const { ttlMs, holder } = resolveAcquireOptions(resource, options, randomUUID);
      await this.#table.ensure();
      const { rows } = await this.#pool.query(this.#acquireSql, [resource, holder, ttlMs]);
      const row = rows[0];
      if (row === undefined) {
        throw leaseNotHeld(resource, `Lease "${resource}" is held by another holder`);
      }
      return this.#lease(resource, holder, BigInt(String(row['token'])), row, ttlMs);
    });
  }

  /** Nothing to release: the pool belongs to the caller. */
  async close(): Promise<void> {}

  #lease(
    resource: string,
    holder: string,
    token: bigint,
    row: Record<string, unknown>,
    ttlMs: number,
  ): Lease {
    const key = [resource, holder, token.toString()];
    return {
      resource,
      token,
      expiresAt: new Date(Number(row['expires_at_ms'])),
      renew: async () => {
        const { rows } = await this.#pool.query(this.#renewSql, [...key, ttlMs]);
        const renewed = rows[0];
        if (renewed === undefined) {
          throw leaseNotHeld(resource, `Lease "${resource}" expired or was taken over`);
        }
        return this.#lease(resource, holder, token, renewed, ttlMs);
      },
      release: async () => {
        await this.#pool.query(this.#releaseSql, key);
      },
    };
  }
}

/**
 * Checks fencing tokens in a PostgreSQL table, in the guarded write's own transaction: one
 * upsert that records the token unless a newer one is there. Concurrent checks of a resource
 * queue on its row lock, so of two writers the older token always loses, and a rolled-back
 * write takes its check with it. Use `write()` for the whole begin-check-write-commit pattern.
 */
export class PgFenceGuard implements FenceGuard<PgFenceCheckOptions> {
  readonly #pool: PgQueryablePool;
  readonly #table: TableCreator;
  readonly #checkSql: string;

  constructor(options: PgFenceGuardOptions) {
    const { pool, table, creator } = resolveFencingOptions(
      options,
      'PgFenceGuard',
      DEFAULT_PG_FENCE_TABLE,
      pgFenceTableSql,
    );
    this.#pool = pool;
    this.#table = creator;
    this.#checkSql = `INSERT INTO ${table} AS f (resource, max_token) VALUES ($1, $2::bigint)
ON CONFLICT (resource) DO UPDATE SET max_token = excluded.max_token
WHERE f.max_token <= excluded.max_token
RETURNING 1 AS passed`;
  }

  /**
   * Passes if `token` is at least the newest recorded for `resource` and records it, or
   * rejects with `STALE_FENCING_TOKEN`. Pass the guarded transaction's client in
   * `options.client` (and roll back on rejection) so the check commits with the write.
   */
  async check(resource: string, token: bigint, options: PgFenceCheckOptions = {}): Promise<void> {
    assertResource(resource);
    assertFencingToken(token);
    // A misspelt `client` would check outside the guarded transaction: refused.
    const { client: given } = knownOptions(options, 'PgFenceGuard.check', ['client']);
    await traceFenceCheck(resource, token, async () => {
      await this.#table.ensure();
      const client = given ?? this.#pool;
      const { rows } = await client.query(this.#checkSql, [resource, token.toString()]);
      if (rows.length === 0) throw staleFencingToken(resource, token);
    });
  }

  /**
   * The guarded write: takes a client from the pool, `BEGIN`s, checks `token`, runs `fn` with
   * the client, and `COMMIT`s — or rolls back if the token is stale (`STALE_FENCING_TOKEN`,
   * `fn` not called) or `fn` throws. Resolves to what `fn` returns.
   */
  async write<T>(
    resource: string,
    token: bigint,
    fn: (client: PgQueryable) => Promise<T>,
  ): Promise<T> {
    assertResource(resource);
    assertFencingToken(token);
    await this.#table.ensure();
    const client = await connectClient(this.#pool);
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      await this.check(resource, token, { client });
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackError: unknown) => {
        broken = rollbackError instanceof Error ? rollbackError : new Error('ROLLBACK failed');
      });
      throw error;
    } finally {
      // A client whose rollback failed is in an unknown state: passing the error makes pg drop it.
      client.release(broken);
    }
  }

  /** Nothing to release: the pool belongs to the caller. */
  async close(): Promise<void> {}
}
