import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isCausewayError } from '../../../src/errors.js';
import {
  booleanOption,
  closestName,
  editDistance,
  knownOptions,
  numberOption,
  oneOfOption,
  stringOption,
} from '../../../src/options.js';

/** The CONFIG error `fn` throws (fails the test when it throws none or another). */
function configErrorOf(fn: () => unknown) {
  try {
    fn();
  } catch (error) {
    if (isCausewayError(error, 'CONFIG')) return error;
    throw error;
  }
  throw new Error('expected a CONFIG error');
}

describe('knownOptions', () => {
  const keys = ['replicaSet', 'level', 'onNoCaughtUp', 'waitTimeoutMs'] as const;
  type Options = {
    replicaSet?: unknown;
    level?: unknown;
    onNoCaughtUp?: unknown;
    waitTimeoutMs?: unknown;
  };

  it('passes an object with known keys only, unchanged', () => {
    const options: Options = { level: 'strong', onNoCaughtUp: 'wait' };
    expect(knownOptions(options, 'Router', [...keys])).toBe(options);
    expect(knownOptions<Options>({}, 'Router', [...keys])).toEqual({});
  });

  it('names the closest known key of a misspelt one', () => {
    const error = configErrorOf(() =>
      knownOptions({ onNoCaughtUP: 'wait' } as Options, 'Router', [...keys]),
    );
    expect(error.message).toBe(
      'Router: unknown option "onNoCaughtUP" (did you mean onNoCaughtUp?)',
    );
    expect(error.details).toEqual({ option: 'onNoCaughtUP', closest: 'onNoCaughtUp' });
    expect(
      configErrorOf(() => knownOptions({ waitTimeout: 1 } as Options, 'Router', [...keys])).message,
    ).toContain('did you mean waitTimeoutMs?');
  });

  it('lists the known keys when none is close', () => {
    const error = configErrorOf(() =>
      knownOptions({ poolSize: 3 } as Options, 'Router', [...keys]),
    );
    expect(error.message).toBe(
      'Router: unknown option "poolSize" (known options: replicaSet, level, onNoCaughtUp, waitTimeoutMs)',
    );
  });

  it('refuses a key set to undefined too, and anything that is not an object', () => {
    expect(() => knownOptions({ levle: undefined } as Options, 'Router', [...keys])).toThrow(
      /did you mean level\?/,
    );
    for (const junk of [null, undefined, 3, 'x']) {
      expect(configErrorOf(() => knownOptions(junk as Options, 'Router', [...keys])).message).toBe(
        'Router: options must be an object',
      );
    }
  });
});

describe('editDistance and closestName', () => {
  it('counts edits, a swap of neighbours as one, a change of case as half', () => {
    expect(editDistance('', '')).toBe(0);
    expect(editDistance('abc', '')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('level', 'levle')).toBe(1);
    expect(editDistance('onNoCaughtUP', 'onNoCaughtUp')).toBe(0.5);
  });

  it('is zero only for equal strings, symmetric, and within the length bounds', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), (a, b) => {
        const d = editDistance(a, b);
        expect(d === 0).toBe(a === b);
        expect(editDistance(b, a)).toBe(d);
        expect(d).toBeGreaterThanOrEqual(Math.abs(a.length - b.length));
        expect(d).toBeLessThanOrEqual(Math.max(a.length, b.length));
      }),
    );
  });

  it('suggests a name only when the slip is small next to the name', () => {
    expect(closestName('ttl', ['ttlMs', 'keyPrefix'])).toBeUndefined();
    expect(closestName('ttlMS', ['ttlMs', 'keyPrefix'])).toBe('ttlMs');
    expect(closestName('keyprefix', ['ttlMs', 'keyPrefix'])).toBe('keyPrefix');
    expect(closestName('x', [])).toBeUndefined();
  });
});

describe('value validators', () => {
  it('numberOption: fallback for undefined, bounds and integers in one message format', () => {
    expect(numberOption('O', 'n', undefined, 7)).toBe(7);
    expect(numberOption('O', 'n', 0, 7, { min: 0 })).toBe(0);
    expect(numberOption('O', 'n', Number.POSITIVE_INFINITY, 7, { min: 0, infinite: true })).toBe(
      Number.POSITIVE_INFINITY,
    );
    expect(configErrorOf(() => numberOption('O', 'n', -1, 7, { min: 0 })).message).toBe(
      'O: n must be a finite number >= 0',
    );
    expect(
      configErrorOf(() => numberOption('O', 'n', 1.5, 7, { min: 1, integer: true })).message,
    ).toBe('O: n must be an integer >= 1');
    expect(configErrorOf(() => numberOption('O', 'n', 0, 7, { above: 0 })).message).toBe(
      'O: n must be a finite number > 0',
    );
    for (const junk of [Number.NaN, Number.POSITIVE_INFINITY, '3', 3n, null]) {
      expect(() => numberOption('O', 'n', junk as number, 7)).toThrow('O: n must be');
    }
  });

  it('oneOfOption, stringOption, booleanOption', () => {
    expect(oneOfOption('O', 'p', undefined, ['a', 'b'], 'a')).toBe('a');
    expect(configErrorOf(() => oneOfOption('O', 'p', 'c' as 'a', ['a', 'b'], 'a')).message).toBe(
      "O: p must be one of 'a', 'b'",
    );
    expect(stringOption('O', 's', undefined, 'd')).toBe('d');
    expect(stringOption('O', 's', '', 'd', true)).toBe('');
    expect(configErrorOf(() => stringOption('O', 's', '', 'd')).message).toBe(
      'O: s must be a non-empty string',
    );
    expect(booleanOption('O', 'b', undefined, true)).toBe(true);
    expect(configErrorOf(() => booleanOption('O', 'b', 1 as never, true)).message).toBe(
      'O: b must be true or false',
    );
  });
});
