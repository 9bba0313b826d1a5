import type { FunctionCall, QualifiedName } from './analyse.js';

/**
 * What the cluster's own catalog says about functions, operators and casts: whether calling
 * them can change anything. PostgreSQL's volatility is the contract: an `IMMUTABLE` or `STABLE`
 * function "cannot modify the database", so it may run on a hot standby; a `VOLATILE` one may
 * write, lock or set something, so it needs the primary.
 */

/**
 * Non-volatile functions that still need the primary, checked in `pg_proc` on PostgreSQL 15.
 * `txid_current()` and `pg_current_xact_id()` are `STABLE` yet assign a transaction id (a
 * standby refuses, and on the primary they give the caller's transaction, not a replica's);
 * their `_if_assigned` forms report the session's own transaction, meaningless on a pooled
 * replica connection. Advisory locks (`pg_advisory_lock`, `pg_try_advisory_lock`...),
 * `set_config`, `nextval`/`setval`, `pg_notify` and every `dblink` function are `VOLATILE`
 * there already, so the catalog keeps them on the primary without a list (the differential
 * test checks this on the real cluster).
 */
export const PRIMARY_ONLY_FUNCTIONS: ReadonlySet<string> = new Set([
  'txid_current',
  'pg_current_xact_id',
  'txid_current_if_assigned',
  'pg_current_xact_id_if_assigned',
]);

/**
 * One round trip: every function (schema, name, arguments, defaults, variadic, volatility),
 * every operator with its function's volatility, the types whose input function or a cast to
 * which is volatile, and an MD5 of it all to tell whether anything changed since the last load.
 */
export const CATALOG_SQL = `WITH functions AS (
  SELECT coalesce(json_agg(json_build_array(n.nspname, p.proname, p.pronargs, p.pronargdefaults,
           p.provariadic <> 0, p.provolatile) ORDER BY p.oid), '[]') AS rows
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
), operators AS (
  SELECT coalesce(json_agg(json_build_array(n.nspname, o.oprname, p.provolatile)
           ORDER BY o.oid), '[]') AS rows
    FROM pg_catalog.pg_operator o
    JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
    JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode
), volatile_casts AS (
  SELECT coalesce(json_agg(json_build_array(n.nspname, t.typname) ORDER BY t.oid), '[]') AS rows
    FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
   WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                  WHERE p.oid = t.typinput AND p.provolatile = 'v')
      OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast c JOIN pg_catalog.pg_proc p ON p.oid = c.castfunc
                  WHERE c.casttarget = t.oid AND p.provolatile = 'v')
)
SELECT f.rows AS functions, o.rows AS operators, c.rows AS volatile_casts,
       md5(f.rows::text || o.rows::text || c.rows::text) AS fingerprint
  FROM functions f, operators o, volatile_casts c`;

/** Runs one SQL text on the cluster (e.g. `pool.query`), resolving to its rows. */
export type CatalogQuery = (sql: string) => Promise<{ readonly rows: readonly unknown[] }>;

interface FunctionEntry {
  readonly schema: string;
  readonly minArgs: number;
  readonly maxArgs: number;
  readonly volatile: boolean;
}

interface OperatorEntry {
  readonly schema: string;
  readonly volatile: boolean;
}

/** Why a call cannot run on a replica, or undefined when it can. */
export type CallProblem = 'volatile' | 'unknown' | undefined;

/** An immutable snapshot of one cluster's catalog. */
export class Catalog {
  readonly fingerprint: string;
  readonly #functions = new Map<string, FunctionEntry[]>();
  readonly #operators = new Map<string, OperatorEntry[]>();
  readonly #volatileCasts = new Set<string>();

  /** Builds the snapshot from the row of `CATALOG_SQL` (throws on a malformed row). */
  constructor(row: unknown) {
    const { functions, operators, volatile_casts, fingerprint } = (row ?? {}) as Record<
      string,
      unknown
    >;
    if (
      !Array.isArray(functions) ||
      !Array.isArray(operators) ||
      !Array.isArray(volatile_casts) ||
      typeof fingerprint !== 'string'
    ) {
      throw new TypeError('the catalog query returned an unexpected row');
    }
    this.fingerprint = fingerprint;
    for (const [schema, name, args, defaults, variadic, volatility] of functions as [
      string,
      string,
      number,
      number,
      boolean,
      string,
    ][]) {
      // Defaults and a variadic parameter widen the argument counts a call may match; wider
      // means more candidate overloads, so more chances to see a volatile one.
      const entry: FunctionEntry = {
        schema,
        minArgs: Math.max(0, args - defaults - (variadic ? 1 : 0)),
        maxArgs: variadic ? Number.POSITIVE_INFINITY : args,
        volatile: volatility === 'v',
      };
      append(this.#functions, name, entry);
    }
    for (const [schema, name, volatility] of operators as [string, string, string][]) {
      append(this.#operators, name, { schema, volatile: volatility === 'v' });
    }
    for (const [schema, name] of volatile_casts as [string, string][]) {
      this.#volatileCasts.add(name);
      this.#volatileCasts.add(`${schema}.${name}`);
    }
  }

  /**
   * A call may run on a replica when every function it may resolve to is non-volatile. Which
   * overload PostgreSQL picks depends on argument types and the search path, which the text
   * does not show, so every function of that name (in that schema when qualified, else in any)
   * whose parameters admit that many arguments counts. None at all: unknown.
   */
  functionProblem(call: FunctionCall): CallProblem {
    const candidates = (this.#functions.get(call.name) ?? []).filter(
      (entry) =>
        (call.schema === undefined || entry.schema === call.schema) &&
        call.args >= entry.minArgs &&
        call.args <= entry.maxArgs,
    );
    if (candidates.length === 0) return 'unknown';
    return candidates.some((entry) => entry.volatile) ? 'volatile' : undefined;
  }

  /** Same rule for operators: every operator of that name (and schema) must be non-volatile. */
  operatorProblem(operator: QualifiedName): CallProblem {
    const candidates = (this.#operators.get(operator.name) ?? []).filter(
      (entry) => operator.schema === undefined || entry.schema === operator.schema,
    );
    if (candidates.length === 0) return 'unknown';
    return candidates.some((entry) => entry.volatile) ? 'volatile' : undefined;
  }

  /** True when casting to the type may run a volatile input or cast function. */
  castIsVolatile(type: QualifiedName): boolean {
    return this.#volatileCasts.has(
      type.schema === undefined ? type.name : `${type.schema}.${type.name}`,
    );
  }
}

function append<V>(map: Map<string, V[]>, key: string, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}
