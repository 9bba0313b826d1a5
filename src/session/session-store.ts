import { invalidInput } from '../errors.js';
import type { SessionState } from './context.js';

/** Throws `INVALID_INPUT` unless `key` (a user key) is a non-empty string. */
export function assertSessionKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key === '') {
    throw invalidInput('a session store key must be a non-empty string');
  }
}

/**
 * Keeps session state on the server, keyed by a user key the application supplies (a user id, a
 * runner or API-client id), so that read-your-writes follows a user across devices and reaches
 * clients that keep no cookies. Implemented by `MemorySessionStore` (`causeway/memory`) and
 * `RedisSessionStore` (`causeway/redis`).
 *
 * The middleware reads the state at the start of a request and merges the session's state back
 * after a request that moved its write floor. A store that fails (rejects or times out) makes the
 * middleware fail safe: that request's floor-based reads go to the leader. Implementations bound
 * every call by a short timeout, since the request waits for `get`.
 */
export interface SessionStore {
  /** The state kept for `key`, or undefined when none is (never set, or expired). */
  get(key: string): Promise<SessionState | undefined>;
  /**
   * Merges `state` into what is kept for `key` and restarts its time to live. Floors only move
   * forward, per stream (cluster): within one history each floor keeps the later position; a
   * position of a newer epoch of its stream replaces both of that stream's floors; one of an older
   * epoch is ignored; floors on other streams are kept side by side, up to `MAX_SESSION_STREAMS`
   * (past it, the stream raised least recently is forgotten), as `mergeSessionStates` does.
   * The id kept first stays (so a user keeps one sticky replica).
   */
  set(key: string, state: SessionState): Promise<void>;
  /** Releases what the store opened itself (never a client it was given). */
  close(): Promise<void>;
}
