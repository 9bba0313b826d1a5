import { randomFillSync } from 'node:crypto';
import { invalidInput } from '../errors.js';
import { comparePositions, type Position } from './position.js';

/**
 * Most streams (clusters) one session keeps floors for: 8. A session that touches a ninth forgets
 * the floors of the stream it raised least recently; a token or state naming more is refused.
 */
export const MAX_SESSION_STREAMS = 8;

/** A session's floors on one stream: both, when set, share the stream and its epoch. */
export interface StreamFloors {
  /** Position of the session's last write on this stream. */
  readonly writeFloor?: Position;
  /** Highest position the session has read on this stream. */
  readonly readFloor?: Position;
}

/**
 * What a session remembers between requests: its id (which picks its sticky replica) and its
 * floors, per stream. `writeFloor` and `readFloor` are those of the stream it raised last (all of
 * a single-cluster session's floors); `otherStreams` holds those of the others, least recently
 * raised first, one entry per stream, at most `MAX_SESSION_STREAMS - 1`.
 */
export interface SessionState {
  /** Opaque id, at most 64 bytes of UTF-8; `newSessionId()` makes a random one. */
  readonly id: string;
  /** Position of the session's last write; read-your-writes reads need a node at or past it. */
  readonly writeFloor?: Position;
  /** Highest position the session has read; monotonic reads need a node at or past it. */
  readonly readFloor?: Position;
  /** Floors on the other streams (clusters) the session used; absent when there are none. */
  readonly otherStreams?: readonly StreamFloors[];
}

const ID_BYTES = 12;
// Random bytes are drawn 3 KB at a time (as crypto.randomUUID does): one syscall per 256 ids.
const idPool = Buffer.allocUnsafe(ID_BYTES * 256);
let idPoolOffset = idPool.length;

/** A random session id: 12 random bytes (96 bits) as 16 URL-safe characters. */
export function newSessionId(): string {
  if (idPoolOffset === idPool.length) {
    randomFillSync(idPool);
    idPoolOffset = 0;
  }
  const id = idPool.toString('base64url', idPoolOffset, idPoolOffset + ID_BYTES);
  idPoolOffset += ID_BYTES;
  return id;
}

/** The stream floors of `state`, least recently raised first (the state's own floors last). */
export function streamFloorsOf(state: SessionState): StreamFloors[] {
  const all = state.otherStreams === undefined ? [] : [...state.otherStreams];
  if (state.writeFloor !== undefined || state.readFloor !== undefined) {
    all.push(floorsOnly(state.writeFloor, state.readFloor));
  }
  return all;
}

/** `{ writeFloor?, readFloor? }` without undefined members (states are compared with toEqual). */
export function floorsOnly(
  writeFloor: Position | undefined,
  readFloor: Position | undefined,
): StreamFloors {
  if (writeFloor === undefined) return readFloor === undefined ? {} : { readFloor };
  return readFloor === undefined ? { writeFloor } : { writeFloor, readFloor };
}

function isPosition(value: unknown): value is Position {
  const position = value as Partial<Position> | null;
  return (
    typeof position === 'object' &&
    position !== null &&
    typeof position.stream === 'string' &&
    Number.isInteger(position.epoch) &&
    (position.epoch as number) >= 0 &&
    typeof position.lsn === 'bigint' &&
    position.lsn >= 0n
  );
}

function isStreamFloors(value: unknown): value is StreamFloors {
  if (typeof value !== 'object' || value === null) return false;
  const { writeFloor, readFloor } = value as StreamFloors;
  if (writeFloor === undefined && readFloor === undefined) return false;
  if (writeFloor !== undefined && !isPosition(writeFloor)) return false;
  if (readFloor !== undefined && !isPosition(readFloor)) return false;
  return (
    writeFloor === undefined ||
    readFloor === undefined ||
    comparePositions(writeFloor, readFloor) !== 'incomparable'
  );
}

/**
 * Throws `INVALID_INPUT` unless `state` is a `SessionState`: `{ id: non-empty string,
 * writeFloor?, readFloor?, otherStreams? }` with floors `{ stream: string, epoch: integer >= 0,
 * lsn: bigint >= 0 }`, and `otherStreams` an array of at most `MAX_SESSION_STREAMS - 1` entries
 * `{ writeFloor?, readFloor? }` (at least one, both of one stream and epoch).
 */
export function assertSessionState(state: unknown): asserts state is SessionState {
  const { id, writeFloor, readFloor, otherStreams } = (state ?? {}) as Partial<SessionState>;
  if (
    typeof state !== 'object' ||
    state === null ||
    typeof id !== 'string' ||
    id === '' ||
    (writeFloor !== undefined && !isPosition(writeFloor)) ||
    (readFloor !== undefined && !isPosition(readFloor)) ||
    (otherStreams !== undefined &&
      (!Array.isArray(otherStreams) ||
        otherStreams.length >= MAX_SESSION_STREAMS ||
        // Index loop: every() would skip the holes of a sparse array.
        !allStreamFloors(otherStreams)))
  ) {
    throw invalidInput(
      `A session state is { id: non-empty string, writeFloor?, readFloor?, otherStreams? } with floors { stream, epoch, lsn: bigint } and at most ${MAX_SESSION_STREAMS} streams`,
    );
  }
}

function allStreamFloors(list: readonly unknown[]): boolean {
  for (let i = 0; i < list.length; i++) if (!isStreamFloors(list[i])) return false;
  return true;
}
