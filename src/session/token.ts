import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from 'node:crypto';
import { trace } from '@opentelemetry/api';
import { CausewayError, configError, ErrorCode, invalidInput } from '../errors.js';
import { knownOptions, numberOption } from '../options.js';
import { Attr, addToCounter, CounterName, EventName } from '../telemetry.js';
import { currentSession, type SessionContext, withSession } from './context.js';
import type { ConsistencyLevel } from './level.js';
import type { Position } from './position.js';
import {
  floorsOnly,
  MAX_SESSION_STREAMS,
  type SessionState,
  type StreamFloors,
  streamFloorsOf,
} from './state.js';

/**
 * Session tokens: `base64url(payload ‖ HMAC-SHA256(payload))`. A session with floors on one
 * stream (cluster) at most gets a version 1 payload, as before per-stream floors:
 *
 *     version:u8 (=1)  flags:u8  expiresAt:u32 (Unix seconds)  idLength:u8  id
 *     [streamLength:u8 stream epoch:u32] [writeLsn:u64] [readLsn:u64]
 *
 * (the stream and epoch appear once: both floors always share a history). A 16-character id, a
 * 19-digit PostgreSQL system identifier and both floors make 95 bytes, a 127-character token.
 * A session with floors on several streams gets version 2, one entry per stream, least recently
 * raised first:
 *
 *     version:u8 (=2)  flags:u8 (=0)  expiresAt:u32  idLength:u8  id  streamCount:u8
 *     streamCount × (floorFlags:u8 streamLength:u8 stream epoch:u32 [writeLsn:u64] [readLsn:u64])
 *
 * With 19-digit system identifiers and both floors on each: 2 streams 184 characters, 8 streams
 * 512. At most `MAX_SESSION_STREAMS` streams: a token naming more is `'malformed'`.
 */
export const TOKEN_VERSION = 1;
/** The version of tokens carrying floors on more than one stream. */
export const MULTI_STREAM_TOKEN_VERSION = 2;
/**
 * Longer tokens are refused unread (`'oversized'`): 2048 characters, above the longest token
 * `issue` makes (8 streams with 128-byte names and a 64-byte id: 1740).
 */
export const MAX_TOKEN_LENGTH = 2048;
/** Shortest accepted secret, in characters (32: the HMAC-SHA256 key then carries >= 128 bits). */
export const MIN_SECRET_LENGTH = 32;
const MAC_BYTES = 32;
/** Verified tokens remembered per `SessionTokens` (about 2.5 MB at most). */
const RECENT_TOKENS = 4096;
const MAX_ID_BYTES = 64;
const MAX_STREAM_BYTES = 128;
const HAS_WRITE_FLOOR = 1;
const HAS_READ_FLOOR = 2;
const MAX_LSN = (1n << 64n) - 1n;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Why a token was not trusted (the `causeway.reason` of `causeway.session.invalid_tokens`). */
export type InvalidTokenReason =
  | 'oversized'
  | 'malformed'
  | 'unsupported-version'
  | 'bad-signature'
  | 'expired'
  | 'other-cluster';

export interface SessionTokensOptions {
  /**
   * HMAC secret(s), each at least `MIN_SECRET_LENGTH` characters. With an array the first signs
   * and all verify: put a new secret first, keep the old one until its tokens expired. Required.
   */
  secret: string | readonly string[];
  /**
   * Lifetime of an issued token. Default 24 hours: floors older than that have long been
   * replicated, and a token is re-issued (sliding) once less than half its lifetime is left.
   */
  ttlMs?: number;
}

export interface VerifyOptions {
  /**
   * The streams this process knows. One stream (e.g. the leader position's `stream`): a token
   * with floors, none of them on that stream, is `'other-cluster'` (a token of another
   * deployment). A list: a token naming any stream outside it is `'other-cluster'`. Default: not
   * checked.
   */
  stream?: string | readonly string[] | undefined;
  /** The current time in ms (tests). Default `Date.now()`. */
  now?: number;
}

/** A token that passed verification. */
export interface VerifiedToken {
  readonly state: SessionState;
  /** Expiry in Unix milliseconds. */
  readonly expiresAt: number;
}

/** Issues and verifies session tokens; one instance per secret configuration. */
export class SessionTokens {
  readonly ttlMs: number;
  readonly #keys: readonly KeyObject[];
  /**
   * Tokens whose signature checked out lately (the oldest dropped past `RECENT_TOKENS`): a client
   * sends the same token until its session changes, so most requests skip the HMAC. Expiry and
   * cluster are still checked on every use.
   */
  readonly #recent = new Map<string, VerifiedToken>();

  constructor(options: SessionTokensOptions) {
    const { secret, ttlMs } = knownOptions(options, 'SessionTokens', ['secret', 'ttlMs']);
    const secrets = typeof secret === 'string' ? [secret] : secret;
    if (!Array.isArray(secrets) || secrets.length === 0) {
      throw configError(
        'SessionTokens: secret must be a string or a non-empty array of strings (the first signs)',
      );
    }
    for (const each of secrets) {
      if (typeof each !== 'string' || each.length < MIN_SECRET_LENGTH) {
        throw configError(
          `SessionTokens: every secret must be a string of at least ${MIN_SECRET_LENGTH} characters`,
        );
      }
    }
    this.#keys = secrets.map((each: string) => createSecretKey(Buffer.from(each, 'utf8')));
    this.ttlMs = numberOption('SessionTokens', 'ttlMs', ttlMs, 24 * 60 * 60 * 1000, { min: 1000 });
  }

  /**
   * A signed token for `state`, valid for `ttlMs` from `now`: version 1 when the state has floors
   * on one stream at most (tokens any earlier version of Causeway verifies), else version 2.
   */
  issue(state: SessionState, now: number = Date.now()): string {
    const id = Buffer.from(state.id, 'utf8');
    if (id.length === 0 || id.length > MAX_ID_BYTES) {
      throw invalidInput(`session id must be 1..${MAX_ID_BYTES} bytes`);
    }
    const streams = streamFloorsOf(state);
    if (streams.length > MAX_SESSION_STREAMS) {
      throw invalidInput(`a session token carries at most ${MAX_SESSION_STREAMS} streams`);
    }
    if (new Set(streams.map(streamOf)).size !== streams.length) {
      throw invalidInput('a session state names each stream once');
    }
    const entries = streams.map(encodeStreamFloors);
    const single = entries.length <= 1;
    const floorBytes = entries.reduce((sum, entry) => sum + entry.length, 0);
    // Version 1 has no per-entry flags byte; version 2 adds the count.
    const size = 7 + id.length + (single ? floorBytes - entries.length : 1 + floorBytes);
    const bytes = Buffer.allocUnsafe(size + MAC_BYTES);
    bytes[0] = single ? TOKEN_VERSION : MULTI_STREAM_TOKEN_VERSION;
    bytes[1] = single ? (entries[0]?.[0] ?? 0) : 0;
    bytes.writeUInt32BE(Math.min(Math.floor((now + this.ttlMs) / 1000), 0xffffffff), 2);
    bytes[6] = id.length;
    let at = 7 + id.copy(bytes, 7);
    if (single) {
      if (entries[0] !== undefined) entries[0].copy(bytes, at, 1);
    } else {
      bytes[at++] = entries.length;
      for (const entry of entries) at += entry.copy(bytes, at);
    }
    mac(this.#keys[0]!, bytes.subarray(0, size)).copy(bytes, size);
    return bytes.toString('base64url');
  }

  /**
   * Verifies `token` and returns its state, or throws `INVALID_SESSION_TOKEN` with
   * `details.reason` an `InvalidTokenReason`. Never trusts a token it cannot fully check.
   */
  verify(token: string, options: VerifyOptions = {}): VerifiedToken {
    // Job payloads and stores come back from JSON: a number or an object is malformed, not a crash.
    if (typeof token !== 'string') throw invalidToken('malformed');
    if (token.length > MAX_TOKEN_LENGTH) throw invalidToken('oversized');
    let verified = this.#recent.get(token);
    if (verified === undefined) {
      verified = this.#checkSignature(token);
      if (this.#recent.size >= RECENT_TOKENS) {
        this.#recent.delete(this.#recent.keys().next().value!);
      }
      this.#recent.set(token, verified);
    }
    if (verified.expiresAt <= (options.now ?? Date.now())) throw invalidToken('expired');
    if (options.stream !== undefined && !knowsStreams(verified.state, options.stream)) {
      throw invalidToken('other-cluster');
    }
    return verified;
  }

  /** Decodes `token` and checks its version and MAC; expiry and cluster are checked by `verify`. */
  #checkSignature(token: string): VerifiedToken {
    if (!BASE64URL.test(token)) throw invalidToken('malformed');
    const bytes = Buffer.from(token, 'base64url');
    // Base64url's last character can carry unused bits: only the canonical spelling is accepted,
    // so that changing any character of a token changes the bytes the MAC covers.
    if (bytes.length < 7 + MAC_BYTES || bytes.toString('base64url') !== token) {
      throw invalidToken('malformed');
    }
    const version = bytes[0];
    if (version !== TOKEN_VERSION && version !== MULTI_STREAM_TOKEN_VERSION) {
      throw invalidToken('unsupported-version');
    }
    const size = bytes.length - MAC_BYTES;
    const payload = bytes.subarray(0, size);
    const tag = bytes.subarray(size);
    if (!this.#keys.some((key) => timingSafeEqual(mac(key, payload), tag))) {
      throw invalidToken('bad-signature');
    }
    const state = version === TOKEN_VERSION ? parsePayload(payload) : parseStreams(payload);
    return { state, expiresAt: payload.readUInt32BE(2) * 1000 };
  }

  /** True when less than half of a verified token's lifetime is left (re-issue it). */
  needsRefresh(verified: VerifiedToken, now: number = Date.now()): boolean {
    return verified.expiresAt - now < this.ttlMs / 2;
  }
}

function mac(key: KeyObject, payload: Buffer): Buffer {
  return createHmac('sha256', key).update(payload).digest();
}

/**
 * The UTF-8 text of `payload[start, end)`, or `'malformed'` unless it is well-formed UTF-8 of
 * 1..`maxBytes` bytes: exactly what `issue` accepts, so an accepted state can be issued again.
 */
function payloadText(payload: Buffer, start: number, end: number, maxBytes: number): string {
  const bytes = payload.subarray(start, end);
  const text = bytes.toString('utf8');
  // Malformed UTF-8 decodes to U+FFFD, which encodes back to other bytes.
  if (bytes.length < 1 || bytes.length > maxBytes || !Buffer.from(text, 'utf8').equals(bytes)) {
    throw invalidToken('malformed');
  }
  return text;
}

/** Parses a signed payload; a signed but malformed payload (a bug, not an attack) is `'malformed'`. */
function parsePayload(payload: Buffer): SessionState {
  const flags = payload[1]!;
  const idLength = payload[6]!;
  let at = 7 + idLength;
  if (idLength === 0 || at > payload.length || flags > 3) throw invalidToken('malformed');
  const id = payloadText(payload, 7, at, MAX_ID_BYTES);
  if (flags === 0) {
    if (at !== payload.length) throw invalidToken('malformed');
    return { id };
  }
  const streamLength = payload[at++] ?? 0;
  const streamEnd = at + streamLength;
  const expected =
    streamEnd + 4 + (flags & HAS_WRITE_FLOOR ? 8 : 0) + (flags & HAS_READ_FLOOR ? 8 : 0);
  if (streamLength === 0 || expected !== payload.length) throw invalidToken('malformed');
  const stream = payloadText(payload, at, streamEnd, MAX_STREAM_BYTES);
  const epoch = payload.readUInt32BE(streamEnd);
  at = streamEnd + 4;
  let writeFloor: Position | undefined;
  let readFloor: Position | undefined;
  if (flags & HAS_WRITE_FLOOR) {
    writeFloor = { stream, epoch, lsn: payload.readBigUInt64BE(at) };
    at += 8;
  }
  if (flags & HAS_READ_FLOOR) readFloor = { stream, epoch, lsn: payload.readBigUInt64BE(at) };
  if (writeFloor && readFloor) return { id, writeFloor, readFloor };
  return writeFloor ? { id, writeFloor } : { id, readFloor: readFloor! };
}

/** Parses a signed version 2 payload (floors on several streams). */
function parseStreams(payload: Buffer): SessionState {
  const idLength = payload[6]!;
  let at = 7 + idLength;
  if (idLength === 0 || at >= payload.length || payload[1] !== 0) throw invalidToken('malformed');
  const id = payloadText(payload, 7, at, MAX_ID_BYTES);
  const count = payload[at++]!;
  if (count < 2 || count > MAX_SESSION_STREAMS) throw invalidToken('malformed');
  const streams: StreamFloors[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    const flags = payload[at] ?? 0;
    const streamLength = payload[at + 1] ?? 0;
    const streamEnd = at + 2 + streamLength;
    const end =
      streamEnd + 4 + (flags & HAS_WRITE_FLOOR ? 8 : 0) + (flags & HAS_READ_FLOOR ? 8 : 0);
    if (flags === 0 || flags > 3 || streamLength === 0 || end > payload.length) {
      throw invalidToken('malformed');
    }
    const stream = payloadText(payload, at + 2, streamEnd, MAX_STREAM_BYTES);
    if (seen.has(stream)) throw invalidToken('malformed');
    seen.add(stream);
    const epoch = payload.readUInt32BE(streamEnd);
    at = streamEnd + 4;
    let writeFloor: Position | undefined;
    let readFloor: Position | undefined;
    if (flags & HAS_WRITE_FLOOR) {
      writeFloor = { stream, epoch, lsn: payload.readBigUInt64BE(at) };
      at += 8;
    }
    if (flags & HAS_READ_FLOOR) {
      readFloor = { stream, epoch, lsn: payload.readBigUInt64BE(at) };
      at += 8;
    }
    streams.push(floorsOnly(writeFloor, readFloor));
  }
  if (at !== payload.length) throw invalidToken('malformed');
  const latest = streams.pop()!;
  return { id, ...latest, otherStreams: streams };
}

/**
 * One stream's floors as a version 2 entry: floorFlags, streamLength, stream, epoch, LSNs
 * (version 1 uses the same bytes without floorFlags, which goes to the header's flags).
 */
function encodeStreamFloors({ writeFloor, readFloor }: StreamFloors): Buffer {
  const history = (writeFloor ?? readFloor)!;
  const stream = Buffer.from(history.stream, 'utf8');
  if (stream.length === 0 || stream.length > MAX_STREAM_BYTES) {
    throw invalidInput(`stream must be 1..${MAX_STREAM_BYTES} bytes`);
  }
  if (!Number.isInteger(history.epoch) || history.epoch < 0 || history.epoch > 0xffffffff) {
    throw invalidInput('epoch must be a 32-bit unsigned integer');
  }
  const entry = Buffer.allocUnsafe(6 + stream.length + (writeFloor ? 8 : 0) + (readFloor ? 8 : 0));
  entry[0] = (writeFloor ? HAS_WRITE_FLOOR : 0) | (readFloor ? HAS_READ_FLOOR : 0);
  entry[1] = stream.length;
  let at = 2 + stream.copy(entry, 2);
  at = entry.writeUInt32BE(history.epoch, at);
  for (const floor of [writeFloor, readFloor]) {
    if (floor === undefined) continue;
    if (floor.stream !== history.stream || floor.epoch !== history.epoch) {
      throw invalidInput('both floors must share stream and epoch');
    }
    if (floor.lsn < 0n || floor.lsn > MAX_LSN) {
      throw invalidInput('lsn must fit in 64 unsigned bits');
    }
    at = entry.writeBigUInt64BE(floor.lsn, at);
  }
  return entry;
}

function streamOf(floors: StreamFloors): string {
  return (floors.writeFloor ?? floors.readFloor)!.stream;
}

/** True when the streams `state` names pass `known` (see `VerifyOptions.stream`). */
function knowsStreams(state: SessionState, known: string | readonly string[]): boolean {
  const streams = streamFloorsOf(state).map(
    (floors) => (floors.writeFloor ?? floors.readFloor)!.stream,
  );
  if (streams.length === 0) return true;
  if (typeof known === 'string') return streams.includes(known);
  return streams.every((stream) => known.includes(stream));
}

function invalidToken(reason: InvalidTokenReason): CausewayError {
  return new CausewayError(
    ErrorCode.INVALID_SESSION_TOKEN,
    `Session token not accepted: ${reason}`,
    {
      details: { reason },
    },
  );
}

/** The reason of an `INVALID_SESSION_TOKEN` error. */
export function invalidTokenReason(error: CausewayError): InvalidTokenReason {
  return (error.details['reason'] as InvalidTokenReason | undefined) ?? 'malformed';
}

/**
 * Counts an untrusted token (`causeway.session.invalid_tokens` by reason) and adds a
 * `causeway.session.invalid_token` event to the active span. The token itself is never recorded.
 */
export function recordInvalidToken(reason: InvalidTokenReason): void {
  const attributes = { [Attr.REASON]: reason };
  addToCounter(CounterName.INVALID_TOKENS, attributes);
  trace.getActiveSpan()?.addEvent(EventName.INVALID_TOKEN, attributes);
}

/**
 * Verifies `token` (if any): the verified token, undefined when there is none, or the
 * `INVALID_SESSION_TOKEN` error of an untrusted one, already recorded by `recordInvalidToken`.
 */
export function checkToken(
  tokens: SessionTokens,
  token: string | undefined,
  options: VerifyOptions = {},
): VerifiedToken | CausewayError | undefined {
  if (token === undefined || token === '') return undefined;
  try {
    return tokens.verify(token, options);
  } catch (error) {
    if (!(error instanceof CausewayError)) throw error;
    recordInvalidToken(invalidTokenReason(error));
    return error;
  }
}

/** The field `sessionForJob` results are meant to be stored under in a job payload. */
export const JOB_SESSION_FIELD = 'causewaySession';

/** A job payload that may carry a session token (see `sessionForJob`). */
export interface JobSessionCarrier {
  readonly [JOB_SESSION_FIELD]?: string | undefined;
}

/**
 * The current session (or `session`) as a token to put on a queued job, so that the worker reads
 * at least what the enqueuing request wrote: `queue.add({ ...data, causewaySession:
 * sessionForJob(tokens) })`. Undefined outside any session.
 */
export function sessionForJob(
  tokens: SessionTokens,
  session: SessionContext | undefined = currentSession(),
): string | undefined {
  return session === undefined ? undefined : tokens.issue(session.state);
}

/**
 * Runs a worker's `fn` inside the session carried by `job` (a payload with `causewaySession`, or
 * the token itself). An untrusted or missing token starts a fresh session rather than failing
 * the job; the invalid-token counter records it.
 */
export function withJobSession<T>(
  tokens: SessionTokens,
  job: JobSessionCarrier | string | undefined,
  fn: (session: SessionContext) => T,
  options: { level?: ConsistencyLevel } = {},
): T {
  const token = typeof job === 'string' ? job : job?.[JOB_SESSION_FIELD];
  const checked = checkToken(tokens, token);
  return withSession(checked instanceof CausewayError ? undefined : checked?.state, fn, options);
}
