/**
 * Every decoder and parser of outside input, fuzzed with values of any type, any string, and
 * near-misses of a valid encoding: each returns a correct result or throws a `CausewayError`
 * (`INVALID_INPUT`, or the documented refusal), never another exception; what it accepts
 * encodes back (to the same text, where the format is canonical); a refused remote timestamp or
 * write leaves the clock or register as it was. String-only fuzzing of `VersionVector.decode`
 * and `HlcTimestamp.decode` lives in test/unit/clocks; here they also get non-strings.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  HlcTimestamp,
  HybridLogicalClock,
  LamportClock,
  LwwRegister,
  parseGid,
  Siblings,
  VersionVector,
} from '../../../src/index.js';
import { checkHistory, HistoryRecorder } from '../../../src/testing/index.js';
import { expectTypedError, junkArb, succeedsOrRefuses } from '../../support/junk.js';
import { mutateCharacter, replaceAt } from '../../support/mutate.js';
import { anyCodeUnitArb } from '../clocks/arbitraries.js';

const RUNS = 300;

/** Junk, any string, and near-misses of `valid` (a character changed, cut, or repeated). */
function textInputArb(valid: string): fc.Arbitrary<unknown> {
  return fc.oneof(
    junkArb,
    fc.string({ unit: anyCodeUnitArb, maxLength: 80 }),
    fc.tuple(fc.nat(), anyCodeUnitArb).map(([at, unit]) => mutateCharacter(valid, at, unit)),
    fc.nat().map((cut) => valid.slice(0, cut % (valid.length + 1))),
    fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => {
      const [from, to] = [a % valid.length, b % valid.length].sort((x, y) => x - y);
      return valid.slice(0, to) + valid.slice(from);
    }),
  );
}

/** Junk, and `valid` (a parsed JSON document) with one value anywhere replaced by junk. */
function documentInputArb(valid: unknown): fc.Arbitrary<unknown> {
  return fc.oneof(
    junkArb,
    fc.tuple(fc.nat(), junkArb).map(([pick, junk]) => replaceAt(valid, pick, junk)),
    fc.tuple(fc.nat(), fc.jsonValue()).map(([pick, value]) => replaceAt(valid, pick, value)),
  );
}

const clock = new HybridLogicalClock({ nodeId: 'fuzz' });
const vector = VersionVector.from({ alice: 3, 'bob@host': 1, é: 12 });
const timestamp = clock.now();

function siblingsSample(): Siblings<unknown> {
  const register = new Siblings<unknown>();
  const { context } = register.put({ title: 'a' }, { actor: 'alice' });
  register.put([1, 2], { actor: 'bob' });
  register.delete({ context, actor: 'carol' });
  return register;
}

function lwwSample(): LwwRegister<unknown> {
  const register = new LwwRegister<unknown>({ clock });
  register.put({ n: 1 }, { actor: 'alice' });
  return register;
}

interface TextDecoder {
  readonly name: string;
  readonly valid: string;
  readonly decode: (input: unknown) => unknown;
  /** The text an accepted value encodes back to (canonical formats only). */
  readonly canonical?: (value: never) => string;
  /** Anything accepted must encode again without throwing. */
  readonly reencode?: (value: never) => unknown;
}

const textDecoders: TextDecoder[] = [
  {
    name: 'VersionVector.decode',
    valid: vector.encode(),
    decode: (s) => VersionVector.decode(s as string),
    canonical: (v: VersionVector) => v.encode(),
  },
  {
    name: 'HlcTimestamp.decode',
    valid: timestamp.encode(),
    decode: (s) => HlcTimestamp.decode(s as string),
    canonical: (t: HlcTimestamp) => t.encode(),
  },
  {
    name: 'parseGid',
    valid: `cw:coordinator-1:${'0123456789abcdef'.repeat(2)}:users`,
    decode: (s) => parseGid(s as string),
    canonical: (g: { txnGid: string; participant: string | undefined }) =>
      g.participant === undefined ? g.txnGid : `${g.txnGid}:${g.participant}`,
  },
  {
    name: 'Siblings.decode',
    valid: siblingsSample().encode(),
    decode: (s) => Siblings.decode(s as string),
    reencode: (r: Siblings<unknown>) => Siblings.decode(r.encode()).read(),
  },
  {
    name: 'LwwRegister.decode',
    valid: lwwSample().encode(),
    decode: (s) => LwwRegister.decode(s as string),
    reencode: (r: LwwRegister<unknown>) => LwwRegister.decode(r.encode()).read(),
  },
];

describe('text decoders', () => {
  for (const decoder of textDecoders) {
    it(`${decoder.name}: a value that encodes back, or INVALID_INPUT (${RUNS} runs)`, async () => {
      await fc.assert(
        fc.asyncProperty(textInputArb(decoder.valid), async (input) => {
          const decoded = await succeedsOrRefuses(() => decoder.decode(input), ['INVALID_INPUT']);
          if (!decoded.ok) return;
          if (decoder.canonical) expect(decoder.canonical(decoded.value as never)).toBe(input);
          decoder.reencode?.(decoded.value as never);
        }),
        { numRuns: RUNS },
      );
    });
  }
});

interface DocumentDecoder {
  readonly name: string;
  readonly valid: unknown;
  readonly decode: (input: unknown) => unknown;
  readonly reencode: (value: never) => unknown;
}

const recorder = new HistoryRecorder({
  clock: (() => {
    let now = 0;
    return () => now++;
  })(),
});
recorder.write({
  session: 'alice',
  key: 'x',
  id: 'w1',
  version: 1,
  node: 'leader',
  startedAt: recorder.now(),
  endedAt: recorder.now(),
  acknowledged: true,
});
recorder.write({
  session: 'bob',
  key: 'y',
  id: 'w2',
  version: 1,
  dependsOn: ['w1'],
  node: 'leader',
  startedAt: recorder.now(),
  endedAt: recorder.now(),
  acknowledged: false,
});
recorder.read({
  session: 'alice',
  observed: { x: 1, y: 0 },
  node: 'replica',
  startedAt: recorder.now(),
  endedAt: recorder.now(),
});
const history = JSON.parse(JSON.stringify(recorder.toJSON())) as unknown;

const documentDecoders: DocumentDecoder[] = [
  {
    name: 'VersionVector.from',
    valid: vector.toJSON(),
    decode: (d) => VersionVector.from(d as never),
    reencode: (v: VersionVector) => VersionVector.decode(v.encode()),
  },
  {
    name: 'Siblings.fromJSON',
    valid: JSON.parse(JSON.stringify(siblingsSample().toJSON())),
    decode: (d) => Siblings.fromJSON(d),
    reencode: (r: Siblings<unknown>) => Siblings.decode(r.encode()),
  },
  {
    name: 'LwwRegister.fromJSON',
    valid: JSON.parse(JSON.stringify(lwwSample().toJSON())),
    decode: (d) => LwwRegister.fromJSON(d),
    reencode: (r: LwwRegister<unknown>) => LwwRegister.decode(r.encode()),
  },
  {
    name: 'HistoryRecorder.fromJSON (a saved history)',
    valid: history,
    decode: (d) => HistoryRecorder.fromJSON(d),
    // Recorded one by one, a history is checked whole only here: a dependsOn naming no
    // recorded write is refused now.
    reencode: (r: HistoryRecorder) => succeedsOrRefuses(() => r.check(), ['INVALID_INPUT']),
  },
  {
    name: 'checkHistory (operations from outside)',
    valid: (history as { operations: unknown }).operations,
    decode: (d) => checkHistory(d as never),
    reencode: () => undefined,
  },
];

describe('document decoders', () => {
  for (const decoder of documentDecoders) {
    it(`${decoder.name}: a usable value, or INVALID_INPUT (${RUNS} runs)`, async () => {
      await fc.assert(
        fc.asyncProperty(documentInputArb(decoder.valid), async (input) => {
          const decoded = await succeedsOrRefuses(() => decoder.decode(input), ['INVALID_INPUT']);
          if (decoded.ok) await decoder.reencode(decoded.value as never);
        }),
        { numRuns: RUNS },
      );
    });
  }
});

describe('remote timestamps', () => {
  it(`HybridLogicalClock.receive refuses anything but an HlcTimestamp, without moving (${RUNS} runs)`, () => {
    fc.assert(
      fc.property(junkArb, (remote) => {
        const local = new HybridLogicalClock({ nodeId: 'local', physicalClock: () => 1_000 });
        const before = local.now();
        try {
          local.receive(remote as never);
          expect.unreachable('only an HlcTimestamp is accepted');
        } catch (error) {
          expectTypedError(error, ['INVALID_INPUT']);
        }
        expect(local.now().compare(before)).toBe(1); // only the now() above moved it
      }),
      { numRuns: RUNS },
    );
  });

  it(`LamportClock.receive: a later timestamp, or INVALID_INPUT without moving (${RUNS} runs)`, () => {
    fc.assert(
      fc.property(fc.oneof(junkArb, fc.record({ counter: junkArb, node: junkArb })), (remote) => {
        const local = new LamportClock('local');
        local.tick();
        const before = local.now().counter;
        try {
          const after = local.receive(remote as never);
          expect(after.counter).toBeGreaterThan(before);
        } catch (error) {
          expectTypedError(error, ['INVALID_INPUT', 'CLOCK_DRIFT']);
          expect(local.now().counter).toBe(before);
        }
      }),
      { numRuns: RUNS },
    );
  });
});

describe('register writes with hostile values, contexts and actors', () => {
  const REFUSALS = ['INVALID_INPUT', 'CONFLICTING_WRITE', 'TOO_MANY_SIBLINGS', 'CLOCK_DRIFT'];
  const contextArb = (valid: string) => fc.oneof(fc.constant(valid), textInputArb(valid));
  const writeArb = (valid: string) =>
    fc.record({
      kind: fc.constantFrom('put', 'delete', 'merge'),
      value: fc.oneof(fc.jsonValue(), junkArb),
      context: fc.oneof(fc.constant(undefined), contextArb(valid)),
      actor: fc.oneof(fc.constantFrom('alice', 'bob'), junkArb),
      options: fc.oneof(fc.constant('valid' as const), junkArb),
    });

  for (const [name, sample] of [
    ['Siblings', siblingsSample],
    ['LwwRegister', lwwSample],
  ] as const) {
    it(`${name}: applied, or refused with the register unchanged (${RUNS} runs)`, () => {
      const valid = sample().read().context;
      fc.assert(
        fc.property(writeArb(valid), (write) => {
          const register = sample() as Siblings<unknown> & LwwRegister<unknown>;
          const before = register.encode();
          const options =
            write.options === 'valid'
              ? { context: write.context, actor: write.actor }
              : write.options;
          try {
            if (write.kind === 'put') register.put(write.value, options as never);
            else if (write.kind === 'delete') register.delete(options as never);
            else register.merge(write.value as never);
          } catch (error) {
            expectTypedError(error, REFUSALS);
            expect(register.encode()).toBe(before);
          }
        }),
        { numRuns: RUNS },
      );
    });
  }
});
