import pg from 'pg';
import { CausewayError, ErrorCode, invalidInput, MAX_GID_BYTES } from '../../src/adapter-kit.js';
import { type PgQueryableClient, type PgRowsResult, sqlState } from './sql.js';

/**
 * The result of the last statement: `pg` answers a multi-statement simple query (which a
 * branch's own SQL may be) with an array of results.
 */
export function single(result: PgRowsResult | PgRowsResult[]): PgRowsResult {
  return Array.isArray(result) ? result[result.length - 1]! : result;
}

const GID_LITERAL = /^[A-Za-z0-9_.:-]+$/;

/**
 * A gid as an SQL string literal (`PREPARE TRANSACTION` and friends take no parameters). Only
 * the characters Causeway's gids use are allowed, so nothing can escape the quotes.
 */
export function gidLiteral(gid: string): string {
  // The pattern admits ASCII only, so the length in characters is the length in bytes.
  if (typeof gid !== 'string' || gid.length > MAX_GID_BYTES || !GID_LITERAL.test(gid)) {
    throw invalidInput(
      `a gid must be 1 to ${MAX_GID_BYTES} bytes of letters, digits, "_", ".", ":" and "-"`,
    );
  }
  return `'${gid}'`;
}

/** A PostgreSQL error at PREPARE as `TXN_ABORTED`, keeping the SQLSTATE. */
export function prepareRefused(error: unknown): CausewayError {
  const message = error instanceof Error ? error.message : String(error);
  return new CausewayError(ErrorCode.TXN_ABORTED, `PostgreSQL did not prepare: ${message}`, {
    cause: error,
    details: { sqlstate: sqlState(error) },
  });
}

/**
 * SQLSTATE classes that say nothing about a transaction's outcome: connection trouble, server
 * shutdown, internal and system errors. Any other error at `COMMIT` was the server's answer,
 * and the transaction was rolled back.
 */
const OUTCOME_UNKNOWN_CLASSES = new Set(['08', '57', '58', 'XX']);

/**
 * An error at `COMMIT` as `TXN_ABORTED` when the server refused (a deferred constraint, a
 * serialization failure: nothing was committed); undefined when the outcome is unknown (the
 * connection was lost; it may have committed).
 */
export function commitRefused(error: unknown): CausewayError | undefined {
  const state = sqlState(error);
  if (state === undefined || OUTCOME_UNKNOWN_CLASSES.has(state.slice(0, 2))) return undefined;
  const message = error instanceof Error ? error.message : String(error);
  return new CausewayError(ErrorCode.TXN_ABORTED, `PostgreSQL did not commit: ${message}`, {
    cause: error,
    details: { sqlstate: state },
  });
}

/** Prepended to a branch's first statement when it has no parameters (one simple query). */
export const BEGIN_PREFIX = 'BEGIN;';

/** `pg`'s own submit, which writes a query's messages (Parse, Bind, Describe, Execute, Sync). */
const submitQuery = pg.Query.prototype.submit;

/**
 * A `pg` query's submit that opens the transaction first, in the same round trip: BEGIN's Parse,
 * Bind and Execute go on the wire just before the statement's own messages, under the
 * statement's single Sync (a BEGIN in the extended protocol starts a transaction block that
 * outlasts the Sync). `pg` answers with two results, BEGIN's first; if the statement fails, the
 * transaction is open and failed, as after a separate BEGIN.
 */
function submitAfterBegin(this: pg.Query, connection: pg.Connection): void {
  const stream = (connection as { stream?: { cork?(): void; uncork?(): void } }).stream;
  stream?.cork?.();
  try {
    connection.parse({ text: 'BEGIN', name: '', types: [] }, false);
    connection.bind({}, false);
    connection.execute({}, false);
    submitQuery.call(this, connection);
  } finally {
    stream?.uncork?.();
  }
}

/**
 * Runs `BEGIN` and then the branch's first statement (with parameters) in one round trip, when
 * `client` is a `pg` client (else undefined: the caller sends BEGIN on its own). Resolves to
 * both results.
 */
export function beginWith(
  client: PgQueryableClient,
  text: string,
  values: unknown[],
): Promise<PgRowsResult[]> | undefined {
  if (!(client instanceof pg.Client)) return undefined;
  return new Promise((resolve, reject) => {
    const query = new pg.Query(text, values, (error: Error | undefined, results: unknown) => {
      if (error) reject(error);
      else resolve(results as PgRowsResult[]);
    });
    query.submit = submitAfterBegin;
    client.query(query);
  });
}
