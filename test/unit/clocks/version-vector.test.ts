import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VersionVector, type VersionVectorOrder } from '../../../src/clocks/index.js';
import { isCausewayError } from '../../../src/errors.js';
import { actorArb, anyCodeUnitArb, counterArb, decodeOrNull, recordArb } from './arbitraries.js';

const vectorArb = recordArb.map((record) => VersionVector.from(record));

const MIRROR: Record<VersionVectorOrder, VersionVectorOrder> = {
  equal: 'equal',
  before: 'after',
  after: 'before',
  concurrent: 'concurrent',
};

/** The textbook definition on plain records, to check the linear walks against. */
function referenceCompare(
  a: Record<string, number>,
  b: Record<string, number>,
): VersionVectorOrder {
  let less = false;
  let greater = false;
  for (const actor of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = Object.hasOwn(a, actor) ? (a[actor] as number) : 0;
    const y = Object.hasOwn(b, actor) ? (b[actor] as number) : 0;
    if (x < y) less = true;
    if (x > y) greater = true;
  }
  if (less && greater) return 'concurrent';
  if (less) return 'before';
  return greater ? 'after' : 'equal';
}

/** Increments in these tests stay clear of the counter limit, tested on its own below. */
function canIncrement(vector: VersionVector): boolean {
  return [...vector.entries()].every(([, counter]) => counter < Number.MAX_SAFE_INTEGER - 2);
}

function expectInvalidInput(fn: () => unknown): void {
  expect(fn).toThrow(expect.objectContaining({ name: 'CausewayError', code: 'INVALID_INPUT' }));
}

describe('VersionVector laws', () => {
  it('merge is commutative, associative and idempotent', () => {
    fc.assert(
      fc.property(vectorArb, vectorArb, vectorArb, (a, b, c) => {
        expect(a.merge(b).compare(b.merge(a))).toBe('equal');
        expect(
          a
            .merge(b)
            .merge(c)
            .compare(a.merge(b.merge(c))),
        ).toBe('equal');
        expect(a.merge(a).compare(a)).toBe('equal');
      }),
    );
  });

  it('merge is the least upper bound: it descends both inputs and nothing smaller does', () => {
    fc.assert(
      fc.property(vectorArb, vectorArb, vectorArb, (a, b, c) => {
        const merged = a.merge(b);
        expect(merged.descends(a)).toBe(true);
        expect(merged.descends(b)).toBe(true);
        for (const [actor, counter] of merged.entries()) {
          expect(counter).toBe(Math.max(a.get(actor), b.get(actor)));
        }
        if (c.descends(a) && c.descends(b)) expect(c.descends(merged)).toBe(true);
      }),
    );
  });

  it('compare matches the pointwise definition, and compare(b, a) mirrors compare(a, b)', () => {
    fc.assert(
      fc.property(recordArb, recordArb, (x, y) => {
        const a = VersionVector.from(x);
        const b = VersionVector.from(y);
        const order = a.compare(b);
        expect(order).toBe(referenceCompare(x, y));
        expect(b.compare(a)).toBe(MIRROR[order]);
        expect(a.descends(b)).toBe(order === 'equal' || order === 'after');
      }),
    );
  });

  it('vectors derived from one another compare correctly (shared actor arrays)', () => {
    fc.assert(
      fc.property(vectorArb, actorArb, actorArb, (a, p, q) => {
        fc.pre(p !== q && canIncrement(a));
        const left = a.increment(p);
        const right = a.increment(q);
        expect(left.compare(right)).toBe('concurrent');
        expect(left.increment(p).compare(left)).toBe('after');
        expect(left.merge(right).compare(right.merge(left))).toBe('equal');
        expect(left.merge(right).compare(a.increment(p).increment(q))).toBe('equal');
      }),
    );
  });

  it('zero entries are dropped: {a: 0} equals {}', () => {
    expect(VersionVector.from({ a: 0 }).compare(VersionVector.empty())).toBe('equal');
    fc.assert(
      fc.property(recordArb, actorArb, (record, actor) => {
        const withZero = VersionVector.from({ ...record, [actor]: 0 });
        const without = VersionVector.from(
          Object.fromEntries(Object.entries(record).filter(([key]) => key !== actor)),
        );
        expect(withZero.compare(without)).toBe('equal');
        expect(withZero.encode()).toBe(without.encode());
        expect(withZero.get(actor)).toBe(0);
        expect(Object.values(withZero.toJSON())).not.toContain(0);
      }),
    );
  });

  it('increment strictly dominates and adds exactly one', () => {
    fc.assert(
      fc.property(vectorArb, actorArb, (a, actor) => {
        fc.pre(canIncrement(a));
        const next = a.increment(actor);
        expect(next.compare(a)).toBe('after');
        expect(a.compare(next)).toBe('before');
        expect(next.get(actor)).toBe(a.get(actor) + 1);
        expect(next.size - a.size).toBe(a.get(actor) === 0 ? 1 : 0);
      }),
    );
  });

  it('is immutable: operations leave their inputs unchanged', () => {
    fc.assert(
      fc.property(vectorArb, vectorArb, actorArb, (a, b, actor) => {
        const before = [a.encode(), b.encode()];
        a.merge(b);
        b.merge(a);
        if (canIncrement(a)) a.increment(actor);
        expect([a.encode(), b.encode()]).toEqual(before);
      }),
    );
  });
});

describe('VersionVector encoding', () => {
  it('round-trips through encode/decode and toJSON/from', () => {
    fc.assert(
      fc.property(vectorArb, (a) => {
        const encoded = a.encode();
        const decoded = VersionVector.decode(encoded);
        expect(decoded.compare(a)).toBe('equal');
        expect(decoded.encode()).toBe(encoded);
        expect(VersionVector.from(a.toJSON()).encode()).toBe(encoded);
        expect(JSON.parse(JSON.stringify(a))).toEqual(a.toJSON());
      }),
    );
  });

  it('is URL-safe and deterministic whatever order the entries were given in', () => {
    fc.assert(
      fc.property(recordArb, (record) => {
        const encoded = VersionVector.from(record).encode();
        const reversed = Object.fromEntries(Object.entries(record).reverse());
        expect(VersionVector.from(reversed).encode()).toBe(encoded);
        expect(encoded).toMatch(/^[A-Za-z0-9._~-]*$/);
        expect(encodeURIComponent(encoded)).toBe(encoded);
      }),
    );
  });

  it('equal vectors encode alike and are deeply equal; different ones are neither', () => {
    fc.assert(
      fc.property(vectorArb, vectorArb, (a, b) => {
        const equal = a.compare(b) === 'equal';
        expect(a.encode() === b.encode()).toBe(equal);
        expect(isDeepStrictEqual(a, b)).toBe(equal);
      }),
    );
    const vector = VersionVector.from({ a: 1 });
    expect(VersionVector.from(vector)).toBe(vector);
  });

  it('has a readable, compact layout', () => {
    expect(VersionVector.from({ 'node-a': 3, 'user:7': 40 }).encode()).toBe('node-a.3.user~3a7.14');
    expect(VersionVector.empty().encode()).toBe('');
    expect(VersionVector.from({ 'a.b': 1, '~': 2, é: 36 }).encode()).toBe(
      'a~2eb.1.~7e.2.~c3~a9.10',
    );
    expect(VersionVector.decode('b.1.c.z').toJSON()).toEqual({ b: 1, c: 35 });
  });

  it('keeps an actor named __proto__ as an ordinary entry', () => {
    const vector = VersionVector.from(JSON.parse('{"__proto__": 2, "a": 1}'));
    expect(vector.get('__proto__')).toBe(2);
    expect(Object.keys(vector.toJSON())).toEqual(['__proto__', 'a']);
    expect(VersionVector.decode(vector.encode()).get('__proto__')).toBe(2);
  });

  it.each([
    ['odd number of parts', 'a.1.b'],
    ['empty actor', '.1'],
    ['empty counter', 'a.'],
    ['zero counter', 'a.0'],
    ['leading zero', 'a.01'],
    ['uppercase counter', 'a.Z'],
    ['counter beyond 2^53 - 1', `a.${(2 ** 53).toString(36)}`],
    ['unsorted actors', 'b.1.a.1'],
    ['repeated actor', 'a.1.a.2'],
    ['character outside the alphabet', 'a b.1'],
    ['escape of a literal character', '~61.1'],
    ['uppercase escape', '~C3~A9.1'],
    ['truncated escape', 'a~2.1'],
    ['invalid UTF-8', '~ff.1'],
    ['UTF-8 encoded surrogate', '~ed~a0~80.1'],
    ['actor longer than the limit', `${'a'.repeat(VersionVector.MAX_ACTOR_LENGTH + 1)}.1`],
    ['oversized input', 'a.1.'.repeat(VersionVector.MAX_ENCODED_LENGTH)],
    ['trailing separator', 'a.1.'],
  ])('decode rejects %s with INVALID_INPUT', (_, text) => {
    expectInvalidInput(() => VersionVector.decode(text));
  });

  it('decode rejects a non-string with INVALID_INPUT', () => {
    for (const value of [undefined, null, 42, {}, ['a.1']]) {
      expectInvalidInput(() => VersionVector.decode(value as unknown as string));
    }
  });

  it('decode of any string is a valid vector or INVALID_INPUT, never another exception', () => {
    const alphabetArb = fc.string({
      unit: fc.constantFrom('a', 'b', 'Z', '0', '1', 'z', '.', '~', '-', '_', 'e', 'f', '3'),
      maxLength: 40,
    });
    const hugeArb = fc
      .tuple(fc.string({ maxLength: 8 }), fc.integer({ min: 10_000, max: 40_000 }))
      .map(([unit, times]) => unit.repeat(times));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: anyCodeUnitArb, maxLength: 60 }),
          alphabetArb,
          hugeArb,
          vectorArb.map((vector) => vector.encode()),
        ),
        (text) => {
          const decoded = decodeOrNull((s) => VersionVector.decode(s), text);
          if (decoded !== null) expect(decoded.encode()).toBe(text);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('VersionVector validation', () => {
  it.each([
    ['a negative counter', { a: -1 }],
    ['a fractional counter', { a: 1.5 }],
    ['NaN', { a: Number.NaN }],
    ['a counter beyond 2^53 - 1', { a: 2 ** 53 }],
    ['a non-number counter', { a: '1' }],
    ['an empty actor', { '': 1 }],
    ['an actor longer than the limit', { ['x'.repeat(VersionVector.MAX_ACTOR_LENGTH + 1)]: 1 }],
    ['a lone surrogate in an actor', { 'a\ud800': 1 }],
  ])('from rejects %s with INVALID_INPUT', (_, record) => {
    expectInvalidInput(() => VersionVector.from(record as Record<string, number>));
  });

  it('from rejects non-objects with INVALID_INPUT', () => {
    for (const value of [null, undefined, 3, 'a', [1, 2]]) {
      expectInvalidInput(() => VersionVector.from(value as unknown as Record<string, number>));
    }
  });

  it('increment validates new actors', () => {
    expectInvalidInput(() => VersionVector.empty().increment(''));
    expectInvalidInput(() => VersionVector.empty().increment('\udc00'));
    expectInvalidInput(() =>
      VersionVector.empty().increment('x'.repeat(VersionVector.MAX_ACTOR_LENGTH + 1)),
    );
    expect(VersionVector.empty().increment('x'.repeat(VersionVector.MAX_ACTOR_LENGTH)).size).toBe(
      1,
    );
  });

  it('increment past Number.MAX_SAFE_INTEGER is CLOCK_DRIFT', () => {
    const full = VersionVector.from({ a: Number.MAX_SAFE_INTEGER });
    let caught: unknown;
    try {
      full.increment('a');
    } catch (error) {
      caught = error;
    }
    expect(isCausewayError(caught, 'CLOCK_DRIFT')).toBe(true);
    expect(full.get('a')).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('accepts counters up to Number.MAX_SAFE_INTEGER', () => {
    fc.assert(
      fc.property(actorArb, counterArb, (actor, counter) => {
        const vector = VersionVector.from({ [actor]: counter });
        expect(vector.get(actor)).toBe(counter);
        expect(VersionVector.decode(vector.encode()).get(actor)).toBe(counter);
      }),
    );
  });
});
