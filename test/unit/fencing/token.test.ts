import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../src/errors.js';
import {
  assertFencingToken,
  assertResource,
  MAX_FENCING_TOKEN,
  MAX_RESOURCE_LENGTH,
  parseFencingToken,
  resolveAcquireOptions,
} from '../../../src/fencing/token.js';
import * as core from '../../../src/index.js';
import { codeOf } from '../../support/errors.js';

describe('parseFencingToken', () => {
  it('round-trips every token in range through its decimal string', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: MAX_FENCING_TOKEN }), (token) => {
        expect(parseFencingToken(token.toString())).toBe(token);
        expect(parseFencingToken(token)).toBe(token);
      }),
    );
  });

  it('accepts safe non-negative integer numbers', () => {
    expect(parseFencingToken(0)).toBe(0n);
    expect(parseFencingToken(Number.MAX_SAFE_INTEGER)).toBe(BigInt(Number.MAX_SAFE_INTEGER));
  });

  it.each([
    ['empty', ''],
    ['word', 'abc'],
    ['negative string', '-1'],
    ['plus sign', '+1'],
    ['float string', '1.5'],
    ['exponent', '1e3'],
    ['hex', '0x10'],
    ['spaces', ' 12'],
    ['leading zero', '012'],
    ['20 digits', '1'.repeat(20)],
    ['huge', '9'.repeat(10_000)],
    ['just above 2^63-1', '9223372036854775808'],
    ['negative number', -1],
    ['float number', 1.5],
    ['NaN', Number.NaN],
    ['unsafe number', 2 ** 60],
    ['negative bigint', -1n],
    ['bigint above max', MAX_FENCING_TOKEN + 1n],
    ['null', null],
    ['undefined', undefined],
    ['object', { token: 1 }],
    ['array', ['1']],
  ])('rejects %s with INVALID_INPUT', (_name, input) => {
    expect(codeOf(() => parseFencingToken(input))).toBe(ErrorCode.INVALID_INPUT);
  });

  it('never throws anything but INVALID_INPUT on arbitrary input', () => {
    fc.assert(
      fc.property(fc.anything(), (input) => {
        const code = codeOf(() => parseFencingToken(input));
        expect(code === undefined || code === ErrorCode.INVALID_INPUT).toBe(true);
      }),
    );
  });

  it('is public from the core entry point', () => {
    expect(core.parseFencingToken('42')).toBe(42n);
    expect(core.MAX_FENCING_TOKEN).toBe(2n ** 63n - 1n);
  });
});

describe('resource, holder and ttl validation', () => {
  it('accepts resources up to the limit and refuses longer or empty ones', () => {
    expect(codeOf(() => assertResource('r'.repeat(MAX_RESOURCE_LENGTH)))).toBeUndefined();
    expect(codeOf(() => assertResource('r'.repeat(MAX_RESOURCE_LENGTH + 1)))).toBe('INVALID_INPUT');
    expect(codeOf(() => assertResource(''))).toBe('INVALID_INPUT');
    expect(codeOf(() => assertResource(42))).toBe('INVALID_INPUT');
  });

  it('refuses non-bigint tokens where a bigint is required', () => {
    expect(codeOf(() => assertFencingToken(1))).toBe('INVALID_INPUT');
    expect(codeOf(() => assertFencingToken(-5n))).toBe('INVALID_INPUT');
    expect(codeOf(() => assertFencingToken(5n))).toBeUndefined();
  });

  it('refuses bad ttls and holders, and fills in a random holder', () => {
    const random = () => 'generated';
    expect(resolveAcquireOptions('r', { ttlMs: 10 }, random)).toEqual({
      ttlMs: 10,
      holder: 'generated',
    });
    for (const ttlMs of [0, -1, 1.5, Number.NaN, 2 ** 31, '10' as unknown as number]) {
      expect(codeOf(() => resolveAcquireOptions('r', { ttlMs }, random))).toBe('INVALID_INPUT');
    }
    for (const holder of ['', 'h'.repeat(257), 7 as unknown as string]) {
      expect(codeOf(() => resolveAcquireOptions('r', { ttlMs: 10, holder }, random))).toBe(
        'INVALID_INPUT',
      );
    }
  });
});
