import { CausewayError, configError, ErrorCode, invalidInput } from '../../src/errors.js';
import { MAX_GID_BYTES } from '../../src/txn/gid.js';

/** One result of the `pg` driver (an array of them for a multi-statement simple query). */
export interface PgTxnQueryResult {
  rows: Record<string, unknown>[];
  rowCount?: number | null;
  command?: string;
}

/** The part of a `pg` client (or pool) the 2PC adapters use. */
export interface PgTxnQueryable {
  query(text: string, values?: unknown[]): Promise<PgTxnQueryResult | PgTxnQueryResult[]>;
}

/** The part of a checked-out `pg` client the 2PC adapters use. */
export interface PgTxnClient extends PgTxnQueryable {
  release(error?: Error | boolean): void;
}

/** The part of a `pg.Pool` the 2PC adapters use. `options.max` is the pool's size. */
export interface PgTxnPool extends PgTxnQueryable {
  connect(): Promise<PgTxnClient>;
  options?: { max?: number };
}

/** The single result of a single-statement query. */
export function single(result: PgTxnQueryResult | PgTxnQueryResult[]): PgTxnQueryResult {
  return Array.isArray(result) ? result[result.length - 1]! : result;
}

/** The SQLSTATE of a `pg` error, if any. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function resolvePgTxnPool(pool: unknown, owner: string): PgTxnPool {
  const candidate = pool as Partial<PgTxnPool> | undefined;
  if (typeof candidate?.query !== 'function' || typeof candidate.connect !== 'function') {
    throw configError(`${owner}: pool must be a pg Pool (with query and connect)`);
  }
  return candidate as PgTxnPool;
}

const GID_LITERAL = /^[A-Za-z0-9_.:-]+$/;

/**
 * A gid as an SQL string literal (`PREPARE TRANSACTION` and friends take no parameters). Only
 * the characters Causeway's gids use are allowed, so nothing can escape the quotes.
 */
export function gidLiteral(gid: string): string {
  if (typeof gid !== 'string' || !GID_LITERAL.test(gid) || Buffer.byteLength(gid) > MAX_GID_BYTES) {
    throw invalidInput(
      `a gid must be 1 to ${MAX_GID_BYTES} bytes of letters, digits, "_", ".", ":" and "-"`,
    );
  }
  return `'${gid}'`;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Quotes `table` or `schema.table`, each part letters, digits and `_`; else `CONFIG`. */
export function quotePgTable(table: unknown, owner: string): string {
  const parts = typeof table === 'string' ? table.split('.') : [];
  if (parts.length < 1 || parts.length > 2 || !parts.every((part) => IDENTIFIER.test(part))) {
    throw configError(
      `${owner}: table must be "name" or "schema.name" of letters, digits and underscores`,
      { table: String(table) },
    );
  }
  return parts.map((part) => `"${part}"`).join('.');
}

/** A PostgreSQL error at PREPARE as `TXN_ABORTED`, keeping the SQLSTATE. */
export function prepareRefused(error: unknown): CausewayError {
  const message = error instanceof Error ? error.message : String(error);
  return new CausewayError(ErrorCode.TXN_ABORTED, `PostgreSQL did not prepare: ${message}`, {
    cause: error,
    details: { sqlstate: sqlState(error) },
  });
}
