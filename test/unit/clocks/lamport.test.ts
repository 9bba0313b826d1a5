import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compareLamportTimestamps,
  LAMPORT_MAX_COUNTER,
  LamportClock,
  type LamportTimestamp,
} from '../../../src/clocks/index.js';
import { isCausewayError } from '../../../src/errors.js';
import { caught } from '../../support/errors.js';

const timestampArb: fc.Arbitrary<LamportTimestamp> = fc.record({
  counter: fc.oneof(fc.nat({ max: 3 }), fc.maxSafeNat()),
  node: fc.constantFrom('a', 'b', 'ab', 'B'),
});

describe('LamportClock', () => {
  it('ticks from 1, reads without advancing, and receives as max + 1', () => {
    const clock = new LamportClock('a');
    expect(clock.now()).toEqual({ counter: 0, node: 'a' });
    expect(clock.tick()).toEqual({ counter: 1, node: 'a' });
    expect(clock.now()).toEqual({ counter: 1, node: 'a' });
    expect(clock.receive({ counter: 7, node: 'b' })).toEqual({ counter: 8, node: 'a' });
    expect(clock.receive({ counter: 3, node: 'b' })).toEqual({ counter: 9, node: 'a' });
    expect(clock.receive(20)).toEqual({ counter: 21, node: 'a' });
    expect(clock.tick()).toEqual({ counter: 22, node: 'a' });
  });

  it('receive(r) is greater than r and than the previous local value', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant('tick' as const), fc.nat({ max: 1_000 })), { maxLength: 50 }),
        (ops) => {
          const clock = new LamportClock('me');
          let previous = clock.now();
          for (const op of ops) {
            const remote = { counter: op === 'tick' ? 0 : op, node: 'zz' };
            const result = op === 'tick' ? clock.tick() : clock.receive(remote);
            expect(compareLamportTimestamps(result, previous)).toBe(1);
            if (op !== 'tick') expect(result.counter).toBe(Math.max(previous.counter, op) + 1);
            expect(compareLamportTimestamps(result, remote)).toBe(1);
            previous = result;
          }
        },
      ),
    );
  });

  it('orders timestamps totally by (counter, node)', () => {
    expect(compareLamportTimestamps({ counter: 1, node: 'b' }, { counter: 2, node: 'a' })).toBe(-1);
    expect(compareLamportTimestamps({ counter: 2, node: 'a' }, { counter: 2, node: 'b' })).toBe(-1);
    expect(compareLamportTimestamps({ counter: 2, node: 'b' }, { counter: 2, node: 'b' })).toBe(0);
    fc.assert(
      fc.property(timestampArb, timestampArb, timestampArb, (a, b, c) => {
        expect(compareLamportTimestamps(b, a)).toBe(-compareLamportTimestamps(a, b) || 0);
        expect(compareLamportTimestamps(a, b) === 0).toBe(
          a.counter === b.counter && a.node === b.node,
        );
        if (compareLamportTimestamps(a, b) <= 0 && compareLamportTimestamps(b, c) <= 0) {
          expect(compareLamportTimestamps(a, c)).toBeLessThanOrEqual(0);
        }
      }),
    );
  });

  it('refuses malformed remote counters with INVALID_INPUT and does not move', () => {
    const clock = new LamportClock('a');
    clock.tick();
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 53, '3', null, { node: 'b' }]) {
      const error = caught(() => clock.receive(bad as never));
      expect(isCausewayError(error, 'INVALID_INPUT')).toBe(true);
    }
    expect(clock.now().counter).toBe(1);
  });

  it('stops at Number.MAX_SAFE_INTEGER with CLOCK_DRIFT instead of losing precision', () => {
    const clock = new LamportClock('a');
    expect(clock.receive(LAMPORT_MAX_COUNTER - 1).counter).toBe(LAMPORT_MAX_COUNTER);
    expect(
      isCausewayError(
        caught(() => clock.tick()),
        'CLOCK_DRIFT',
      ),
    ).toBe(true);
    expect(
      isCausewayError(
        caught(() => clock.receive(3)),
        'CLOCK_DRIFT',
      ),
    ).toBe(true);
    expect(clock.now().counter).toBe(LAMPORT_MAX_COUNTER);
  });

  it('refuses an empty node id with CONFIG', () => {
    expect(
      isCausewayError(
        caught(() => new LamportClock('')),
        'CONFIG',
      ),
    ).toBe(true);
    expect(
      isCausewayError(
        caught(() => new LamportClock(7 as never)),
        'CONFIG',
      ),
    ).toBe(true);
  });
});
