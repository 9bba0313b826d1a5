import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HlcTimestamp, HybridLogicalClock } from '../../../src/clocks/index.js';
import { isCausewayError } from '../../../src/errors.js';
import { caught } from '../../support/errors.js';
import { anyCodeUnitArb, decodeOrNull } from './arbitraries.js';

const MAX_WALL = 2 ** 48 - 1;
const MAX_LOGICAL = 2 ** 32 - 1;

/** A physical clock the test moves by hand. */
function manualClock(start: number): { read: () => number; set: (ms: number) => void } {
  let now = start;
  return {
    read: () => now,
    set: (ms) => {
      now = ms;
    },
  };
}

const fields = (t: HlcTimestamp) => [t.wallTime, t.logical, t.node];

const nodeArb = fc.stringMatching(/^[0-9A-Za-z._~-]{1,32}$/);
const timestampArb = fc
  .tuple(
    fc.oneof(
      fc.constantFrom(0, 1, 1_700_000_000_000, MAX_WALL),
      fc.integer({ min: 0, max: MAX_WALL }),
    ),
    fc.oneof(fc.constantFrom(0, 1, MAX_LOGICAL), fc.integer({ min: 0, max: MAX_LOGICAL })),
    fc.oneof(fc.constantFrom('a', 'a-', 'a.', 'a~', 'ab', 'A', 'z', '0'), nodeArb),
  )
  .map(([wall, logical, node]) => new HlcTimestamp(wall, logical, node));

describe('HybridLogicalClock sequences', () => {
  // Each step sets the physical clock, then calls now() or receive(remote), then checks the
  // exact (wallTime, logical) or that CLOCK_DRIFT was raised.
  type Step =
    | { physical: number; now: [number, number] }
    | { physical: number; receive: [number, number]; gives: [number, number] }
    | { physical: number; receive: [number, number]; drift: true };
  const cases: Array<[string, Step[]]> = [
    [
      'same millisecond counts up, a new millisecond resets',
      [
        { physical: 100, now: [100, 0] },
        { physical: 100, now: [100, 1] },
        { physical: 100, now: [100, 2] },
        { physical: 101, now: [101, 0] },
      ],
    ],
    [
      'wall clock jumps backwards: the clock keeps its wall time and counts up',
      [
        { physical: 200, now: [200, 0] },
        { physical: 150, now: [200, 1] },
        { physical: 120, now: [200, 2] },
        { physical: 150, receive: [180, 9], gives: [200, 3] },
        { physical: 200, now: [200, 4] },
        { physical: 201, now: [201, 0] },
      ],
    ],
    [
      'remote ahead within maxOffsetMs: take its wall time, one past its counter',
      [
        { physical: 1_000, now: [1_000, 0] },
        { physical: 1_000, receive: [1_300, 5], gives: [1_300, 6] },
        { physical: 1_001, now: [1_300, 7] },
        { physical: 1_301, now: [1_301, 0] },
      ],
    ],
    [
      'remote behind: our wall time, our counter plus one',
      [
        { physical: 1_000, now: [1_000, 0] },
        { physical: 1_000, now: [1_000, 1] },
        { physical: 1_000, receive: [500, 40], gives: [1_000, 2] },
      ],
    ],
    [
      'remote on our wall time: one past the larger counter',
      [
        { physical: 1_000, now: [1_000, 0] },
        { physical: 1_000, receive: [1_000, 7], gives: [1_000, 8] },
        { physical: 1_000, receive: [1_000, 3], gives: [1_000, 9] },
      ],
    ],
    [
      'physical clock ahead of both: its wall time, counter 0',
      [
        { physical: 1_000, now: [1_000, 0] },
        { physical: 5_000, receive: [4_000, 12], gives: [5_000, 0] },
      ],
    ],
    [
      'remote beyond maxOffsetMs: refused with CLOCK_DRIFT and the clock does not move',
      [
        { physical: 1_000, now: [1_000, 0] },
        { physical: 1_000, receive: [1_501, 0], drift: true },
        { physical: 1_000, now: [1_000, 1] },
        { physical: 1_000, receive: [1_500, 0], gives: [1_500, 1] },
        { physical: 1_000, receive: [9_999_999, 0], drift: true },
        { physical: 1_000, now: [1_500, 2] },
      ],
    ],
    [
      'logical counter overflow carries into the next millisecond',
      [
        { physical: 1_000, receive: [1_000, MAX_LOGICAL], gives: [1_001, 0] },
        { physical: 1_000, now: [1_001, 1] },
      ],
    ],
  ];

  it.each(cases)('%s', (_, steps) => {
    const physical = manualClock(0);
    const clock = new HybridLogicalClock({
      nodeId: 'local',
      maxOffsetMs: 500,
      physicalClock: physical.read,
    });
    for (const step of steps) {
      physical.set(step.physical);
      if ('now' in step) {
        expect(fields(clock.now())).toEqual([...step.now, 'local']);
      } else if ('gives' in step) {
        const remote = new HlcTimestamp(step.receive[0], step.receive[1], 'remote');
        expect(fields(clock.receive(remote))).toEqual([...step.gives, 'local']);
      } else {
        const remote = new HlcTimestamp(step.receive[0], step.receive[1], 'remote');
        expect(
          isCausewayError(
            caught(() => clock.receive(remote)),
            'CLOCK_DRIFT',
          ),
        ).toBe(true);
      }
    }
  });
});

describe('HybridLogicalClock properties', () => {
  type Op =
    | { kind: 'now'; jump: number }
    | { kind: 'receive'; jump: number; ahead: number; logical: number; node: string };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('now' as const), jump: fc.integer({ min: -2_000, max: 50 }) }),
    fc.record({
      kind: fc.constant('receive' as const),
      jump: fc.integer({ min: -2_000, max: 50 }),
      ahead: fc.integer({ min: -3_000, max: 1_000 }),
      logical: fc.oneof(fc.nat({ max: 5 }), fc.constant(MAX_LOGICAL)),
      node: fc.constantFrom('a', 'b', 'z', 'remote-node'),
    }),
  );

  it('results strictly increase, exceed every remote, and never trail the physical clock', () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 60 }),
        fc.integer({ min: 0, max: 1_000 }),
        (ops, maxOffsetMs) => {
          const physical = manualClock(1_700_000_000_000);
          const clock = new HybridLogicalClock({
            nodeId: 'm',
            maxOffsetMs,
            physicalClock: physical.read,
          });
          let previous: HlcTimestamp | undefined;
          for (const op of ops) {
            physical.set(physical.read() + op.jump);
            let result: HlcTimestamp;
            if (op.kind === 'now') {
              result = clock.now();
            } else {
              const remote = new HlcTimestamp(physical.read() + op.ahead, op.logical, op.node);
              if (op.ahead > maxOffsetMs) {
                expect(
                  isCausewayError(
                    caught(() => clock.receive(remote)),
                    'CLOCK_DRIFT',
                  ),
                ).toBe(true);
                result = clock.now();
              } else {
                result = clock.receive(remote);
                expect(result.compare(remote)).toBe(1);
              }
            }
            if (previous) expect(result.compare(previous)).toBe(1);
            expect(result.wallTime).toBeGreaterThanOrEqual(physical.read());
            previous = result;
          }
        },
      ),
    );
  });

  it('a refused remote leaves the clock exactly as a clock that never saw it', () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 20 }),
        fc.integer({ min: 1, max: 1e6 }),
        (ops, beyond) => {
          const physical = manualClock(1_700_000_000_000);
          const options = { nodeId: 'm', maxOffsetMs: 500, physicalClock: physical.read };
          const refusing = new HybridLogicalClock(options);
          const twin = new HybridLogicalClock(options);
          for (const op of ops) {
            physical.set(physical.read() + op.jump);
            if (op.kind === 'receive' && op.ahead <= 500) {
              const remote = new HlcTimestamp(physical.read() + op.ahead, op.logical, op.node);
              expect(fields(refusing.receive(remote))).toEqual(fields(twin.receive(remote)));
            } else {
              expect(fields(refusing.now())).toEqual(fields(twin.now()));
            }
          }
          const tooFar = new HlcTimestamp(physical.read() + 500 + beyond, 0, 'far');
          expect(
            isCausewayError(
              caught(() => refusing.receive(tooFar)),
              'CLOCK_DRIFT',
            ),
          ).toBe(true);
          expect(fields(refusing.now())).toEqual(fields(twin.now()));
        },
      ),
    );
  });

  it('uses Date.now by default and stays close to it', () => {
    const clock = new HybridLogicalClock({ nodeId: 'n' });
    const before = Date.now();
    const stamp = clock.now();
    expect(stamp.wallTime).toBeGreaterThanOrEqual(before);
    expect(clock.maxOffsetMs).toBe(500);
    const drift = caught(() => clock.receive(new HlcTimestamp(Date.now() + 60_000, 0, 'far')));
    expect(isCausewayError(drift, 'CLOCK_DRIFT')).toBe(true);
  });
});

describe('HlcTimestamp encoding', () => {
  it('round-trips and is always the fixed width', () => {
    fc.assert(
      fc.property(timestampArb, (timestamp) => {
        const encoded = timestamp.encode();
        expect(encoded).toHaveLength(HlcTimestamp.ENCODED_LENGTH);
        expect(fields(HlcTimestamp.decode(encoded))).toEqual(fields(timestamp));
        expect(JSON.parse(JSON.stringify({ timestamp }))).toEqual({ timestamp: encoded });
      }),
    );
  });

  it('string order of encodings equals clock order', () => {
    fc.assert(
      fc.property(timestampArb, timestampArb, (a, b) => {
        const x = a.encode();
        const y = b.encode();
        expect(x < y ? -1 : x > y ? 1 : 0).toBe(a.compare(b));
        expect(Buffer.compare(Buffer.from(x), Buffer.from(y))).toBe(a.compare(b));
      }),
    );
  });

  it('compare is a total order: antisymmetric and transitive', () => {
    fc.assert(
      fc.property(timestampArb, timestampArb, timestampArb, (a, b, c) => {
        expect(b.compare(a)).toBe(-a.compare(b) || 0);
        if (a.compare(b) <= 0 && b.compare(c) <= 0) expect(a.compare(c)).toBeLessThanOrEqual(0);
      }),
    );
  });

  it('has the documented layout', () => {
    expect(new HlcTimestamp(0x193a4f2c1e0, 2, 'node-a').encode()).toBe(
      `0193a4f2c1e000000002node-a${'!'.repeat(26)}`,
    );
  });

  it('decode of any string is a valid timestamp or INVALID_INPUT, never another exception', () => {
    const nearValidArb = fc
      .tuple(timestampArb, fc.nat({ max: 51 }), anyCodeUnitArb)
      .map(([t, at, unit]) => {
        const encoded = t.encode();
        return encoded.slice(0, at) + unit + encoded.slice(at + 1);
      });
    const hugeArb = fc
      .tuple(fc.string({ maxLength: 4 }), fc.integer({ min: 1, max: 100_000 }))
      .map(([unit, times]) => unit.repeat(times));
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ unit: anyCodeUnitArb, maxLength: 60 }), nearValidArb, hugeArb),
        (text) => {
          const decoded = decodeOrNull((s) => HlcTimestamp.decode(s), text);
          if (decoded !== null) expect(decoded.encode()).toBe(text);
        },
      ),
      { numRuns: 500 },
    );
  });

  it.each([
    ['empty', ''],
    ['too short', '0'.repeat(20)],
    ['uppercase hex', `0193A4F2C1E000000002node-a${'!'.repeat(26)}`],
    ['no node', '0'.repeat(20) + '!'.repeat(32)],
    ['padding inside the node', `0000000000000000000a!b${'!'.repeat(30)}`],
    ['character outside the node alphabet', `0000000000000000000a/b${'!'.repeat(30)}`],
    ['one character too long', `0000000000000000000ab${'!'.repeat(32)}`],
  ])('decode rejects %s with INVALID_INPUT', (_, text) => {
    expect(
      isCausewayError(
        caught(() => HlcTimestamp.decode(text)),
        'INVALID_INPUT',
      ),
    ).toBe(true);
  });

  it.each([
    ['a negative wall time', -1, 0, 'a'],
    ['a wall time past 2^48 - 1', MAX_WALL + 1, 0, 'a'],
    ['a fractional wall time', 1.5, 0, 'a'],
    ['a logical counter past 2^32 - 1', 0, MAX_LOGICAL + 1, 'a'],
    ['an empty node', 0, 0, ''],
    ['a node longer than 32', 0, 0, 'n'.repeat(33)],
    ['a node with a character outside the alphabet', 0, 0, 'a b'],
    ['a node with the padding character', 0, 0, 'a!'],
  ])('the constructor rejects %s with INVALID_INPUT', (_, wall, logical, node) => {
    const error = caught(() => new HlcTimestamp(wall, logical, node));
    expect(isCausewayError(error, 'INVALID_INPUT')).toBe(true);
  });
});

describe('HybridLogicalClock options', () => {
  it.each([
    ['no options', undefined],
    ['an empty nodeId', { nodeId: '' }],
    ['a nodeId with a space', { nodeId: 'a b' }],
    ['a nodeId longer than 32', { nodeId: 'n'.repeat(33) }],
    ['a negative maxOffsetMs', { nodeId: 'a', maxOffsetMs: -1 }],
    ['an infinite maxOffsetMs', { nodeId: 'a', maxOffsetMs: Number.POSITIVE_INFINITY }],
    ['a NaN maxOffsetMs', { nodeId: 'a', maxOffsetMs: Number.NaN }],
    ['a physicalClock that is not a function', { nodeId: 'a', physicalClock: 5 }],
  ])('refuses %s with CONFIG', (_, options) => {
    const error = caught(() => new HybridLogicalClock(options as never));
    expect(isCausewayError(error, 'CONFIG')).toBe(true);
  });

  it('refuses a physical clock reading that is not ms since the epoch, without moving', () => {
    let reading = 1_000;
    const clock = new HybridLogicalClock({ nodeId: 'a', physicalClock: () => reading });
    expect(fields(clock.now())).toEqual([1_000, 0, 'a']);
    for (const bad of [Number.NaN, -5, 2 ** 48, Number.POSITIVE_INFINITY]) {
      reading = bad;
      expect(
        isCausewayError(
          caught(() => clock.now()),
          'CONFIG',
        ),
      ).toBe(true);
    }
    reading = 1_000.9;
    expect(fields(clock.now())).toEqual([1_000, 1, 'a']);
  });

  it('receive only takes HlcTimestamp instances', () => {
    const clock = new HybridLogicalClock({ nodeId: 'a' });
    const plain = { wallTime: 1, logical: 0, node: 'b' } as HlcTimestamp;
    expect(
      isCausewayError(
        caught(() => clock.receive(plain)),
        'INVALID_INPUT',
      ),
    ).toBe(true);
  });
});
