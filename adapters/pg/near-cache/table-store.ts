// One cached table in memory: frozen rows by primary key, and the declared secondary indexes.
import { invalidInput } from '../../../src/adapter-kit.js';
import type { CachedTableSchema } from './schema.js';

/** A row as the cache hands it out: a frozen plain object, column name to value. */
export type CachedRow = Readonly<Record<string, unknown>>;

// Key parts are joined with a unit separator; numbers and strings of one value encode alike, so
// `get(7)` finds an int8 key that `pg` parsed as the string '7'.
const SEPARATOR = '\u001f';
const NULL_PART = '\u0000';

function keyPart(value: unknown): string {
  if (value === null || value === undefined) return NULL_PART;
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** Freezes a value deeply (json, arrays, intervals); Date objects are left as `pg` made them. */
export function freezeValue(value: unknown): void {
  if (typeof value !== 'object' || value === null || value instanceof Date) return;
  if (Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const inner of Object.values(value)) freezeValue(inner);
}

/** `row` frozen, with its nested values; returns it. */
export function freezeRow(row: Record<string, unknown>): CachedRow {
  for (const value of Object.values(row)) freezeValue(value);
  return Object.freeze(row);
}

export class TableStore {
  readonly schema: CachedTableSchema;
  readonly #rows = new Map<string, CachedRow>();
  readonly #indexes = new Map<
    string,
    { readonly columns: readonly string[]; readonly entries: Map<string, Set<string>> }
  >();

  constructor(schema: CachedTableSchema) {
    this.schema = schema;
    for (const [name, columns] of schema.indexes) {
      this.#indexes.set(name, { columns, entries: new Map() });
    }
  }

  get size(): number {
    return this.#rows.size;
  }

  /** The primary key of `row` (a row or a key tuple of the stream), encoded. */
  keyOfRow(row: Readonly<Record<string, unknown>>): string {
    return encodeColumns(row, this.schema.primaryKey);
  }

  /**
   * Encodes a key given by repository code: the value itself for a one-column key, or an object
   * with every key column. Anything else is `INVALID_INPUT`.
   */
  keyFromInput(key: unknown): string {
    return this.#encodeInput(key, this.schema.primaryKey, 'primary key');
  }

  /** Encodes the values looked up in `index` (a value for one column, else an object). */
  indexKeyFromInput(index: string, values: unknown): string {
    const columns = this.#index(index).columns;
    return this.#encodeInput(values, columns, `index '${index}'`);
  }

  get(key: string): CachedRow | undefined {
    return this.#rows.get(key);
  }

  /** Rows whose `index` columns encode to `key`, in no particular order. */
  lookup(index: string, key: string): CachedRow[] {
    const keys = this.#index(index).entries.get(key);
    if (keys === undefined) return [];
    const rows: CachedRow[] = [];
    for (const rowKey of keys) {
      const row = this.#rows.get(rowKey);
      if (row !== undefined) rows.push(row);
    }
    return rows;
  }

  filter(predicate: (row: CachedRow) => boolean): CachedRow[] {
    const rows: CachedRow[] = [];
    for (const row of this.#rows.values()) if (predicate(row)) rows.push(row);
    return rows;
  }

  /** Inserts or replaces the row with `row`'s key (`row` is frozen here). */
  put(row: Record<string, unknown>): void {
    const key = this.keyOfRow(row);
    const frozen = freezeRow(row);
    const previous = this.#rows.get(key);
    if (previous !== undefined) this.#unindex(key, previous);
    this.#rows.set(key, frozen);
    for (const { columns, entries } of this.#indexes.values()) {
      const indexKey = encodeColumns(frozen, columns);
      let keys = entries.get(indexKey);
      if (keys === undefined) {
        keys = new Set();
        entries.set(indexKey, keys);
      }
      keys.add(key);
    }
  }

  delete(key: string): void {
    const previous = this.#rows.get(key);
    if (previous === undefined) return;
    this.#unindex(key, previous);
    this.#rows.delete(key);
  }

  clear(): void {
    this.#rows.clear();
    for (const index of this.#indexes.values()) index.entries.clear();
  }

  #unindex(key: string, row: CachedRow): void {
    for (const { columns, entries } of this.#indexes.values()) {
      const indexKey = encodeColumns(row, columns);
      const keys = entries.get(indexKey);
      keys?.delete(key);
      if (keys?.size === 0) entries.delete(indexKey);
    }
  }

  #index(index: string) {
    const found = this.#indexes.get(index);
    if (found === undefined) {
      throw invalidInput(`NearCache: table '${this.schema.name}' has no index '${index}'`, {
        table: this.schema.name,
        index,
      });
    }
    return found;
  }

  #encodeInput(input: unknown, columns: readonly string[], what: string): string {
    if (typeof input === 'object' && input !== null && !(input instanceof Date)) {
      const record = input as Record<string, unknown>;
      if (columns.every((column) => record[column] !== undefined)) {
        return encodeColumns(record, columns);
      }
    } else if (columns.length === 1 && input !== undefined) {
      return keyPart(input);
    }
    throw invalidInput(
      `NearCache: a ${what} of '${this.schema.name}' is ${columns.length === 1 ? 'a value or ' : ''}{ ${columns.join(', ')} }`,
      { table: this.schema.name },
    );
  }
}

function encodeColumns(row: Readonly<Record<string, unknown>>, columns: readonly string[]): string {
  if (columns.length === 1) return keyPart(row[columns[0] as string]);
  let key = '';
  for (let i = 0; i < columns.length; i++) {
    if (i > 0) key += SEPARATOR;
    key += keyPart(row[columns[i] as string]);
  }
  return key;
}
