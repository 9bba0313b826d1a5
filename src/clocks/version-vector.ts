import { CausewayError, ErrorCode, invalidInput } from '../errors.js';

/** How two version vectors relate: one of four answers, never a number. */
export type VersionVectorOrder = 'equal' | 'before' | 'after' | 'concurrent';

const MAX_ACTOR_LENGTH = 128;
const MAX_ENCODED_LENGTH = 65_536;

/** Actor ids made only of these characters are written as they are in the encoding. */
const LITERAL_ACTOR = /^[A-Za-z0-9_-]+$/;
/** An encoded actor: literal characters and `~xx` escapes of UTF-8 bytes (lowercase hex). */
const ENCODED_ACTOR = /^(?:[A-Za-z0-9_-]|~[0-9a-f]{2})+$/;
/** A counter in base 36 without leading zeros (zero entries are never encoded). */
const ENCODED_COUNTER = /^[1-9a-z][0-9a-z]*$/;
/** In a `u` regex a paired surrogate is one code point, so this matches only lone halves. */
const LONE_SURROGATE = /\p{Cs}/u;
/**
 * The `%XX` escapes of `encodeURIComponent`, and the marks it leaves alone that the encoding
 * reserves (`.`, `~`) or avoids (`! * ' ( )`): all become `~xx`.
 */
const URI_ESCAPE_OR_MARK = /%([0-9A-F]{2})|[.!~*'()]/g;

/**
 * An immutable version vector: a map from actor id to a positive counter, with absent actors
 * meaning 0. Canonical: zero entries are dropped, so `{ a: 0 }` equals `{}`.
 *
 * Stored as two parallel arrays sorted by actor id (UTF-16 code unit order), so `compare`,
 * `descends` and `merge` are single linear walks, and vectors derived from one another share
 * their actor array when the actor set did not change.
 *
 * Limits: actor ids are non-empty, well-formed (no lone surrogate) strings of at most
 * `VersionVector.MAX_ACTOR_LENGTH` (128) UTF-16 code units; counters are non-negative safe
 * integers. Anything else from `from`, `increment` or `decode` is `INVALID_INPUT`.
 */
export class VersionVector {
  /** The longest actor id accepted, in UTF-16 code units. */
  static readonly MAX_ACTOR_LENGTH = MAX_ACTOR_LENGTH;
  /** The longest string `decode` accepts (64 KiB of characters); longer is `INVALID_INPUT`. */
  static readonly MAX_ENCODED_LENGTH = MAX_ENCODED_LENGTH;

  static readonly #EMPTY = new VersionVector([], []);

  // Plain (TypeScript-private) fields rather than `#` ones, so that `util.inspect` shows them
  // and structural equality in test runners (`toEqual`) compares vectors by value, which for
  // canonical vectors is the same as `compare(...) === 'equal'`.
  private readonly actors: readonly string[];
  private readonly counters: readonly number[];

  private constructor(actors: readonly string[], counters: readonly number[]) {
    this.actors = actors;
    this.counters = counters;
  }

  /** The vector with every counter at 0. */
  static empty(): VersionVector {
    return VersionVector.#EMPTY;
  }

  /** Builds a vector from `{ actor: counter }`; zero counters are dropped. */
  static from(record: Readonly<Record<string, number>> | VersionVector): VersionVector {
    if (record instanceof VersionVector) return record;
    if (typeof record !== 'object' || record === null || Array.isArray(record)) {
      throw invalidInput('A version vector must be built from an object of actor counters');
    }
    const actors: string[] = [];
    for (const actor of Object.keys(record)) {
      assertActor(actor);
      const counter = record[actor];
      if (typeof counter !== 'number' || !Number.isSafeInteger(counter) || counter < 0) {
        throw invalidInput('A version vector counter must be a non-negative safe integer');
      }
      if (counter !== 0) actors.push(actor);
    }
    if (actors.length === 0) return VersionVector.#EMPTY;
    actors.sort();
    return new VersionVector(
      actors,
      actors.map((actor) => record[actor] as number),
    );
  }

  /**
   * Parses the output of `encode()`. Anything else — wrong type, longer than
   * `MAX_ENCODED_LENGTH`, bad characters or escapes, unsorted or repeated actors, zero or
   * non-canonical counters — is `INVALID_INPUT`, so `decode(s).encode() === s` for every
   * accepted `s`.
   */
  static decode(encoded: string): VersionVector {
    if (typeof encoded !== 'string') {
      throw invalidInput('An encoded version vector must be a string');
    }
    if (encoded.length > MAX_ENCODED_LENGTH) {
      throw invalidInput('Encoded version vector is too long', {
        length: encoded.length,
        maxLength: MAX_ENCODED_LENGTH,
      });
    }
    if (encoded === '') return VersionVector.#EMPTY;
    const parts = encoded.split('.');
    if (parts.length % 2 !== 0) throw invalidInput('Encoded version vector is malformed');
    const actors: string[] = [];
    const counters: number[] = [];
    for (let k = 0; k < parts.length; k += 2) {
      const actor = unescapeActor(parts[k] as string);
      const previous = actors[actors.length - 1];
      if (previous !== undefined && !(previous < actor)) {
        throw invalidInput('Encoded version vector actors must be sorted and unique');
      }
      const counterText = parts[k + 1] as string;
      const counter = Number.parseInt(counterText, 36);
      if (!ENCODED_COUNTER.test(counterText) || !Number.isSafeInteger(counter)) {
        throw invalidInput('Encoded version vector counter is malformed');
      }
      actors.push(actor);
      counters.push(counter);
    }
    return new VersionVector(actors, counters);
  }

  /** How many actors have a non-zero counter. */
  get size(): number {
    return this.actors.length;
  }

  /** The counter of `actor`, 0 when absent. */
  get(actor: string): number {
    const index = search(this.actors, actor);
    return index >= 0 ? (this.counters[index] as number) : 0;
  }

  /** The `[actor, counter]` pairs with non-zero counters, sorted by actor id. */
  *entries(): IterableIterator<[string, number]> {
    for (let i = 0; i < this.actors.length; i++) {
      yield [this.actors[i] as string, this.counters[i] as number];
    }
  }

  /**
   * A new vector with `actor`'s counter one higher. A counter already at
   * `Number.MAX_SAFE_INTEGER` cannot grow exactly: that is `CLOCK_DRIFT`.
   */
  increment(actor: string): VersionVector {
    const actors = this.actors;
    const index = search(actors, actor);
    if (index >= 0) {
      const counter = this.counters[index] as number;
      if (counter >= Number.MAX_SAFE_INTEGER) {
        throw new CausewayError(
          ErrorCode.CLOCK_DRIFT,
          'Version vector counter reached its maximum',
          {
            details: { maxCounter: Number.MAX_SAFE_INTEGER },
          },
        );
      }
      const counters = this.counters.slice();
      counters[index] = counter + 1;
      return new VersionVector(actors, counters);
    }
    assertActor(actor);
    const at = ~index;
    return new VersionVector(actors.toSpliced(at, 0, actor), this.counters.toSpliced(at, 0, 1));
  }

  /** The least upper bound: each actor's larger counter. Returns an input when it is the result. */
  merge(other: VersionVector): VersionVector {
    const aActors = this.actors;
    const bActors = other.actors;
    if (bActors.length === 0) return this;
    if (aActors.length === 0) return other;
    const aCounters = this.counters;
    const bCounters = other.counters;
    if (aActors === bActors || sameActors(aActors, bActors)) {
      let counters: number[] | undefined;
      let isB = true;
      for (let i = 0; i < aCounters.length; i++) {
        const a = aCounters[i] as number;
        const b = bCounters[i] as number;
        if (b > a) {
          counters ??= aCounters.slice();
          counters[i] = b;
        } else if (a > b) {
          isB = false;
        }
      }
      if (counters === undefined) return this;
      return isB ? other : new VersionVector(aActors, counters);
    }
    const actors: string[] = [];
    const counters: number[] = [];
    let isA = true;
    let isB = true;
    let i = 0;
    let j = 0;
    while (i < aActors.length && j < bActors.length) {
      const x = aActors[i] as string;
      const y = bActors[j] as string;
      if (x === y) {
        const a = aCounters[i++] as number;
        const b = bCounters[j++] as number;
        actors.push(x);
        if (a >= b) {
          counters.push(a);
          if (a > b) isB = false;
        } else {
          counters.push(b);
          isA = false;
        }
      } else if (x < y) {
        actors.push(x);
        counters.push(aCounters[i++] as number);
        isB = false;
      } else {
        actors.push(y);
        counters.push(bCounters[j++] as number);
        isA = false;
      }
    }
    if (i < aActors.length) isB = false;
    if (j < bActors.length) isA = false;
    if (isA) return this;
    if (isB) return other;
    for (; i < aActors.length; i++) {
      actors.push(aActors[i] as string);
      counters.push(aCounters[i] as number);
    }
    for (; j < bActors.length; j++) {
      actors.push(bActors[j] as string);
      counters.push(bCounters[j] as number);
    }
    return new VersionVector(actors, counters);
  }

  /**
   * `'before'` when `other` has seen everything this has and more, `'after'` the mirror image,
   * `'equal'` when they are the same vector, `'concurrent'` otherwise.
   */
  compare(other: VersionVector): VersionVectorOrder {
    const aActors = this.actors;
    const bActors = other.actors;
    const aCounters = this.counters;
    const bCounters = other.counters;
    let less = false;
    let greater = false;
    if (aActors === bActors) {
      for (let i = 0; i < aCounters.length; i++) {
        const a = aCounters[i] as number;
        const b = bCounters[i] as number;
        if (a < b) {
          if (greater) return 'concurrent';
          less = true;
        } else if (a > b) {
          if (less) return 'concurrent';
          greater = true;
        }
      }
    } else {
      // An actor present on one side only has a positive counter there and 0 on the other.
      let i = 0;
      let j = 0;
      while (i < aActors.length && j < bActors.length) {
        const x = aActors[i] as string;
        const y = bActors[j] as string;
        let a: number;
        let b: number;
        if (x === y) {
          a = aCounters[i++] as number;
          b = bCounters[j++] as number;
        } else if (x < y) {
          a = 1;
          b = 0;
          i++;
        } else {
          a = 0;
          b = 1;
          j++;
        }
        if (a < b) {
          if (greater) return 'concurrent';
          less = true;
        } else if (a > b) {
          if (less) return 'concurrent';
          greater = true;
        }
      }
      if (i < aActors.length) greater = true;
      if (j < bActors.length) less = true;
      if (less && greater) return 'concurrent';
    }
    if (less) return 'before';
    return greater ? 'after' : 'equal';
  }

  /** True when this vector has seen everything `other` has (`'equal'` or `'after'`). */
  descends(other: VersionVector): boolean {
    const aActors = this.actors;
    const bActors = other.actors;
    if (bActors.length > aActors.length) return false;
    let i = 0;
    for (let j = 0; j < bActors.length; j++) {
      const actor = bActors[j] as string;
      while (i < aActors.length && (aActors[i] as string) < actor) i++;
      if (aActors[i] !== actor || (this.counters[i] as number) < (other.counters[j] as number)) {
        return false;
      }
      i++;
    }
    return true;
  }

  /** `{ actor: counter }` for the non-zero counters; `JSON.stringify` uses it. */
  toJSON(): Record<string, number> {
    const record: Record<string, number> = {};
    for (let i = 0; i < this.actors.length; i++) {
      // defineProperty so that an actor named `__proto__` stays an own, enumerable entry.
      Object.defineProperty(record, this.actors[i] as string, {
        value: this.counters[i],
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return record;
  }

  /**
   * A compact, URL-safe, deterministic string: `actor.counter` pairs joined by `.`, sorted by
   * actor, counters in base 36. Actor characters other than `A-Z a-z 0-9 _ -` are written as
   * `~xx` per UTF-8 byte (lowercase hex). The empty vector encodes to `''`. Example:
   * `{ 'node-a': 3, 'user:7': 40 }` encodes to `node-a.3.user~3a7.14`.
   */
  encode(): string {
    let encoded = '';
    for (let i = 0; i < this.actors.length; i++) {
      if (i > 0) encoded += '.';
      encoded +=
        escapeActor(this.actors[i] as string) + '.' + (this.counters[i] as number).toString(36);
    }
    return encoded;
  }
}

function assertActor(actor: unknown): asserts actor is string {
  if (
    typeof actor !== 'string' ||
    actor.length === 0 ||
    actor.length > MAX_ACTOR_LENGTH ||
    LONE_SURROGATE.test(actor)
  ) {
    throw invalidInput(
      `An actor id must be a non-empty well-formed string of at most ${MAX_ACTOR_LENGTH} characters`,
    );
  }
}

/** Binary search: the index of `actor`, or `~insertionPoint` (a negative number) when absent. */
function search(actors: readonly string[], actor: string): number {
  let low = 0;
  let high = actors.length - 1;
  while (low <= high) {
    const mid = (low + high) >>> 1;
    const probe = actors[mid] as string;
    if (probe === actor) return mid;
    if (probe < actor) low = mid + 1;
    else high = mid - 1;
  }
  return ~low;
}

function sameActors(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function escapeActor(actor: string): string {
  if (LITERAL_ACTOR.test(actor)) return actor;
  return encodeURIComponent(actor).replace(
    URI_ESCAPE_OR_MARK,
    (mark: string, hex: string | undefined) =>
      '~' + (hex === undefined ? mark.charCodeAt(0).toString(16) : hex.toLowerCase()),
  );
}

function unescapeActor(escaped: string): string {
  if (LITERAL_ACTOR.test(escaped)) {
    assertActor(escaped);
    return escaped;
  }
  if (!ENCODED_ACTOR.test(escaped)) throw invalidInput('Encoded version vector actor is malformed');
  let actor: string;
  try {
    actor = decodeURIComponent(escaped.replaceAll('~', '%'));
  } catch {
    throw invalidInput('Encoded version vector actor is not valid UTF-8');
  }
  assertActor(actor);
  // Only the canonical spelling is accepted, so that equal vectors always encode alike.
  if (escapeActor(actor) !== escaped) {
    throw invalidInput('Encoded version vector actor is not canonically escaped');
  }
  return actor;
}
