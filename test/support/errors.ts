import { isCausewayError } from '../../src/errors.js';

function codeOfError(error: unknown): string {
  return isCausewayError(error) ? error.code : `not a CausewayError: ${String(error)}`;
}

/**
 * The `CausewayError` code `fn` throws (or `promise` rejects with); undefined when it succeeds,
 * a descriptive string when it fails with anything else.
 */
export function codeOf(promise: Promise<unknown>): Promise<string | undefined>;
export function codeOf(fn: () => unknown): string | undefined;
export function codeOf(
  action: Promise<unknown> | (() => unknown),
): string | undefined | Promise<string | undefined> {
  if (typeof action !== 'function') return action.then(() => undefined, codeOfError);
  try {
    action();
  } catch (error) {
    return codeOfError(error);
  }
  return undefined;
}

/** The error `fn` throws; fails the test when it throws nothing. */
export function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}
