/**
 * Every failure that Causeway reports on purpose is a `CausewayError` with a stable `code`.
 * Match on `code`, never on `message`: messages may be reworded, codes are public API.
 */
export const ErrorCode = {
  /** A session token was forged, truncated, expired, oversized or from another cluster. */
  INVALID_SESSION_TOKEN: 'INVALID_SESSION_TOKEN',
  /** No replica reached the session's floor and the router was told not to use the leader. */
  NO_REPLICA_CAUGHT_UP: 'NO_REPLICA_CAUGHT_UP',
  /**
   * No node accepts writes now: the primary was demoted or lost and no candidate has been found
   * to replace it yet (a failover is under way). The statement was not run.
   */
  NO_PRIMARY: 'NO_PRIMARY',
  /** A write carried a fencing token older than the newest the storage has seen. */
  STALE_FENCING_TOKEN: 'STALE_FENCING_TOKEN',
  /** The lease is held by someone else, or ours expired or was lost. */
  LEASE_NOT_HELD: 'LEASE_NOT_HELD',
  /** A distributed transaction was rolled back everywhere. */
  TXN_ABORTED: 'TXN_ABORTED',
  /** A distributed transaction's outcome is decided but not yet applied everywhere. */
  TXN_IN_DOUBT: 'TXN_IN_DOUBT',
  /** The same write identity arrived with different contents. */
  CONFLICTING_WRITE: 'CONFLICTING_WRITE',
  /** A remote clock is further ahead of ours than the configured maximum offset. */
  CLOCK_DRIFT: 'CLOCK_DRIFT',
  /** A key holds more concurrent values than `maxSiblings` allows. */
  TOO_MANY_SIBLINGS: 'TOO_MANY_SIBLINGS',
  /** Malformed input from outside: an encoded vector, a timestamp, a key, a gid, a header. */
  INVALID_INPUT: 'INVALID_INPUT',
  /** Options or server settings that cannot work; the message says what to change. */
  CONFIG: 'CONFIG',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * The HTTP status an edge answers with for each code: 400 for bad client input, 409 for a write
 * that lost a race, 503 for a condition that passes, 500 for the rest.
 */
const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  INVALID_SESSION_TOKEN: 400,
  INVALID_INPUT: 400,
  STALE_FENCING_TOKEN: 409,
  CONFLICTING_WRITE: 409,
  NO_REPLICA_CAUGHT_UP: 503,
  NO_PRIMARY: 503,
  LEASE_NOT_HELD: 503,
  TXN_ABORTED: 500,
  TXN_IN_DOUBT: 500,
  CLOCK_DRIFT: 500,
  TOO_MANY_SIBLINGS: 500,
  CONFIG: 500,
};

export interface CausewayErrorOptions {
  /** The underlying error, if any (kept as the standard `Error.cause`). */
  cause?: unknown;
  /** Structured context for logs and spans. Never put secrets or row data here. */
  details?: Readonly<Record<string, unknown>>;
}

export class CausewayError extends Error {
  override readonly name = 'CausewayError';
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: CausewayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
  }

  /** The HTTP status an edge should answer with (see `HTTP_STATUS`). */
  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }
}

/** True when `error` is a `CausewayError`, optionally with the given code. */
export function isCausewayError(error: unknown, code?: ErrorCode): error is CausewayError {
  return error instanceof CausewayError && (code === undefined || error.code === code);
}

/** Shorthand for the most common error: malformed input from outside. */
export function invalidInput(
  message: string,
  details?: Readonly<Record<string, unknown>>,
): CausewayError {
  return new CausewayError(ErrorCode.INVALID_INPUT, message, details ? { details } : {});
}

/** Shorthand for an options error raised while resolving a constructor's options. */
export function configError(
  message: string,
  details?: Readonly<Record<string, unknown>>,
): CausewayError {
  return new CausewayError(ErrorCode.CONFIG, message, details ? { details } : {});
}

// Kept here until every caller imports them from options.ts.
export { functionOption, optionsObject } from './options.js';
