// What the near cache knows about each cached table, read from the catalog once per snapshot,
// and the checks that turn a table the cache cannot mirror faithfully into a `CONFIG` error.
import { configError } from '../../../src/adapter-kit.js';
import type { PgQueryable } from '../sql.js';

export interface CachedColumn {
  readonly name: string;
  /** `pg_type.oid`: the stream's relation message must report the same type. */
  readonly typeOid: number;
}

/** One cached table, as the catalog described it when the cache took its snapshot. */
export interface CachedTableSchema {
  /** The name repository code uses (`cache.table(name)`): as configured, or as published. */
  readonly name: string;
  /** `pg_class.oid`: pgoutput names relations by it. */
  readonly oid: number;
  readonly schemaName: string;
  readonly tableName: string;
  /** `"schema"."table"`, quoted for SQL. */
  readonly sql: string;
  readonly columns: readonly CachedColumn[];
  readonly primaryKey: readonly string[];
  /** Declared secondary indexes: name to columns. */
  readonly indexes: ReadonlyMap<string, readonly string[]>;
}

/** A table the caller asked for: its name and the indexes to keep. */
export interface TableRequest {
  readonly name: string;
  readonly indexes: Readonly<Record<string, readonly string[]>>;
}

// Types whose `pg` parsers return immutable values or plain objects and arrays that the cache
// freezes. bytea (a Buffer, which cannot be frozen) and composite, range and other types are
// refused: a row handed out must not be a way to change the cache.
const SUPPORTED_TYPES: ReadonlySet<string> = new Set([
  'bool',
  'int2',
  'int4',
  'int8',
  'oid',
  'float4',
  'float8',
  'numeric',
  'text',
  'varchar',
  'bpchar',
  'char',
  'name',
  'uuid',
  'json',
  'jsonb',
  'date',
  'time',
  'timetz',
  'timestamp',
  'timestamptz',
  'interval',
]);

const TABLE_SQL = `SELECT c.oid::int8 AS oid, n.nspname AS schema_name, c.relname AS table_name,
  c.relkind::text AS relkind, c.relreplident::text AS replica_identity,
  (SELECT array_agg(a.attname::text ORDER BY k.ord)
     FROM pg_index i CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = c.oid AND i.indisprimary) AS primary_key
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass($1)`;

const COLUMNS_SQL = `SELECT a.attname::text AS name, a.atttypid::int AS type_oid, t.typname::text AS type_name,
  t.typtype::text AS type_kind, a.attgenerated::text AS generated,
  et.typname::text AS element_name, et.typtype::text AS element_kind
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`;

const PUBLICATION_SQL = `SELECT p.pubinsert AND p.pubupdate AND p.pubdelete AND p.pubtruncate AS all_changes,
  (SELECT coalesce(json_agg(json_build_object('schema', t.schemaname::text, 'table', t.tablename::text,
     'filtered', t.rowfilter IS NOT NULL)), '[]'::json) FROM pg_publication_tables t WHERE t.pubname = p.pubname) AS tables
FROM pg_publication p WHERE p.pubname = $1`;

function supported(kind: string, name: string): boolean {
  return kind === 'e' || SUPPORTED_TYPES.has(name);
}

/** Reads one table's schema; every reason the cache cannot mirror it is a `CONFIG` error. */
export async function describeTable(
  db: PgQueryable,
  request: TableRequest,
): Promise<CachedTableSchema> {
  const { name } = request;
  const found = (await db.query(TABLE_SQL, [name])).rows[0];
  if (found === undefined || (found['relkind'] !== 'r' && found['relkind'] !== 'p')) {
    throw configError(`NearCache: table '${name}' does not exist (or is not a table)`, {
      table: name,
    });
  }
  const primaryKey = found['primary_key'];
  if (!Array.isArray(primaryKey) || primaryKey.length === 0) {
    throw configError(`NearCache: table '${name}' has no primary key`, { table: name });
  }
  const identity = found['replica_identity'];
  if (identity !== 'd' && identity !== 'f') {
    // NOTHING sends no key with deletes; USING INDEX keys them by another index than the
    // primary key the cache is keyed by.
    throw configError(
      `NearCache: table '${name}' needs REPLICA IDENTITY DEFAULT (its primary key) or FULL`,
      { table: name },
    );
  }
  const columnRows = (await db.query(COLUMNS_SQL, [String(found['oid'])])).rows;
  const columns: CachedColumn[] = [];
  for (const row of columnRows) {
    const column = String(row['name']);
    if (row['generated'] !== '') {
      // pgoutput in PostgreSQL 15 does not send generated columns: the stream could not keep them.
      throw configError(`NearCache: table '${name}' has a generated column '${column}'`, {
        table: name,
        column,
      });
    }
    const ok =
      row['element_name'] === null
        ? supported(String(row['type_kind']), String(row['type_name']))
        : supported(String(row['element_kind']), String(row['element_name']));
    if (!ok) {
      throw configError(
        `NearCache: table '${name}' column '${column}' has an unsupported type '${String(row['type_name'])}'`,
        { table: name, column, type: String(row['type_name']) },
      );
    }
    columns.push({ name: column, typeOid: Number(row['type_oid']) });
  }
  const columnNames = new Set(columns.map((column) => column.name));
  const indexes = new Map<string, readonly string[]>();
  for (const [index, indexColumns] of Object.entries(request.indexes)) {
    if (
      !Array.isArray(indexColumns) ||
      indexColumns.length === 0 ||
      !indexColumns.every((column) => typeof column === 'string' && columnNames.has(column))
    ) {
      throw configError(
        `NearCache: index '${index}' of table '${name}' must list columns of the table`,
        { table: name, index },
      );
    }
    indexes.set(index, [...indexColumns]);
  }
  const schemaName = String(found['schema_name']);
  const tableName = String(found['table_name']);
  return {
    name,
    oid: Number(found['oid']),
    schemaName,
    tableName,
    sql: `${quoteIdentifier(schemaName)}.${quoteIdentifier(tableName)}`,
    columns,
    primaryKey: primaryKey.map(String),
    indexes,
  };
}

/**
 * The tables of an existing publication, as `schema.table`. It must publish inserts, updates,
 * deletes and truncates of whole rows (no row filter), or the cache would drift from its snapshot.
 */
export async function publicationTables(db: PgQueryable, publication: string): Promise<string[]> {
  const found = (await db.query(PUBLICATION_SQL, [publication])).rows[0];
  if (found === undefined) {
    throw configError(`NearCache: publication '${publication}' does not exist`, { publication });
  }
  if (found['all_changes'] !== true) {
    throw configError(
      `NearCache: publication '${publication}' must publish insert, update, delete and truncate`,
      { publication },
    );
  }
  const tables = found['tables'] as { schema: string; table: string; filtered: boolean }[];
  const filtered = tables.find((table) => table.filtered);
  if (filtered !== undefined) {
    throw configError(
      `NearCache: table '${filtered.schema}.${filtered.table}' has a row filter in publication '${publication}'`,
      { publication, table: `${filtered.schema}.${filtered.table}` },
    );
  }
  return tables.map((table) => `${table.schema}.${table.table}`);
}

/** Double-quotes an identifier for SQL (embedded quotes doubled). */
export function quoteIdentifier(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}
