// Reads of one cached table, with the session's guarantees: from memory when the cache has
// applied what the session needs, else (after a bounded wait) from the pool.
import { trace } from '@opentelemetry/api';
import {
  Attr,
  addToCounter,
  type ConsistencyLevel,
  comparePositions,
  currentSession,
  NearCacheCounterName,
  NearCacheEventName,
  type Position,
  type SessionContext,
} from '../../../src/adapter-kit.js';
import type { Fallthrough, PoolAnswer } from './fallthrough.js';
import { quoteIdentifier } from './schema.js';
import type { CachedRow, TableStore } from './table-store.js';

/**
 * Why a read was answered where it was. From memory: `'eventual'` (no floor asked),
 * `'floor-applied'` (the cache had applied the session's floor, or there was none),
 * `'within-staleness'` (heard from the primary within `maxStalenessMs`), `'waited'` (it applied
 * it within `waitTimeoutMs`). From the pool: `'strong'`, `'not-live'` (loading or stale),
 * `'wait-timed-out'`, `'other-history'` (the floor is of another stream or timeline than the
 * cache), `'floors-uncertain'` (the session's floors may be incomplete).
 */
export type NearCacheReason =
  | 'eventual'
  | 'floor-applied'
  | 'within-staleness'
  | 'waited'
  | 'strong'
  | 'not-live'
  | 'wait-timed-out'
  | 'other-history'
  | 'floors-uncertain';

/** One answer, and where it came from. */
export interface NearCacheAnswer<T> {
  readonly value: T;
  /** `'near-cache'` (memory), or the pool's `'replica'` or `'leader'`. */
  readonly source: 'near-cache' | 'replica' | 'leader';
  /** `'near-cache'`, or the node the pool read (e.g. `'replica-1'`, `'primary'`). */
  readonly node: string;
  readonly reason: NearCacheReason;
  /** The cache's position the answer reflects (memory answers only). */
  readonly position?: Position;
}

/** A key or index value: one column's value, or the columns as an object. */
export type NearCacheKey<Row> = string | number | bigint | boolean | Date | null | Partial<Row>;

/** What a table needs from its cache (internal). */
export interface CacheCore {
  live(): boolean;
  /** The live generation's store, or undefined while the cache is not live. */
  store(name: string): TableStore | undefined;
  /** The last snapshot's store of `name`, live or not: its schema builds the pool's SQL. */
  described(name: string): TableStore;
  position(): Position | undefined;
  heardAt(): number;
  waitUntil(reached: () => boolean, timeoutMs: number): Promise<boolean>;
  readonly fallthrough: Fallthrough;
  readonly level: ConsistencyLevel;
  readonly waitTimeoutMs: number;
}

type Decision =
  | { readonly kind: 'memory'; readonly reason: NearCacheReason }
  | { readonly kind: 'pool'; readonly reason: NearCacheReason }
  | { readonly kind: 'wait'; readonly reached: () => boolean };

const NEAR_CACHE_NODE = 'near-cache';

/**
 * Reads of one cached table, typed by its row type (the caller's declaration: the cache checks
 * columns against the catalog, not against `Row`). Rows are frozen plain objects, valued as the
 * `pg` driver parses them (Date objects for timestamps are the driver's and must not be changed).
 */
export class NearCacheTable<Row extends object> {
  readonly name: string;
  readonly #core: CacheCore;

  constructor(name: string, core: CacheCore) {
    this.name = name;
    this.#core = core;
  }

  /** The row with primary key `key` (the value, or `{ column: value }` for a composite key). */
  get(key: NearCacheKey<Row>): Promise<NearCacheAnswer<Readonly<Row> | undefined>> {
    return this.#read(
      (store) => store.get(store.keyFromInput(key)) as Readonly<Row> | undefined,
      (store) => {
        store.keyFromInput(key);
        return whereSql(store, store.schema.primaryKey, key);
      },
      (rows) => rows[0] as Readonly<Row> | undefined,
    );
  }

  /** The rows whose `index` columns equal `values` (a value for a one-column index, else an object). */
  lookup(
    index: string,
    values: NearCacheKey<Row>,
  ): Promise<NearCacheAnswer<readonly Readonly<Row>[]>> {
    return this.#read(
      (store) => store.lookup(index, store.indexKeyFromInput(index, values)) as Readonly<Row>[],
      (store) => {
        store.indexKeyFromInput(index, values);
        return whereSql(store, store.schema.indexes.get(index) ?? [], values);
      },
      (rows) => rows as Readonly<Row>[],
    );
  }

  /**
   * The rows for which `predicate` holds. From the pool this reads the whole table and filters
   * it here: fine when the cache is live, costly while it is not.
   */
  filter(
    predicate: (row: Readonly<Row>) => boolean,
  ): Promise<NearCacheAnswer<readonly Readonly<Row>[]>> {
    const test = predicate as (row: CachedRow) => boolean;
    return this.#read(
      (store) => store.filter(test) as Readonly<Row>[],
      (store) => ({ sql: `SELECT ${columnList(store)} FROM ${store.schema.sql}`, values: [] }),
      (rows) => rows.filter(test) as Readonly<Row>[],
    );
  }

  async #read<T>(
    fromMemory: (store: TableStore) => T,
    toSql: (store: TableStore) => { sql: string; values: unknown[] },
    fromRows: (rows: CachedRow[]) => T,
  ): Promise<NearCacheAnswer<T>> {
    const core = this.#core;
    const session = currentSession();
    const level = session?.level ?? core.level;
    let decision = this.#decide(session, level);
    if (decision.kind === 'wait') {
      const reached = await core.waitUntil(decision.reached, core.waitTimeoutMs);
      decision = reached
        ? { kind: 'memory', reason: 'waited' }
        : { kind: 'pool', reason: core.live() ? 'wait-timed-out' : 'not-live' };
    }
    const store = decision.kind === 'memory' ? core.store(this.name) : undefined;
    const position = core.position();
    if (store !== undefined && position !== undefined) {
      // Synchronous from here: the value and the position are of the same applied commit.
      const value = fromMemory(store);
      session?.noteRead(position);
      report('near-cache', decision.reason);
      return {
        value,
        source: 'near-cache',
        node: NEAR_CACHE_NODE,
        reason: decision.reason,
        position,
      };
    }
    const reason = decision.kind === 'memory' ? 'not-live' : decision.reason;
    // The SQL comes from the last snapshot's description of the table (never its rows).
    const { sql, values } = toSql(core.described(this.name));
    const answer: PoolAnswer = await core.fallthrough.query(sql, values, session);
    report(answer.source, reason);
    return { value: fromRows(answer.rows), source: answer.source, node: answer.node, reason };
  }

  #decide(session: SessionContext | undefined, level: ConsistencyLevel): Decision {
    const core = this.#core;
    if (level === 'strong') return { kind: 'pool', reason: 'strong' };
    if (!core.live()) return { kind: 'pool', reason: 'not-live' };
    if (level === 'eventual') return { kind: 'memory', reason: 'eventual' };
    if (typeof level === 'object') {
      const since = performance.now() - level.maxStalenessMs;
      if (core.heardAt() >= since) return { kind: 'memory', reason: 'within-staleness' };
      return { kind: 'wait', reached: () => core.heardAt() >= since };
    }
    if (session === undefined) return { kind: 'memory', reason: 'floor-applied' };
    if (session.floorsUncertain) return { kind: 'pool', reason: 'floors-uncertain' };
    const at = core.position();
    // The session's floor on this cluster's stream (its floors on other clusters do not apply).
    const floor = session.floorFor(level, at?.stream);
    if (floor === undefined || at === undefined) return { kind: 'memory', reason: 'floor-applied' };
    const order = comparePositions(at, floor);
    if (order === 'incomparable') return { kind: 'pool', reason: 'other-history' };
    if (order !== 'before') return { kind: 'memory', reason: 'floor-applied' };
    return {
      kind: 'wait',
      reached: () => {
        const now = core.position();
        return now !== undefined && comparePositions(now, floor) !== 'before';
      },
    };
  }
}

/** `SELECT` of the rows whose `columns` equal `input` (NULL matched as the cache's indexes do). */
function whereSql(
  store: TableStore,
  columns: readonly string[],
  input: unknown,
): { sql: string; values: unknown[] } {
  const record =
    typeof input === 'object' && input !== null && !(input instanceof Date)
      ? (input as Record<string, unknown>)
      : { [columns[0] as string]: input };
  const values: unknown[] = [];
  const conditions = columns.map((column) => {
    const value = record[column];
    if (value === null) return `${quoteIdentifier(column)} IS NULL`;
    values.push(value);
    return `${quoteIdentifier(column)} = $${values.length}`;
  });
  return {
    sql: `SELECT ${columnList(store)} FROM ${store.schema.sql} WHERE ${conditions.join(' AND ')}`,
    values,
  };
}

function columnList(store: TableStore): string {
  return store.schema.columns.map((column) => quoteIdentifier(column.name)).join(', ');
}

function report(target: string, reason: NearCacheReason): void {
  const attributes = { [Attr.TARGET]: target, [Attr.REASON]: reason };
  addToCounter(NearCacheCounterName.READS, attributes);
  const span = trace.getActiveSpan();
  if (span?.isRecording()) span.addEvent(NearCacheEventName.READ, attributes);
}
