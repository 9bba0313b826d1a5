import fc from 'fast-check';
import { expect } from 'vitest';
import { isCausewayError } from '../../src/errors.js';

/**
 * Values a caller or a client could hand over by mistake or on purpose: everything
 * `fc.anything` makes (with bigints, boxed values, dates, maps, sets, typed arrays, sparse
 * arrays, null-prototype objects), plus the edge cases that break naive checks.
 */
export const junkArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.anything({
    maxDepth: 2,
    withBigInt: true,
    withBoxedValues: true,
    withDate: true,
    withMap: true,
    withSet: true,
    withNullPrototype: true,
    withTypedArray: true,
    withSparseArray: true,
  }),
  fc.constantFrom<unknown>(
    undefined,
    null,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    -1,
    -0,
    0,
    1.5,
    2 ** 53,
    '',
    ' ',
    '\u0000',
    '\uD800',
    'x'.repeat(10_000),
    Symbol('junk'),
    () => undefined,
    [],
    {},
    Object.create(null),
    new Date(Number.NaN),
    true,
    0n,
    -1n,
  ),
);

/**
 * `base` with one property (picked by `pick`) replaced by junk, one added, or `base` whole
 * replaced by junk: the options a constructor must refuse with a typed error, never a crash.
 */
export function junkOptionsArb(
  base: () => Record<string, unknown>,
  extraKeys: readonly string[] = [],
): fc.Arbitrary<unknown> {
  const keys = [...Object.keys(base()), ...extraKeys];
  return fc.oneof(
    junkArb,
    fc.constantFrom(null, undefined),
    fc.tuple(fc.nat(), junkArb).map(([pick, junk]) => {
      const options = base();
      if (keys.length > 0) options[keys[pick % keys.length]!] = junk;
      return options;
    }),
    fc.tuple(fc.nat(), junkArb, fc.nat(), junkArb).map(([first, junk1, second, junk2]) => {
      const options = base();
      if (keys.length > 0) {
        options[keys[first % keys.length]!] = junk1;
        options[keys[second % keys.length]!] = junk2;
      }
      return options;
    }),
  );
}

/** Fails unless `error` is a `CausewayError` with one of `codes`. */
export function expectTypedError(error: unknown, codes: readonly string[]): void {
  expect(isCausewayError(error), `not a CausewayError: ${String(error)}`).toBe(true);
  expect(codes, String(error)).toContain((error as { code: string }).code);
}

/** Runs `fn`: it succeeds, or fails with a `CausewayError` of one of `codes`. */
export async function succeedsOrRefuses<T>(
  fn: () => T | Promise<T>,
  codes: readonly string[],
): Promise<{ ok: true; value: T } | { ok: false }> {
  try {
    return { ok: true, value: await fn() };
  } catch (error) {
    expectTypedError(error, codes);
    return { ok: false };
  }
}
