import { randomUUID } from 'node:crypto';
import { version as uuidVersion, v7 as uuidv7, validate as validateUuid } from 'uuid';
import { HlcTimestamp, HybridLogicalClock } from '../clocks/hlc.js';
import { CausewayError, configError, ErrorCode, invalidInput } from '../errors.js';
import { knownOptions, optionsObject } from '../options.js';
import {
  assertActor,
  assertJsonValue,
  assertWriteOptions,
  isRecord,
  type JsonValue,
  parseState,
} from './input.js';
import { jsonEqual } from './json-equal.js';
import type { VersionedValue, WriteOptions } from './types.js';

/** Cassandra keeps tombstones `gc_grace_seconds` = 10 days by default; so does Causeway. */
export const DEFAULT_TOMBSTONE_GRACE_MS = 10 * 24 * 60 * 60 * 1000;

export interface LwwOptions {
  /**
   * The clock that stamps writes and takes in remote timestamps. Default: a new
   * `HybridLogicalClock` with a random node id and its default `maxOffsetMs` (500, as
   * CockroachDB's).
   * Share one clock per process so that all its writes are ordered.
   */
  readonly clock?: HybridLogicalClock;
  /**
   * How long a delete's tombstone must be kept before `purge` may drop it: longer than any
   * replica can go without anti-entropy, or a deleted value can come back from it.
   * Default: 10 days (Cassandra's `gc_grace_seconds`).
   */
  readonly tombstoneGraceMs?: number;
}

/** Every key of `LwwOptions`: any other is refused. */
export const LWW_OPTION_KEYS = [
  'clock',
  'tombstoneGraceMs',
] as const satisfies readonly (keyof LwwOptions)[];

/**
 * One write, as stored and as shipped between replicas. `ts` is an encoded HLC timestamp and
 * `id` a UUID v7 minted per write; together they order all writes, deletes included.
 */
export type LwwWrite<T = JsonValue> =
  | { readonly ts: string; readonly id: string; readonly actor: string; readonly value: T }
  | { readonly ts: string; readonly id: string; readonly actor: string; readonly deleted: true };

/** The serialized form of an `LwwRegister`: the winning write, or none. */
export interface LwwState<T = JsonValue> {
  readonly kind: 'lww';
  readonly version: 1;
  readonly write: LwwWrite<T> | null;
}

/** A winning write with its timestamp decoded once. */
export interface LwwWinner<T> {
  readonly write: LwwWrite<T>;
  readonly ts: HlcTimestamp;
}

/**
 * A last-write-wins register: of all writes it has seen, it keeps the one with the greatest
 * (HLC timestamp, write id), where the id is a UUID v7 minted for each write. The id breaks
 * timestamp ties between different writes, so no tie is ever decided by the value or by
 * "delete wins" (Cassandra's rule, which silently drops an insert racing a delete in the same
 * millisecond).
 *
 * Deletes are tombstone writes in the same order (`deleted: true` on a read). `purge()` drops a
 * tombstone once it is older than `tombstoneGraceMs`.
 *
 * A local write is stamped after everything the register holds and after the `context` passed
 * with it (the encoded winning write of the read it is based on, or `''`), so a read-then-write
 * always wins over what was read, even when that read came from a replica whose clock is ahead.
 * Neither is taken into the writer's clock, and neither can make a local write fail: a
 * timestamp stored by a fast clock elsewhere must not lock the key for writers whose clocks are
 * right (the write is then stamped just after it). A remote write (`merge`, `apply`) further
 * ahead of the physical clock than the clock's `maxOffsetMs` is refused with `CLOCK_DRIFT` and
 * changes nothing; versioned stores also refuse a writer whose own clock is that far ahead of
 * the storage's (`checkWriterClock`).
 *
 * Delivering a write already held is a no-op; the same (timestamp, id) with different contents
 * is `CONFLICTING_WRITE`.
 */
export class LwwRegister<T> {
  readonly #clock: HybridLogicalClock;
  readonly #tombstoneGraceMs: number;
  #winner: LwwWinner<T> | undefined;

  constructor(options: LwwOptions = {}) {
    const resolved = resolveLwwOptions(knownOptions(options, 'LwwRegister', LWW_OPTION_KEYS));
    this.#clock = resolved.clock;
    this.#tombstoneGraceMs = resolved.tombstoneGraceMs;
  }

  /** Rebuilds a register from `toJSON()` output (validated: `INVALID_INPUT` if malformed). */
  static fromJSON<T>(state: unknown, options: LwwOptions = {}): LwwRegister<T> {
    const register = new LwwRegister<T>(options);
    register.#winner = winnerFromState<T>(copyPlain(state));
    return register;
  }

  /** Rebuilds a register from `encode()` output (validated: `INVALID_INPUT` if malformed). */
  static decode<T>(text: string, options: LwwOptions = {}): LwwRegister<T> {
    const register = new LwwRegister<T>(options);
    register.#winner = decodeLwwWinner<T>(text);
    return register;
  }

  /** The winning write (a copy), or `undefined` when the register is empty. */
  get write(): LwwWrite<T> | undefined {
    return this.#winner === undefined ? undefined : structuredClone(this.#winner.write);
  }

  /** `values` holds the winning value (a copy), or nothing when empty or deleted. */
  read(): VersionedValue<T> {
    return lwwView(this.#winner, true);
  }

  /** Writes `value` as a new write that wins over everything the register and `context` hold. */
  put(value: T, options: WriteOptions): VersionedValue<T> {
    assertJsonValue(value);
    this.#winner = lwwWrite(this.#winner, copyJson(value) as T, false, options, this.#clock);
    return this.read();
  }

  /** Writes a tombstone as a new write (see `put`). */
  delete(options: WriteOptions): VersionedValue<T> {
    this.#winner = lwwWrite<T>(this.#winner, undefined, true, options, this.#clock);
    return this.read();
  }

  /**
   * Delivers one write made elsewhere: it wins if its (timestamp, id) is greater. A no-op when
   * already held; `CONFLICTING_WRITE` for a known identity with other contents.
   */
  apply(write: LwwWrite<T>): VersionedValue<T> {
    const remote = winnerFromWrite<T>(copyPlain(write));
    this.#winner = joinWinners(this.#winner, remote, this.#clock);
    return this.read();
  }

  /** Joins another replica's state (anti-entropy): the greater write of the two wins. */
  merge(other: LwwRegister<T> | LwwState<T> | string): VersionedValue<T> {
    const remote =
      other instanceof LwwRegister
        ? other.#winner
        : typeof other === 'string'
          ? decodeLwwWinner<T>(other)
          : winnerFromState<T>(copyPlain(other));
    this.#winner = joinWinners(this.#winner, remote, this.#clock);
    return this.read();
  }

  /**
   * Drops the tombstone if it is more than `tombstoneGraceMs` older than the clock's current
   * time. Returns whether it did.
   */
  purge(): boolean {
    if (!isPurgeable(this.#winner, this.#clock, this.#tombstoneGraceMs)) return false;
    this.#winner = undefined;
    return true;
  }

  toJSON(): LwwState<T> {
    return structuredClone(lwwState(this.#winner));
  }

  encode(): string {
    return encodeLwwWinner(this.#winner);
  }
}

// ---------------------------------------------------------------------------------------------
// The algorithm, as module functions shared with the store handler.

export function resolveLwwOptions(options: LwwOptions): {
  clock: HybridLogicalClock;
  tombstoneGraceMs: number;
} {
  optionsObject(options, 'Last-write-wins');
  const grace = options.tombstoneGraceMs ?? DEFAULT_TOMBSTONE_GRACE_MS;
  if (!Number.isSafeInteger(grace) || grace < 0) {
    throw configError('tombstoneGraceMs must be a non-negative integer', {
      tombstoneGraceMs: grace,
    });
  }
  if (options.clock !== undefined && !(options.clock instanceof HybridLogicalClock)) {
    throw configError('clock must be a HybridLogicalClock');
  }
  const clock =
    options.clock ?? new HybridLogicalClock({ nodeId: randomUUID().replaceAll('-', '') });
  return { clock, tombstoneGraceMs: grace };
}

export function lwwView<T>(winner: LwwWinner<T> | undefined, copy: boolean): VersionedValue<T> {
  if (winner === undefined) return { values: [], context: '', deleted: false };
  const { write } = winner;
  const context = encodeLwwContext(write);
  if ('deleted' in write) return { values: [], context, deleted: true };
  return { values: [copy ? (copyJson(write.value) as T) : write.value], context, deleted: false };
}

/** A new local write stamped after `current` and after the write named by the context. */
export function lwwWrite<T>(
  current: LwwWinner<T> | undefined,
  value: T | undefined,
  deleted: boolean,
  options: WriteOptions,
  clock: HybridLogicalClock,
): LwwWinner<T> {
  assertWriteOptions(options);
  const read = decodeLwwContext(options.context);
  const ts = stampAfter(clock, [current?.ts, read]);
  const base = { ts: ts.encode(), id: uuidv7(), actor: options.actor };
  const write: LwwWrite<T> = deleted ? { ...base, deleted: true } : { ...base, value: value as T };
  return { write, ts };
}

/**
 * The clock's next timestamp, or, when something it must follow is at or past it, the
 * timestamp just after that one (with the clock's node id), leaving the clock where it is.
 */
function stampAfter(
  clock: HybridLogicalClock,
  follows: readonly (HlcTimestamp | undefined)[],
): HlcTimestamp {
  const now = clock.now();
  let latest: HlcTimestamp | undefined;
  for (const ts of follows)
    if (ts !== undefined && (latest === undefined || ts.compare(latest) > 0)) latest = ts;
  if (latest === undefined || now.compare(latest) > 0) return now;
  return latest.logical < MAX_LOGICAL
    ? new HlcTimestamp(latest.wallTime, latest.logical + 1, clock.nodeId)
    : new HlcTimestamp(latest.wallTime + 1, 0, clock.nodeId);
}

/** The largest logical counter of an HLC timestamp (2^32 - 1). */
const MAX_LOGICAL = 0xffff_ffff;

/**
 * Refuses, with `CLOCK_DRIFT`, a writer whose clock is more than its `maxOffsetMs` ahead of
 * `storageNowMs`, the storage's own clock (PostgreSQL's `clock_timestamp()`, Redis `TIME`): its
 * timestamps would win over every correctly-clocked writer's until real time caught up.
 */
export function checkWriterClock(clock: HybridLogicalClock, storageNowMs: number): void {
  const offsetMs = clock.now().wallTime - Math.floor(storageNowMs);
  if (offsetMs > clock.maxOffsetMs) {
    throw new CausewayError(
      ErrorCode.CLOCK_DRIFT,
      "the writer's clock is too far ahead of the storage's clock",
      { details: { offsetMs, maxOffsetMs: clock.maxOffsetMs } },
    );
  }
}

/** The join: the greater (timestamp, id) wins; equal identities must carry equal writes. */
export function joinWinners<T>(
  local: LwwWinner<T> | undefined,
  remote: LwwWinner<T> | undefined,
  clock: HybridLogicalClock,
): LwwWinner<T> | undefined {
  if (remote === undefined) return local;
  if (local === undefined) {
    clock.receive(remote.ts);
    return remote;
  }
  const order = compareWinners(local, remote);
  if (order === 0) {
    if (!sameWrite(local.write, remote.write)) {
      throw new CausewayError(
        ErrorCode.CONFLICTING_WRITE,
        'a write arrived again with the same timestamp and id but different contents',
        { details: { id: local.write.id } },
      );
    }
    return local;
  }
  if (order > 0) return local;
  clock.receive(remote.ts);
  return remote;
}

function compareWinners<T>(a: LwwWinner<T>, b: LwwWinner<T>): number {
  const byTime = a.ts.compare(b.ts);
  if (byTime !== 0) return byTime;
  return a.write.id < b.write.id ? -1 : a.write.id > b.write.id ? 1 : 0;
}

function sameWrite<T>(a: LwwWrite<T>, b: LwwWrite<T>): boolean {
  if (a.actor !== b.actor) return false;
  if ('deleted' in a || 'deleted' in b) return 'deleted' in a && 'deleted' in b;
  return jsonEqual(a.value as JsonValue, b.value as JsonValue);
}

export function isPurgeable<T>(
  winner: LwwWinner<T> | undefined,
  clock: HybridLogicalClock,
  graceMs: number,
): boolean {
  if (winner === undefined || !('deleted' in winner.write)) return false;
  return clock.now().wallTime - winner.ts.wallTime > graceMs;
}

export function lwwState<T>(winner: LwwWinner<T> | undefined): LwwState<T> {
  return { kind: 'lww', version: 1, write: winner === undefined ? null : winner.write };
}

export function encodeLwwWinner<T>(winner: LwwWinner<T> | undefined): string {
  return JSON.stringify(lwwState(winner));
}

export function decodeLwwWinner<T>(text: string): LwwWinner<T> | undefined {
  return winnerFromState<T>(parseState(text, 'lww state'));
}

/** The encoded timestamp's `!` padding is dropped so the context stays URL-safe. */
const TIMESTAMP_PADDING = /!+$/;

/**
 * Context of an LWW read: `''`, or `<timestamp>.<write id>` of the winning write, where
 * `<timestamp>` is the encoded HLC timestamp without its trailing `!` padding.
 */
function encodeLwwContext(write: LwwWrite<unknown>): string {
  return `${write.ts.replace(TIMESTAMP_PADDING, '')}.${write.id}`;
}

function decodeLwwContext(context: string | undefined): HlcTimestamp | undefined {
  if (context === undefined || context === '') return undefined;
  if (typeof context !== 'string') throw invalidInput('context must be a string');
  const dot = context.lastIndexOf('.');
  const ts = context.slice(0, dot);
  if (dot < 0 || ts.includes('!')) throw invalidInput('malformed last-write-wins context');
  assertWriteId(context.slice(dot + 1));
  return HlcTimestamp.decode(ts.padEnd(HlcTimestamp.ENCODED_LENGTH, '!'));
}

function winnerFromState<T>(state: unknown): LwwWinner<T> | undefined {
  if (!isRecord(state) || state['kind'] !== 'lww') throw invalidInput('not a lww state');
  if (state['version'] !== 1) throw invalidInput('unsupported lww state version');
  if (state['write'] === null) return undefined;
  return winnerFromWrite<T>(state['write']);
}

function winnerFromWrite<T>(write: unknown): LwwWinner<T> {
  if (!isRecord(write) || typeof write['ts'] !== 'string') {
    throw invalidInput('malformed last-write-wins write');
  }
  const { ts, id, actor } = write;
  assertWriteId(id);
  assertActor(actor);
  const timestamp = HlcTimestamp.decode(ts);
  const base = { ts: timestamp.encode(), id, actor };
  if (write['deleted'] === true && !('value' in write)) {
    return { write: { ...base, deleted: true }, ts: timestamp };
  }
  if (!('value' in write) || 'deleted' in write) {
    throw invalidInput('a last-write-wins write is neither a value nor a delete');
  }
  assertJsonValue(write['value']);
  return { write: { ...base, value: write['value'] as T }, ts: timestamp };
}

function assertWriteId(id: unknown): asserts id is string {
  if (
    typeof id !== 'string' ||
    !validateUuid(id) ||
    uuidVersion(id) !== 7 ||
    id !== id.toLowerCase()
  ) {
    throw invalidInput('a write id must be a lowercase UUID v7');
  }
}

function copyJson(value: unknown): unknown {
  return typeof value === 'object' && value !== null ? structuredClone(value) : value;
}

function copyPlain(value: unknown): unknown {
  try {
    return structuredClone(value);
  } catch {
    throw invalidInput('state is not plain data');
  }
}
