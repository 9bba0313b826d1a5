import fc from 'fast-check';
import { CausewayError } from '../../../src/errors.js';

/** Actor ids: a few shared ones (so vectors overlap) and arbitrary ones (to exercise escaping). */
export const actorArb = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('a', 'b', 'c', 'node-1', 'user:7', 'é', '__proto__') },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }) },
);

/** Small counters so that ties and dominance happen often, with the odd huge one. */
export const counterArb = fc.oneof(
  { weight: 6, arbitrary: fc.nat({ max: 4 }) },
  { weight: 1, arbitrary: fc.maxSafeNat() },
);

export const recordArb = fc.dictionary(actorArb, counterArb, { maxKeys: 6 });

/** Code units including lone surrogates, which are not well-formed strings. */
export const anyCodeUnitArb = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 1 }),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => String.fromCharCode(unit)),
);

/** Runs `decode` and returns its value, or null when it threw the expected error. */
export function decodeOrNull<T>(decode: (text: string) => T, text: string): T | null {
  try {
    return decode(text);
  } catch (error) {
    if (error instanceof CausewayError && error.code === 'INVALID_INPUT') return null;
    throw error;
  }
}
