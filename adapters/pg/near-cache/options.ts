// The near cache's options, validated once at construction (`CONFIG` errors).
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import {
  type ConsistencyLevel,
  configError,
  knownOptions,
  numberOption,
  validateLevel,
} from '../../../src/adapter-kit.js';
import { isQueryablePool, type PgQueryablePool, quoteTable } from '../sql.js';
import { clientConfig } from './replication.js';
import type { TableRequest } from './schema.js';

/** A table to cache: its name (`'table'` or `'schema.table'`) and secondary indexes to keep. */
export interface NearCacheTableOption {
  readonly name: string;
  /** Index name to the columns it looks up, e.g. `{ bySlug: ['slug'] }`. Default none. */
  readonly indexes?: Readonly<Record<string, readonly string[]>>;
}

export interface NearCacheOptions {
  /**
   * The primary, as a URL or a `pg` client configuration: the cache opens a replication
   * connection (the role needs `REPLICATION`, the server `wal_level = logical`) and a normal one.
   * Required.
   */
  primary: string | pg.ClientConfig;
  /**
   * Where reads the cache cannot answer go, in the caller's session: a `ReplicatedPool` (the
   * router picks a replica that has reached the session's floor, or the primary) or a `pg.Pool`
   * on the primary. Not ended by `close()`. Required.
   */
  pool: PgQueryablePool;
  /** Tables to cache (names or `{ name, indexes }`). Default: every table of `publication`. */
  tables?: readonly (string | NearCacheTableOption)[];
  /**
   * An existing publication to stream (it must publish insert, update, delete and truncate,
   * without row filters). Default: the cache creates one for `tables`, named after the slot, and
   * drops it on `close()`.
   */
  publication?: string;
  /**
   * The logical replication slot's name. Default `causeway_near_cache_` and 8 random hex digits.
   * One cache per slot: a re-snapshot drops the slot of that name, ending whoever streams it.
   */
  slotName?: string;
  /** Level of reads outside any session. Default `'eventual'` (answered from memory). */
  level?: ConsistencyLevel;
  /**
   * Longest wait, in milliseconds, for the cache to apply a session's floor before the read goes
   * to the pool. Default 50: the stream usually delivers a commit within a few milliseconds, and
   * past that a replica or the primary answers in about a round trip.
   */
  waitTimeoutMs?: number;
  /** Most rows (all tables) the cache holds; a snapshot or stream beyond it is refused. Default 1,000,000. */
  maxRows?: number;
  /**
   * Most bytes of V8 heap a snapshot's load may add (measured with `getHeapStatistics`), and the
   * limit on rows × measured bytes per row while streaming. Default 512 MiB.
   */
  maxBytes?: number;
  /** Milliseconds before the first re-snapshot after the cache went stale (doubling up to 30 s). Default 1000. */
  retryDelayMs?: number;
  /** Milliseconds between checks of the slot (lost, lag) and the primary's history. Default 5000; 0 disables. */
  slotCheckIntervalMs?: number;
}

export interface ResolvedNearCacheOptions {
  readonly connection: pg.ClientConfig;
  readonly pool: PgQueryablePool;
  readonly tables: readonly TableRequest[] | undefined;
  readonly publication: string | undefined;
  readonly slotName: string;
  readonly level: ConsistencyLevel;
  readonly waitTimeoutMs: number;
  readonly maxRows: number;
  readonly maxBytes: number;
  readonly retryDelayMs: number;
  readonly slotCheckIntervalMs: number;
}

const NEAR_CACHE_OPTION_KEYS = [
  'primary',
  'pool',
  'tables',
  'publication',
  'slotName',
  'level',
  'waitTimeoutMs',
  'maxRows',
  'maxBytes',
  'retryDelayMs',
  'slotCheckIntervalMs',
] as const satisfies readonly (keyof NearCacheOptions)[];

const SLOT_NAME = /^[a-z0-9_]{1,63}$/;
const PUBLICATION_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export function resolveOptions(given: NearCacheOptions): ResolvedNearCacheOptions {
  const options = knownOptions(given, 'NearCache', NEAR_CACHE_OPTION_KEYS);
  if (
    typeof options.primary !== 'string' &&
    (typeof options.primary !== 'object' || options.primary === null)
  ) {
    throw configError('NearCache: primary must be a URL or a pg client configuration');
  }
  if (!isQueryablePool(options.pool)) {
    throw configError(
      'NearCache: pool must be a ReplicatedPool or a pg Pool (with query and connect)',
    );
  }
  if (options.tables === undefined && options.publication === undefined) {
    throw configError('NearCache needs tables, a publication, or both');
  }
  const publication = options.publication;
  if (
    publication !== undefined &&
    (typeof publication !== 'string' || !PUBLICATION_NAME.test(publication))
  ) {
    throw configError('NearCache: publication must be a name of letters, digits and underscores', {
      publication: typeof publication === 'string' ? publication : typeof publication,
    });
  }
  const slotName = options.slotName ?? `causeway_near_cache_${randomBytes(4).toString('hex')}`;
  if (typeof slotName !== 'string' || !SLOT_NAME.test(slotName)) {
    throw configError(
      'NearCache: slotName must be 1 to 63 lower-case letters, digits or underscores',
      {
        slotName: typeof slotName === 'string' ? slotName : typeof slotName,
      },
    );
  }
  return {
    connection: clientConfig(options.primary),
    pool: options.pool,
    tables: options.tables === undefined ? undefined : resolveTables(options.tables),
    publication,
    slotName,
    level: options.level === undefined ? 'eventual' : validateLevel(options.level, 'level'),
    waitTimeoutMs: nonNegative('waitTimeoutMs', options.waitTimeoutMs, 50),
    maxRows: nonNegative('maxRows', options.maxRows, 1_000_000),
    maxBytes: nonNegative('maxBytes', options.maxBytes, 512 * 1024 * 1024),
    retryDelayMs: nonNegative('retryDelayMs', options.retryDelayMs, 1000),
    slotCheckIntervalMs: nonNegative('slotCheckIntervalMs', options.slotCheckIntervalMs, 5000),
  };
}

function resolveTables(tables: readonly (string | NearCacheTableOption)[]): TableRequest[] {
  if (!Array.isArray(tables) || tables.length === 0) {
    throw configError('NearCache: tables must be a non-empty array');
  }
  const seen = new Set<string>();
  return Array.from(tables, (table) => {
    const request: TableRequest =
      typeof table === 'string'
        ? { name: table, indexes: {} }
        : { name: table?.name, indexes: table?.indexes ?? {} };
    // Checked like every adapter's table names: letters, digits and `_`, optionally schema-qualified.
    quoteTable(request.name, 'NearCache');
    if (typeof request.indexes !== 'object' || request.indexes === null) {
      throw configError(`NearCache: indexes of table '${request.name}' must be an object`, {
        table: request.name,
      });
    }
    if (seen.has(request.name)) {
      throw configError(`NearCache: table '${request.name}' is listed twice`, {
        table: request.name,
      });
    }
    seen.add(request.name);
    return request;
  });
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  return numberOption('NearCache', name, value, fallback, { min: 0 });
}
