import { invalidInput } from '../errors.js';
import { hasLoneSurrogate } from '../util/text.js';

/** The longest key a versioned store accepts, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 512;

/** The longest actor id a handler accepts, in UTF-8 bytes (actors travel in every context). */
export const MAX_ACTOR_BYTES = 128;

/** Nesting deeper than this is refused rather than risking a stack overflow while checking. */
const MAX_VALUE_DEPTH = 256;

/** A value that survives `JSON.stringify` then `JSON.parse` unchanged. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

function assertWellFormedText(what: string, text: string, maxBytes: number): void {
  if (text.length === 0) throw invalidInput(`${what} must not be empty`);
  if (text.includes('\u0000')) throw invalidInput(`${what} must not contain NUL characters`);
  if (hasLoneSurrogate(text)) throw invalidInput(`${what} must be well-formed Unicode`);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) {
    throw invalidInput(`${what} is longer than ${maxBytes} UTF-8 bytes`, { bytes, maxBytes });
  }
}

/** Refuses a key that is not a non-empty, well-formed string of at most `MAX_KEY_BYTES` bytes. */
export function assertKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw invalidInput('key must be a string');
  assertWellFormedText('key', key, MAX_KEY_BYTES);
}

/** Refuses an actor id that is not a non-empty, well-formed string of at most 128 bytes. */
export function assertActor(actor: unknown): asserts actor is string {
  if (typeof actor !== 'string') throw invalidInput('actor must be a string');
  assertWellFormedText('actor', actor, MAX_ACTOR_BYTES);
}

/** Refuses write options that are not an object with a valid `actor` (see `assertActor`). */
export function assertWriteOptions(options: unknown): asserts options is { actor: string } {
  if (typeof options !== 'object' || options === null) {
    throw invalidInput('write options must be an object: { context?, actor }');
  }
  assertActor((options as { actor?: unknown }).actor);
}

/**
 * Refuses anything that JSON would not carry faithfully: `undefined`, functions, symbols,
 * BigInt, non-finite numbers, cycles, and objects other than plain objects and arrays (a `Date`
 * or a `Map` would come back as something else). Shared references are fine; cycles are not.
 */
export function assertJsonValue(value: unknown): asserts value is JsonValue {
  checkJson(value, new Set(), 0);
}

function checkJson(value: unknown, ancestors: Set<object>, depth: number): void {
  switch (typeof value) {
    case 'string':
      if (hasLoneSurrogate(value)) throw invalidInput('value holds a malformed Unicode string');
      return;
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw invalidInput('value holds a non-finite number');
      return;
    case 'object':
      break;
    default:
      throw invalidInput(`value holds a ${typeof value}, which JSON cannot store`);
  }
  if (value === null) return;
  if (depth >= MAX_VALUE_DEPTH)
    throw invalidInput(`value is nested deeper than ${MAX_VALUE_DEPTH}`);
  if (ancestors.has(value)) throw invalidInput('value is circular');
  const proto: unknown = Object.getPrototypeOf(value);
  const isArray = Array.isArray(value);
  if (!isArray && proto !== Object.prototype && proto !== null) {
    throw invalidInput('value holds an object that is not a plain object or an array');
  }
  ancestors.add(value);
  if (isArray) {
    for (const item of value) checkJson(item, ancestors, depth + 1);
  } else {
    for (const [name, item] of Object.entries(value)) {
      if (hasLoneSurrogate(name)) throw invalidInput('value holds a malformed property name');
      checkJson(item, ancestors, depth + 1);
    }
  }
  ancestors.delete(value);
}

/** Parses a serialized state, turning a JSON syntax error into `INVALID_INPUT`. */
export function parseState(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw invalidInput(`${what} is not valid JSON`);
  }
}

/** True for a plain non-array object (used to validate decoded states). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
