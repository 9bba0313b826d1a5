// The pieces every PostgreSQL adapter shares: the structural driver types, table-name quoting,
// SQLSTATE reading, pool validation and creating a table once. Internal: the barrel re-exports
// only the types.
import { configError } from '../../src/adapter-kit.js';

/** One result of the `pg` driver, as far as Causeway reads it. */
export interface PgRowsResult {
  rows: Record<string, unknown>[];
  rowCount?: number | null;
  /** The statement's command tag (`'SELECT'`, `'PREPARE'`, ...). */
  command?: string;
}

/** Anything that runs a query: a `pg.Pool` or a checked-out `pg` client. */
export interface PgQueryable {
  query(text: string, values?: unknown[]): Promise<PgRowsResult>;
}

/** A checked-out `pg` client (`pg.PoolClient` fits). */
export interface PgQueryableClient extends PgQueryable {
  /** Passing an error (or `true`) tells the pool to discard the connection. */
  release(error?: Error | boolean): void;
  /** `pg` clients are event emitters: see `connectClient`. */
  on?(event: 'error', listener: (error: Error) => void): unknown;
  removeListener?(event: 'error', listener: (error: Error) => void): unknown;
}

/** The part of a `pg.Pool` the adapters use (a `pg.Pool` fits). */
export interface PgQueryablePool extends PgQueryable {
  connect(): Promise<PgQueryableClient>;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Quotes `table` or `schema.table`, each part letters, digits and `_`; else `CONFIG`. */
export function quoteTable(table: unknown, owner: string): string {
  const parts = typeof table === 'string' ? table.split('.') : [];
  if (parts.length < 1 || parts.length > 2 || !parts.every((part) => IDENTIFIER.test(part))) {
    throw configError(
      `${owner}: table must be "name" or "schema.name" of letters, digits and underscores`,
      { table: typeof table === 'string' ? table : typeof table },
    );
  }
  return parts.map((part) => `"${part}"`).join('.');
}

/** The SQLSTATE of a `pg` error, if any. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Takes a connection's `'error'` event while it is checked out; see `connectClient`. */
function ignoreConnectionError(): void {}

/**
 * Checks out a client for a transaction or a statement followed by a position read on the same
 * connection (the replicated pool). When the server goes away (a restart, a crash), `pg`
 * emits `'error'` on every client connected to it, even one whose query it just failed, and
 * `pg.Pool` listens only on idle clients: an unheard `'error'` event would end the process. So
 * a listener takes it until `release()`. The failure still reaches the caller through the
 * statement that fails, and the pool discards the broken client on release.
 */
export async function connectClient<C extends PgQueryableClient = PgQueryableClient>(pool: {
  connect(): Promise<C>;
}): Promise<C> {
  const client = await pool.connect();
  if (typeof client.on !== 'function' || typeof client.removeListener !== 'function') {
    return client;
  }
  client.on('error', ignoreConnectionError);
  const release = client.release;
  client.release = (error) => {
    client.removeListener?.('error', ignoreConnectionError);
    release.call(client, error);
  };
  return client;
}

/** Whether `value` has the `query` and `connect` of a `pg.Pool`. */
export function isQueryablePool(value: unknown): value is PgQueryablePool {
  const candidate = value as Partial<PgQueryablePool> | null | undefined;
  return typeof candidate?.query === 'function' && typeof candidate.connect === 'function';
}

/** `pool` if it looks like a `pg.Pool`, else `CONFIG`. */
export function resolvePool<P extends PgQueryablePool>(pool: P | undefined, owner: string): P {
  if (!isQueryablePool(pool)) {
    throw configError(`${owner}: pool must be a pg Pool (with query and connect)`);
  }
  return pool;
}

/**
 * SQLSTATEs of a concurrent `CREATE TABLE IF NOT EXISTS` that lost the race in the catalog
 * (unique violation, duplicate table, or duplicate object for the table's row type): the table
 * exists.
 */
const ALREADY_CREATED = new Set(['23505', '42P07', '42710']);

/**
 * Runs a `CREATE TABLE IF NOT EXISTS` once per instance, on first use. Two sessions creating the
 * same table at once can still collide in the catalog (23505/42P07/42710); the table exists then,
 * which is all we need. A failure is not cached, so the next call tries again.
 */
export class TableCreator {
  readonly #pool: PgQueryable;
  readonly #sql: string | undefined;
  #creating: Promise<void> | undefined;
  /** True once the table exists (or creating it is off), so callers may skip even the await. */
  ready: boolean;

  /** `sql` undefined: creating the table is off (migrations own it). */
  constructor(pool: PgQueryable, sql: string | undefined) {
    this.#pool = pool;
    this.#sql = sql;
    this.ready = sql === undefined;
  }

  ensure(): Promise<void> {
    if (this.ready || this.#sql === undefined) return Promise.resolve();
    this.#creating ??= this.#pool.query(this.#sql).then(
      () => {
        this.ready = true;
      },
      (error: unknown) => {
        if (ALREADY_CREATED.has(sqlState(error) ?? '')) {
          this.ready = true;
          return;
        }
        this.#creating = undefined;
        throw error;
      },
    );
    return this.#creating;
  }
}
