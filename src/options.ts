/**
 * Validation of options objects, shared by every public constructor and factory. Every failure
 * is a `CONFIG` error worded `Owner: name must be ...`, and unknown keys are refused (naming the
 * closest known key), so a misspelt option never runs silently with its default.
 */
import { configError } from './errors.js';

/** `options` itself when it is an object, else a `CONFIG` error: "Owner: options must be an object". */
export function optionsObject<T>(options: T, owner: string): T & object {
  if (typeof options !== 'object' || options === null) {
    throw configError(`${owner}: options must be an object`);
  }
  return options;
}

/**
 * `options` itself when it is an object whose own keys are all in `known`; else a `CONFIG`
 * error naming the first unknown key and the closest known one ("did you mean onNoCaughtUp?").
 */
export function knownOptions<T>(
  options: T,
  owner: string,
  known: readonly (keyof NonNullable<T> & string)[],
): T & object {
  const checked = optionsObject(options, owner);
  for (const key of Object.keys(checked)) {
    if (known.includes(key as keyof NonNullable<T> & string)) continue;
    const closest = closestName(key, known);
    const hint =
      closest === undefined ? `known options: ${known.join(', ')}` : `did you mean ${closest}?`;
    throw configError(`${owner}: unknown option ${JSON.stringify(key)} (${hint})`, {
      option: key,
      ...(closest === undefined ? {} : { closest }),
    });
  }
  return checked;
}

/**
 * The name in `names` closest to `name` by edit distance (case differences count half), when it
 * is close enough to be a likely slip: at most a third of the longer name, and at least 1 edit.
 */
export function closestName(name: string, names: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of names) {
    const distance = editDistance(name, candidate);
    if (distance < bestDistance) {
      bestDistance = distance;
      best = candidate;
    }
  }
  if (best === undefined) return undefined;
  const allowed = Math.max(1, Math.floor(Math.max(name.length, best.length) / 3));
  return bestDistance <= allowed ? best : undefined;
}

/**
 * Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
 * neighbours cost 1, a substitution that only changes case costs 0.5 (`onNoCaughtUP` is one
 * slip of the shift key away from `onNoCaughtUp`).
 */
export function editDistance(a: string, b: string): number {
  // Three rows suffice: the swap looks two rows back.
  let before = new Array<number>(b.length + 1).fill(0);
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  let current = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    current[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const x = a[i - 1]!;
      const y = b[j - 1]!;
      const substitution = x === y ? 0 : x.toLowerCase() === y.toLowerCase() ? 0.5 : 1;
      let distance = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + substitution,
      );
      if (i > 1 && j > 1 && x === b[j - 2] && a[i - 2] === y) {
        distance = Math.min(distance, before[j - 2]! + 1);
      }
      current[j] = distance;
    }
    [before, previous, current] = [previous, current, before];
  }
  return previous[b.length]!;
}

/**
 * The function option `value`, or `fallback` when it is undefined; anything else is a `CONFIG`
 * error: "`name` must be a function" (`name` in the form `Owner: option`).
 */
export function functionOption<F extends (...args: never[]) => unknown>(
  name: string,
  value: F | undefined,
  fallback: F,
): F;
export function functionOption<F extends (...args: never[]) => unknown>(
  name: string,
  value: F | undefined,
): F | undefined;
export function functionOption<F extends (...args: never[]) => unknown>(
  name: string,
  value: F | undefined,
  fallback?: F,
): F | undefined {
  const resolved = value === undefined ? fallback : value;
  if (resolved !== undefined && typeof resolved !== 'function') {
    throw configError(`${name} must be a function`);
  }
  return resolved;
}

/** What a number option must be; each bound is inclusive. */
export interface NumberRule {
  /** Smallest value allowed. Default: none. */
  readonly min?: number;
  /** A bound the value must be above (exclusive), e.g. 0 for a timeout. Default: none. */
  readonly above?: number;
  /** True when the value must be a safe integer. Default false. */
  readonly integer?: boolean;
  /** True when `Infinity` is allowed (e.g. "no limit"). Default false. */
  readonly infinite?: boolean;
}

/**
 * The number option `value`, or `fallback` when it is undefined; a value breaking `rule` (or not
 * a number) is a `CONFIG` error: "Owner: name must be an integer >= 1".
 */
export function numberOption(
  owner: string,
  name: string,
  value: number | undefined,
  fallback: number,
  rule: NumberRule = {},
): number {
  if (value === undefined) return fallback;
  const { min, above, integer = false, infinite = false } = rule;
  const valid =
    typeof value === 'number' &&
    (integer
      ? Number.isSafeInteger(value) || (infinite && value === Number.POSITIVE_INFINITY)
      : Number.isFinite(value) || (infinite && value === Number.POSITIVE_INFINITY)) &&
    (min === undefined || value >= min) &&
    (above === undefined || value > above);
  if (!valid) {
    const kind = integer ? 'an integer' : 'a finite number';
    const bound = `${min === undefined ? '' : ` >= ${min}`}${above === undefined ? '' : ` > ${above}`}`;
    const orInfinity = infinite ? ' (or Infinity)' : '';
    throw configError(`${owner}: ${name} must be ${kind}${bound}${orInfinity}`, { [name]: value });
  }
  return value;
}

/** The option `value` when it is one of `allowed`, `fallback` when undefined, else `CONFIG`. */
export function oneOfOption<T extends string>(
  owner: string,
  name: string,
  value: T | undefined,
  allowed: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value)) {
    const list = allowed.map((a) => `'${a}'`).join(', ');
    throw configError(`${owner}: ${name} must be one of ${list}`, { [name]: value });
  }
  return value;
}

/**
 * The string option `value`, `fallback` when undefined; anything else, or `''` unless
 * `allowEmpty` (a key prefix may be empty), is `CONFIG`.
 */
export function stringOption(
  owner: string,
  name: string,
  value: string | undefined,
  fallback: string,
  allowEmpty = false,
): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || (value === '' && !allowEmpty)) {
    const kind = allowEmpty ? 'a string' : 'a non-empty string';
    throw configError(`${owner}: ${name} must be ${kind}`, { [name]: value });
  }
  return value;
}

/** The boolean option `value`, `fallback` when undefined, else `CONFIG`. */
export function booleanOption(
  owner: string,
  name: string,
  value: boolean | undefined,
  fallback: boolean,
): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') {
    throw configError(`${owner}: ${name} must be true or false`, { [name]: value });
  }
  return value;
}
