import { VersionVector } from '../clocks/version-vector.js';
import { CausewayError, ErrorCode, invalidInput } from '../errors.js';
import { knownOptions, numberOption } from '../options.js';
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

/**
 * Riak refuses a write at 100 siblings (and warns at 25); past that point a key is broken in
 * practice, so the same figure is the default here.
 */
export const DEFAULT_MAX_SIBLINGS = 100;

export interface SiblingsOptions {
  /**
   * The most versions (live values plus concurrent deletes) a key may hold after a `put` or
   * `delete`; a write that would exceed it is refused with `TOO_MANY_SIBLINGS` and changes
   * nothing. `merge` is never refused (anti-entropy must converge); the next write with a
   * covering context brings the count back to one. Default: 100 (Riak's hard limit).
   */
  readonly maxSiblings?: number;
}

/** A dot: the one write `counter` of `actor`, i.e. the event that made a version. */
export type Dot = readonly [actor: string, counter: number];

/** One version in a serialized `Siblings` state: a value or a delete, each with its dot. */
export type SiblingsEntryJson<T = JsonValue> =
  | { readonly dot: Dot; readonly value: T }
  | { readonly dot: Dot; readonly deleted: true };

/**
 * The serialized form of a `Siblings` register (what versioned stores persist and what
 * anti-entropy ships between replicas). `seen` is the causal context: for each actor the
 * highest counter of its writes that this state has seen (all lower ones included).
 */
export interface SiblingsState<T = JsonValue> {
  readonly kind: 'siblings';
  readonly version: 1;
  readonly seen: Readonly<Record<string, number>>;
  readonly entries: readonly SiblingsEntryJson<T>[];
}

type Entry<T> =
  | { readonly actor: string; readonly counter: number; readonly deleted: false; readonly value: T }
  | { readonly actor: string; readonly counter: number; readonly deleted: true };

/** Immutable register state: the causal context and the versions it has not superseded. */
export interface SiblingsCore<T> {
  readonly seen: VersionVector;
  readonly entries: readonly Entry<T>[];
}

/**
 * A multi-value register on dotted version vectors.
 *
 * Every stored version carries a dot `(actor, counter)` minted by the register when it is
 * written, and the register keeps one causal context (`seen`). A write carries the context its
 * writer read: it removes exactly the versions whose dots that context covers and keeps every
 * other one as a sibling. Because each version is tested on its own dot against the writer's
 * context (a single vector for the whole key cannot tell which siblings a stale writer saw),
 * writers interleaving read-then-write never hold more siblings than writes that were truly
 * concurrent: the sibling explosion of per-key server-side version vectors cannot happen.
 *
 * Deletes are tombstone versions: they show as `deleted: true` on a read (never in `values`),
 * stay while concurrent with a live value, and are dropped like any version as soon as a write
 * whose context covers them arrives. The causal context stays after the last version goes, so
 * a merge with a replica that still holds a deleted value cannot bring it back.
 *
 * An actor id names one sequential writer per replica: the same actor writing to two replicas
 * before they merge can mint the same dot twice, which `merge` reports as `CONFLICTING_WRITE`.
 *
 * Values must be JSON values (checked on every write; `INVALID_INPUT` otherwise); the register
 * keeps its own copies, so changing an object after `put` or after `read` changes nothing here.
 */
export class Siblings<T> {
  readonly #maxSiblings: number;
  #core: SiblingsCore<T>;

  constructor(options: SiblingsOptions = {}) {
    const { maxSiblings } = knownOptions(options, 'Siblings', ['maxSiblings']);
    this.#maxSiblings = resolveMaxSiblings(maxSiblings);
    this.#core = emptySiblingsCore();
  }

  /** Rebuilds a register from `toJSON()` output (validated: `INVALID_INPUT` if malformed). */
  static fromJSON<T>(state: unknown, options: SiblingsOptions = {}): Siblings<T> {
    const register = new Siblings<T>(options);
    register.#core = coreFromJson<T>(structuredCloneJson(state));
    return register;
  }

  /** Rebuilds a register from `encode()` output (validated: `INVALID_INPUT` if malformed). */
  static decode<T>(text: string, options: SiblingsOptions = {}): Siblings<T> {
    const register = new Siblings<T>(options);
    register.#core = decodeSiblingsCore<T>(text);
    return register;
  }

  /** How many versions the register holds: live siblings plus concurrent deletes. */
  get size(): number {
    return this.#core.entries.length;
  }

  /** The live values (copies), the context to write back, and whether a delete is among them. */
  read(): VersionedValue<T> {
    return viewOf(this.#core, true);
  }

  /**
   * Writes `value` over exactly the versions that `options.context` covers; versions it does
   * not cover stay as siblings. `TOO_MANY_SIBLINGS` if the result would hold more than
   * `maxSiblings` versions; `INVALID_INPUT` for a bad context, actor or value. Either error
   * leaves the register unchanged.
   */
  put(value: T, options: WriteOptions): VersionedValue<T> {
    assertJsonValue(value);
    this.#core = writeCore(this.#core, copyJson(value) as T, false, options, this.#maxSiblings);
    return this.read();
  }

  /** Writes a tombstone over exactly the versions `options.context` covers (see `put`). */
  delete(options: WriteOptions): VersionedValue<T> {
    this.#core = writeCore<T>(this.#core, undefined, true, options, this.#maxSiblings);
    return this.read();
  }

  /**
   * Replaces every current version with `merge(values)`: a put with the current context.
   * `merge` receives copies of the live values (possibly none, if only deletes remain).
   */
  resolve(merge: (values: T[]) => T, options: { readonly actor: string }): VersionedValue<T> {
    const { values, context } = this.read();
    return this.put(merge(values), { context, actor: options.actor });
  }

  /**
   * Joins another replica's state into this one (anti-entropy): a version survives if both
   * sides hold it or if the side that lacks it has not seen its dot. The result is the same
   * in any order and grouping, and merging twice changes nothing. `INVALID_INPUT` for a
   * malformed state, `CONFLICTING_WRITE` if both sides hold different versions under one dot.
   */
  merge(other: Siblings<T> | SiblingsState<T> | string): VersionedValue<T> {
    const remote =
      other instanceof Siblings
        ? other.#core
        : typeof other === 'string'
          ? decodeSiblingsCore<T>(other)
          : coreFromJson<T>(structuredCloneJson(other));
    this.#core = mergeCores(this.#core, remote);
    return this.read();
  }

  /** The serializable state (a copy), accepted back by `fromJSON` and by `merge`. */
  toJSON(): SiblingsState<T> {
    return structuredClone(coreToJson(this.#core));
  }

  /** The state as a JSON string, accepted back by `decode` and by `merge`. */
  encode(): string {
    return JSON.stringify(coreToJson(this.#core));
  }
}

// ---------------------------------------------------------------------------------------------
// The algorithm, on immutable cores. Module functions so the store handler can run them on a
// freshly decoded state without copying values it alone owns.

/** Decodes a serialized state; module-internal twin of `Siblings.decode` without copies. */
export function decodeSiblingsCore<T>(text: string): SiblingsCore<T> {
  return coreFromJson<T>(parseState(text, 'siblings state'));
}

export function encodeSiblingsCore<T>(core: SiblingsCore<T>): string {
  return JSON.stringify(coreToJson(core));
}

export function emptySiblingsCore<T>(): SiblingsCore<T> {
  return { seen: VersionVector.empty(), entries: [] };
}

/** The read view of a core; `copy` protects a long-lived register from its readers. */
export function viewOf<T>(core: SiblingsCore<T>, copy: boolean): VersionedValue<T> {
  const values: T[] = [];
  let deleted = false;
  for (const entry of core.entries) {
    if (entry.deleted) deleted = true;
    else values.push(copy ? (copyJson(entry.value) as T) : entry.value);
  }
  return { values, context: core.seen.encode(), deleted };
}

/** A put (`deleted` false) or a delete (`deleted` true) against `core`; `core` is unchanged. */
export function writeCore<T>(
  core: SiblingsCore<T>,
  value: T | undefined,
  deleted: boolean,
  options: WriteOptions,
  maxSiblings: number,
): SiblingsCore<T> {
  assertWriteOptions(options);
  const context = decodeContext(options.context);
  const kept = core.entries.filter((entry) => context.get(entry.actor) < entry.counter);
  if (kept.length + 1 > maxSiblings) {
    throw new CausewayError(
      ErrorCode.TOO_MANY_SIBLINGS,
      `the write would leave ${kept.length + 1} versions (maxSiblings is ${maxSiblings}); ` +
        'read the key and write with its context to resolve the siblings',
      { details: { siblings: kept.length + 1, maxSiblings } },
    );
  }
  // The new dot follows everything this replica and the writer have seen of this actor, so it
  // is fresh even when the context comes from a replica that is ahead of this one.
  const seen = core.seen.merge(context).increment(options.actor);
  const counter = seen.get(options.actor);
  const entry: Entry<T> = deleted
    ? { actor: options.actor, counter, deleted: true }
    : { actor: options.actor, counter, deleted: false, value: value as T };
  return { seen, entries: sortEntries([...kept, entry]) };
}

/** The join of two cores: commutative, associative and idempotent. */
export function mergeCores<T>(local: SiblingsCore<T>, remote: SiblingsCore<T>): SiblingsCore<T> {
  const remoteByDot = new Map(remote.entries.map((entry) => [dotKey(entry), entry]));
  const entries: Entry<T>[] = [];
  for (const entry of local.entries) {
    const twin = remoteByDot.get(dotKey(entry));
    if (twin !== undefined) {
      assertSameVersion(entry, twin);
      remoteByDot.delete(dotKey(entry));
      entries.push(entry);
    } else if (remote.seen.get(entry.actor) < entry.counter) {
      entries.push(entry);
    }
    // else: the remote side saw this version and a later write there superseded it.
  }
  for (const entry of remoteByDot.values()) {
    if (local.seen.get(entry.actor) < entry.counter) entries.push(entry);
  }
  return { seen: local.seen.merge(remote.seen), entries: sortEntries(entries) };
}

function assertSameVersion<T>(a: Entry<T>, b: Entry<T>): void {
  const same =
    a.deleted === b.deleted &&
    (a.deleted || jsonEqual(a.value as JsonValue, (b as { value: T }).value as JsonValue));
  if (!same) {
    throw new CausewayError(
      ErrorCode.CONFLICTING_WRITE,
      `two different versions carry the same dot (${a.actor}, ${a.counter}): ` +
        'one actor id was used by two writers on different replicas',
      { details: { counter: a.counter } },
    );
  }
}

function decodeContext(context: string | undefined): VersionVector {
  if (context === undefined || context === '') return VersionVector.empty();
  if (typeof context !== 'string') throw invalidInput('context must be a string');
  return VersionVector.decode(context);
}

function dotKey(entry: { readonly actor: string; readonly counter: number }): string {
  return `${entry.counter}:${entry.actor}`;
}

function sortEntries<T>(entries: Entry<T>[]): Entry<T>[] {
  return entries.sort((a, b) =>
    a.actor < b.actor ? -1 : a.actor > b.actor ? 1 : a.counter - b.counter,
  );
}

function coreToJson<T>(core: SiblingsCore<T>): SiblingsState<T> {
  return {
    kind: 'siblings',
    version: 1,
    seen: core.seen.toJSON(),
    entries: core.entries.map((entry) =>
      entry.deleted
        ? { dot: [entry.actor, entry.counter], deleted: true }
        : { dot: [entry.actor, entry.counter], value: entry.value },
    ),
  };
}

/** Validates a decoded state completely: it may come from another replica or from storage. */
function coreFromJson<T>(state: unknown): SiblingsCore<T> {
  if (!isRecord(state) || state['kind'] !== 'siblings') {
    throw invalidInput('not a siblings state');
  }
  if (state['version'] !== 1) throw invalidInput('unsupported siblings state version');
  const seenJson = state['seen'];
  if (!isRecord(seenJson)) throw invalidInput('siblings state has no causal context');
  for (const [actor, counter] of Object.entries(seenJson)) {
    assertActor(actor);
    if (!isCounter(counter)) throw invalidInput('siblings state has a malformed counter');
  }
  const seen = VersionVector.from(seenJson as Record<string, number>);
  const entriesJson = state['entries'];
  if (!Array.isArray(entriesJson)) throw invalidInput('siblings state has no entries');
  const dots = new Set<string>();
  // Array.from visits holes (as undefined) where map would keep them: a sparse array is refused.
  const entries: Entry<T>[] = Array.from(entriesJson, (item: unknown) => {
    if (!isRecord(item) || !Array.isArray(item['dot']) || item['dot'].length !== 2) {
      throw invalidInput('siblings state has a malformed entry');
    }
    const [actor, counter] = item['dot'] as unknown[];
    assertActor(actor);
    if (!isCounter(counter) || counter > seen.get(actor)) {
      throw invalidInput('siblings state has a dot outside its causal context');
    }
    const key = dotKey({ actor, counter });
    if (dots.has(key)) throw invalidInput('siblings state repeats a dot');
    dots.add(key);
    if (item['deleted'] === true && !('value' in item)) return { actor, counter, deleted: true };
    if (!('value' in item) || 'deleted' in item) {
      throw invalidInput('siblings state has an entry that is neither a value nor a delete');
    }
    assertJsonValue(item['value']);
    return { actor, counter, deleted: false, value: item['value'] as T };
  });
  return { seen, entries: sortEntries(entries) };
}

function isCounter(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

export function resolveMaxSiblings(maxSiblings: number | undefined): number {
  return numberOption('Siblings', 'maxSiblings', maxSiblings, DEFAULT_MAX_SIBLINGS, {
    min: 1,
    integer: true,
  });
}

/** A private copy of a JSON value (validated by the caller). */
function copyJson(value: unknown): unknown {
  return typeof value === 'object' && value !== null ? structuredClone(value) : value;
}

/** Copies caller-owned input before validation so later changes by the caller cannot leak in. */
function structuredCloneJson(state: unknown): unknown {
  try {
    return structuredClone(state);
  } catch {
    throw invalidInput('state is not plain data');
  }
}
