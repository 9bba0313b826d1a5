import {
  AtomicVersionedStore,
  booleanOption,
  numberOption,
  type VersionedStoreOptions,
} from '../../src/adapter-kit.js';
import {
  connectClient,
  type PgQueryableClient,
  type PgQueryablePool,
  quoteTable,
  resolvePool,
  sqlState,
  TableCreator,
} from './sql.js';

export const DEFAULT_VERSIONED_STORE_TABLE = 'causeway_versioned_values';

export type PgVersionedStoreOptions = VersionedStoreOptions & {
  /** A `pg.Pool` (or anything with its `query`/`connect`) on the primary. Not ended by `close()`. */
  readonly pool: PgQueryablePool;
  /**
   * The table, optionally schema-qualified (`schema.table`); letters, digits and `_` only.
   * Default: `causeway_versioned_values`.
   */
  readonly table?: string;
  /**
   * Create the table (idempotently) on first use. Set `false` when migrations own the schema;
   * run `versionedStoreSql(table)` there. Default: `true`.
   */
  readonly createTable?: boolean;
  /**
   * How many times a transaction that failed on a deadlock or serialization error is retried
   * before the error is raised. Default: 5.
   */
  readonly maxRetries?: number;
};

/**
 * The DDL of the store's table, for teams that run their own migrations. `state` is `text`, not
 * `jsonb`: `jsonb` would refuse the NUL character inside JSON strings. A `NULL` state exists only
 * inside a transaction that is creating the key.
 */
export function versionedStoreSql(table: string = DEFAULT_VERSIONED_STORE_TABLE): string {
  return `CREATE TABLE IF NOT EXISTS ${quoteTable(table, 'versionedStoreSql')} (
  key text PRIMARY KEY,
  state text,
  updated_at timestamptz NOT NULL DEFAULT now()
)`;
}

/** SQLSTATEs worth retrying: serialization_failure, deadlock_detected. */
const RETRYABLE = new Set(['40001', '40P01']);

/**
 * A `VersionedStore` in one PostgreSQL table, one row per key. Every write is a transaction on a
 * checked-out client: the row is locked with `SELECT ... FOR UPDATE` (created first with
 * `INSERT ... ON CONFLICT DO NOTHING` when missing, so that the lock exists), the handler
 * computes the new state in this process, and the row is updated before `COMMIT`. Concurrent
 * writers to one key queue on the row lock, so none loses a write. If the handler refuses the
 * write, the transaction rolls back and the row is as it was.
 */
export class PgVersionedStore<T> extends AtomicVersionedStore<T> {
  readonly #pool: PgQueryablePool;
  readonly #table: string;
  readonly #creator: TableCreator;
  readonly #maxRetries: number;

  constructor(options: PgVersionedStoreOptions) {
    super(options, 'PgVersionedStore', ['pool', 'table', 'createTable', 'maxRetries']);
    const pool = resolvePool(options.pool, 'PgVersionedStore');
    const maxRetries = numberOption('PgVersionedStore', 'maxRetries', options.maxRetries, 5, {
      min: 0,
      integer: true,
    });
    this.#pool = pool;
    const table = options.table ?? DEFAULT_VERSIONED_STORE_TABLE;
    this.#table = quoteTable(table, 'PgVersionedStore');
    this.#creator = new TableCreator(
      pool,
      booleanOption('PgVersionedStore', 'createTable', options.createTable, true)
        ? versionedStoreSql(table)
        : undefined,
    );
    this.#maxRetries = maxRetries;
  }

  protected async load(key: string): Promise<string | undefined> {
    await this.#creator.ensure();
    const { rows } = await this.#pool.query(`SELECT state FROM ${this.#table} WHERE key = $1`, [
      key,
    ]);
    const state = rows[0]?.['state'];
    return typeof state === 'string' ? state : undefined;
  }

  protected async update<R extends { readonly state: string | undefined }>(
    key: string,
    change: (current: string | undefined, storageNow: number) => R,
  ): Promise<R> {
    await this.#creator.ensure();
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#updateOnce(key, change);
      } catch (error) {
        if (attempt >= this.#maxRetries || !RETRYABLE.has(sqlState(error) ?? '')) throw error;
      }
    }
  }

  async #updateOnce<R extends { readonly state: string | undefined }>(
    key: string,
    change: (current: string | undefined, storageNow: number) => R,
  ): Promise<R> {
    const client = await connectClient(this.#pool);
    let broken: Error | undefined;
    try {
      // READ COMMITTED whatever the server default: see #lockRow.
      await client.query('BEGIN ISOLATION LEVEL READ COMMITTED').catch((error: unknown) => {
        broken = error instanceof Error ? error : new Error(String(error));
        throw error;
      });
      try {
        const { state, storageNow } = await this.#lockRow(client, key);
        const result = change(state, storageNow);
        if (result.state === undefined) {
          await client.query(`DELETE FROM ${this.#table} WHERE key = $1`, [key]);
        } else {
          await client.query(
            `UPDATE ${this.#table} SET state = $2, updated_at = now() WHERE key = $1`,
            [key, result.state],
          );
        }
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch((rollbackError: unknown) => {
          broken =
            rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
        });
        throw error;
      }
    } finally {
      client.release(broken);
    }
  }

  /**
   * Locks the key's row, creating it (with a `NULL` state) when missing so that there is a row
   * to lock, and returns its state. Under READ COMMITTED each statement sees rows committed
   * while it waited, so a concurrent creator's row is found by the next SELECT; a loop covers
   * the row being purged in between. The database's clock comes with the row, read once the
   * lock is held.
   */
  async #lockRow(
    client: PgQueryableClient,
    key: string,
  ): Promise<{ state: string | undefined; storageNow: number }> {
    const lockSql = `SELECT state, (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now
      FROM ${this.#table} WHERE key = $1 FOR UPDATE`;
    for (let attempt = 0; attempt < 3; attempt++) {
      const { rows } = await client.query(lockSql, [key]);
      const row = rows[0];
      if (row !== undefined) {
        const state = row['state'];
        return {
          state: typeof state === 'string' ? state : undefined,
          storageNow: Number(row['now']),
        };
      }
      await client.query(
        `INSERT INTO ${this.#table} (key, state) VALUES ($1, NULL) ON CONFLICT (key) DO NOTHING`,
        [key],
      );
    }
    throw new Error(`the row of a key in ${this.#table} keeps being deleted concurrently`);
  }

  /** Nothing to release: the pool belongs to the caller. */
  async close(): Promise<void> {}
}
