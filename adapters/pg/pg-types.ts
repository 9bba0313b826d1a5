// The `pg` call shapes the routed pool and its clients accept, and the helpers that take them
// apart: one query's text/config, values and callback; promise or callback delivery.

/** `pg` leaves rows and client extras untyped; so does the drop-in. */
// biome-ignore lint/suspicious/noExplicitAny: rows are `any` in pg, and the drop-in must match.
export type Untyped = any;

/** A query result as `pg` returns it (structural: Causeway does not export `pg`'s types). */
export interface PgQueryResult<R = Untyped> {
  command: string;
  rowCount: number | null;
  rows: R[];
  fields: unknown[];
  oid: number;
}

/** `pg`'s query config object: `{ text, values, name, rowMode, types }`. */
export interface PgQueryConfig {
  text: string;
  values?: readonly unknown[];
  name?: string;
  rowMode?: 'array';
  types?: unknown;
}

/** A `pg` Submittable (pg-cursor, pg-query-stream): always run on the primary. */
export interface PgSubmittable {
  submit(connection: unknown): void;
}

export type QueryCallback<R = Untyped> = (
  error: Error | undefined,
  result: PgQueryResult<R>,
) => void;

/** One `query(text | config, values?, callback?)` call, taken apart. */
export interface ParsedQuery {
  readonly config: string | PgQueryConfig;
  readonly values: readonly unknown[] | undefined;
  readonly callback: QueryCallback | undefined;
}

/** A `pg` query function, called with the arguments as given. */
export type RawQuery = (...args: unknown[]) => unknown;

/** Splits `query(text|config, values?, callback?)`; undefined for Submittables and odd calls. */
export function parseQueryArgs(args: readonly unknown[]): ParsedQuery | undefined {
  const [first, second, third] = args;
  let config: string | PgQueryConfig;
  if (typeof first === 'string') {
    config = first;
  } else if (
    typeof first === 'object' &&
    first !== null &&
    typeof (first as { text?: unknown }).text === 'string' &&
    typeof (first as { submit?: unknown }).submit !== 'function' &&
    (first as { callback?: unknown }).callback === undefined
  ) {
    config = first as PgQueryConfig;
  } else {
    return undefined;
  }
  if (typeof second === 'function') {
    return { config, values: undefined, callback: second as QueryCallback };
  }
  if (second !== undefined && !Array.isArray(second)) return undefined;
  if (third !== undefined && typeof third !== 'function') return undefined;
  return {
    config,
    values: second as readonly unknown[] | undefined,
    callback: third as QueryCallback | undefined,
  };
}

export function queryText(config: string | PgQueryConfig): string {
  return typeof config === 'string' ? config : config.text;
}

/** A promise, or (with a callback) nothing: `pg`'s two calling conventions. */
export function deliver<R>(
  result: Promise<R>,
  callback: ((error: Error | undefined, value: R) => void) | undefined,
): Promise<R> | undefined {
  if (callback === undefined) return result;
  result.then(
    (value) => callback(undefined, value),
    (error: Error) => callback(error, undefined as R),
  );
  return undefined;
}

/** What `release()` takes to discard a connection after `error`. */
export function toReleaseError(error: unknown): Error | boolean {
  return error instanceof Error ? error : true;
}

/** `'I'` idle, `'T'` in a transaction, `'E'` in a failed one; idle when the driver cannot say. */
export function transactionStatus(client: object): string {
  const status = (
    client as { getTransactionStatus?: () => string | null }
  ).getTransactionStatus?.();
  return typeof status === 'string' ? status : 'I';
}
