import { CausewayError, ErrorCode, invalidInput, MAX_GID_BYTES } from '../../src/adapter-kit.js';
import { type PgRowsResult, sqlState } from './sql.js';

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
  if (typeof gid !== 'string' || !GID_LITERAL.test(gid) || Buffer.byteLength(gid) > MAX_GID_BYTES) {
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
