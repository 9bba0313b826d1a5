import { CausewayError, ErrorCode, invalidInput, isCausewayError } from '../errors.js';
import { Attr, addToCounter, CounterName, SpanName, withSpan } from '../telemetry.js';
import { isStorableText } from '../util/text.js';

/**
 * Leases with fencing tokens. A token strictly increases per resource across holders and
 * restarts of the store; storage that sees a token checks it in the same transaction or script
 * as the guarded write, so a paused former holder cannot overwrite a newer holder's work.
 */

/** A held lease. `token` orders holders: a later holder always has a larger token. */
export interface Lease {
  readonly resource: string;
  readonly token: bigint;
  /** When the lease ends unless renewed (by the store's clock, as seen at acquire/renew). */
  readonly expiresAt: Date;
  /**
   * Extends the lease by its ttl (from now, by the store's clock) and resolves to the lease with
   * its new `expiresAt`; the token stays the same. Rejects with `LEASE_NOT_HELD` if the lease
   * expired, was released or was taken over.
   */
  renew(): Promise<Lease>;
  /** Gives the lease up early; a no-op if it already expired or was taken over. */
  release(): Promise<void>;
}

export interface AcquireOptions {
  /** How long the lease lasts unless renewed, in milliseconds (1 to `MAX_LEASE_TTL_MS`). */
  ttlMs: number;
  /**
   * Identifies the holder (for operators and for `renew`); default: a random id per acquire.
   * The same holder may acquire again while it holds the lease (after a restart, say): it then
   * gets a new, larger token, which fences off its own earlier incarnation.
   */
  holder?: string;
}

/** Hands out leases. Implementations: memory, PostgreSQL, Redis. */
export interface LeaseManager {
  /** Takes the lease, or rejects with `LEASE_NOT_HELD` while another holder's lease is live. */
  acquire(resource: string, options: AcquireOptions): Promise<Lease>;
  /** Releases resources the manager opened itself. */
  close(): Promise<void>;
}

/** Checks fencing tokens at the storage. */
export interface FenceGuard<CheckOptions = unknown> {
  /**
   * Passes if `token` is at least the newest token seen for `resource` (and records it), or
   * rejects with `STALE_FENCING_TOKEN`. For PostgreSQL pass the guarded transaction's client in
   * `options.client` so that the check and the write commit together.
   */
  check(resource: string, token: bigint, options?: CheckOptions): Promise<void>;
  close(): Promise<void>;
}

/**
 * The largest fencing token: 2^63 - 1, the largest PostgreSQL `bigint` and Redis integer.
 * Tokens are never negative.
 */
export const MAX_FENCING_TOKEN = 9_223_372_036_854_775_807n;

/** Decimal digits in `MAX_FENCING_TOKEN`: a longer token string is refused before parsing. */
export const MAX_FENCING_TOKEN_DIGITS = 19;

/** The longest resource name (in UTF-16 code units) a lease or a fence accepts. */
export const MAX_RESOURCE_LENGTH = 256;

/** The longest holder id (in UTF-16 code units) a lease accepts. */
export const MAX_HOLDER_LENGTH = 256;

/** The longest lease ttl: 2^31 - 1 ms (about 24.8 days), the longest Node timer as well. */
export const MAX_LEASE_TTL_MS = 2_147_483_647;

const CANONICAL_TOKEN = /^(?:0|[1-9][0-9]*)$/;

/**
 * Parses a fencing token from outside (a header, a message, a JSON field). Accepts a `bigint`,
 * a safe non-negative integer `number`, or a canonical decimal string (digits only: no sign,
 * no spaces, no leading zeros, at most `MAX_FENCING_TOKEN_DIGITS` digits), in the range 0 to
 * `MAX_FENCING_TOKEN`. Anything else is `INVALID_INPUT`.
 */
export function parseFencingToken(input: unknown): bigint {
  if (typeof input === 'bigint') return checkTokenRange(input);
  if (typeof input === 'number') {
    if (!Number.isSafeInteger(input) || input < 0) {
      throw invalidInput('A fencing token must be a non-negative integer', { reason: 'number' });
    }
    return BigInt(input);
  }
  if (typeof input !== 'string') {
    throw invalidInput('A fencing token must be a decimal string', { reason: 'type' });
  }
  if (input.length > MAX_FENCING_TOKEN_DIGITS) {
    throw invalidInput(`A fencing token has at most ${MAX_FENCING_TOKEN_DIGITS} digits`, {
      reason: 'length',
    });
  }
  if (!CANONICAL_TOKEN.test(input)) {
    throw invalidInput('A fencing token is decimal digits without sign or leading zeros', {
      reason: 'syntax',
    });
  }
  return checkTokenRange(BigInt(input));
}

function checkTokenRange(token: bigint): bigint {
  if (token < 0n || token > MAX_FENCING_TOKEN) {
    throw invalidInput('A fencing token must be between 0 and 2^63 - 1', { reason: 'range' });
  }
  return token;
}

/** Throws `INVALID_INPUT` unless `token` is a bigint in 0..`MAX_FENCING_TOKEN`. */
export function assertFencingToken(token: unknown): asserts token is bigint {
  if (typeof token !== 'bigint') {
    throw invalidInput('A fencing token must be a bigint', { reason: 'type' });
  }
  checkTokenRange(token);
}

/**
 * Throws `INVALID_INPUT` unless `resource` is a non-empty string of at most 256 characters with
 * no NUL and no lone surrogate (PostgreSQL refuses NUL; both stores would turn a lone surrogate
 * into U+FFFD, so two resources would share one fence).
 */
export function assertResource(resource: unknown): asserts resource is string {
  if (typeof resource !== 'string' || resource.length === 0) {
    throw invalidInput('A lease resource must be a non-empty string');
  }
  if (!isStorableText(resource)) {
    throw invalidInput('A lease resource must be well-formed Unicode without NUL characters');
  }
  if (resource.length > MAX_RESOURCE_LENGTH) {
    throw invalidInput(`A lease resource has at most ${MAX_RESOURCE_LENGTH} characters`, {
      length: resource.length,
    });
  }
}

/**
 * Validates `acquire`'s arguments and resolves the holder (`randomHolder()` when absent).
 * Throws `INVALID_INPUT` for a bad resource, holder or ttl.
 */
export function resolveAcquireOptions(
  resource: unknown,
  options: AcquireOptions,
  randomHolder: () => string,
): { ttlMs: number; holder: string } {
  assertResource(resource);
  const { ttlMs, holder = randomHolder() } = options ?? ({} as AcquireOptions);
  if (!Number.isInteger(ttlMs) || ttlMs < 1 || ttlMs > MAX_LEASE_TTL_MS) {
    throw invalidInput(`A lease ttlMs must be an integer from 1 to ${MAX_LEASE_TTL_MS}`);
  }
  if (
    typeof holder !== 'string' ||
    holder.length === 0 ||
    holder.length > MAX_HOLDER_LENGTH ||
    !isStorableText(holder)
  ) {
    throw invalidInput(
      `A lease holder must be a string of 1 to ${MAX_HOLDER_LENGTH} characters, well-formed and without NUL`,
    );
  }
  return { ttlMs, holder };
}

/** The error for a lease held by someone else, or one of ours that was lost. */
export function leaseNotHeld(resource: string, message: string): CausewayError {
  return new CausewayError(ErrorCode.LEASE_NOT_HELD, message, { details: { resource } });
}

/** The error for a token older than the newest the storage has seen for `resource`. */
export function staleFencingToken(resource: string, token: bigint): CausewayError {
  return new CausewayError(
    ErrorCode.STALE_FENCING_TOKEN,
    `Fencing token ${token} for "${resource}" is older than the newest the storage has seen`,
    { details: { resource, token: token.toString() } },
  );
}

/**
 * Runs one lease acquisition inside a `causeway.lease.acquire` span with the resource, the
 * granted token and the outcome (`acquired`, `held` by another holder, or `error`).
 */
export function traceLeaseAcquire<L extends Lease>(
  resource: string,
  acquire: () => Promise<L>,
): Promise<L> {
  return withSpan(SpanName.LEASE_ACQUIRE, { [Attr.RESOURCE]: resource }, async (span) => {
    try {
      const lease = await acquire();
      span.setAttributes({ [Attr.TOKEN]: lease.token.toString(), [Attr.OUTCOME]: 'acquired' });
      return lease;
    } catch (error) {
      const outcome = isCausewayError(error, ErrorCode.LEASE_NOT_HELD) ? 'held' : 'error';
      span.setAttribute(Attr.OUTCOME, outcome);
      throw error;
    }
  });
}

/**
 * Runs one fence check inside a `causeway.fence.check` span with the resource, the token and
 * the outcome (`passed`, `stale` or `error`); a stale token also counts in
 * `causeway.fence.rejections`.
 */
export function traceFenceCheck<T>(
  resource: string,
  token: bigint,
  check: () => Promise<T>,
): Promise<T> {
  const attributes = { [Attr.RESOURCE]: resource, [Attr.TOKEN]: token.toString() };
  return withSpan(SpanName.FENCE_CHECK, attributes, async (span) => {
    try {
      const result = await check();
      span.setAttribute(Attr.OUTCOME, 'passed');
      return result;
    } catch (error) {
      const stale = isCausewayError(error, ErrorCode.STALE_FENCING_TOKEN);
      span.setAttribute(Attr.OUTCOME, stale ? 'stale' : 'error');
      if (stale) addToCounter(CounterName.FENCE_REJECTIONS, { [Attr.RESOURCE]: resource });
      throw error;
    }
  });
}
