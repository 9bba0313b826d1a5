/**
 * The checker on histories of a linearizable register set: such histories always pass, and the
 * anomalies injected into them are found with the right proof.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkHistory } from '../../../src/testing/checker.js';
import type {
  Guarantee,
  HistoryOperation,
  ReadOperation,
  Violation,
} from '../../../src/testing/history.js';
import { HistoryRecorder } from '../../../src/testing/recorder.js';

// ---------------------------------------------------------------------------------------------
// Histories of one linearizable register set: a single in-memory store, operations applied
// atomically at a linearization point between their invocation and completion, recorded at
// completion (as `HistoryRecorder` users do), with sessions interleaved by the schedule.

const KEYS = ['a', 'b', 'c'];

type Outcome = 'ok' | 'lost-ack' | 'lost-ack-unknown-version' | 'not-applied';

interface PlannedOp {
  readonly session: number;
  readonly write: boolean;
  readonly key: number;
  /** Bit i set: the read reads KEYS[i] (at least one is read). */
  readonly readMask: number;
  readonly outcome: Outcome;
  /** Bit j set: the write depends on the j-th write its session has seen. */
  readonly dependencyMask: number;
}

const plannedOpArb: fc.Arbitrary<PlannedOp> = fc.record({
  session: fc.nat(3),
  write: fc.boolean(),
  key: fc.nat(KEYS.length - 1),
  readMask: fc.integer({ min: 1, max: (1 << KEYS.length) - 1 }),
  outcome: fc.constantFrom<Outcome>(
    'ok',
    'ok',
    'ok',
    'ok',
    'lost-ack',
    'lost-ack-unknown-version',
    'not-applied',
  ),
  dependencyMask: fc.nat(0xff),
});

const linearizableArb = fc
  .record({
    plans: fc.array(plannedOpArb, { minLength: 1, maxLength: 60 }),
    schedule: fc.array(fc.nat(3), { maxLength: 200 }),
  })
  .map(({ plans, schedule }) => simulate(plans, schedule));

interface InFlight {
  readonly plan: PlannedOp;
  readonly startedAt: number;
  phase: 'invoked' | 'applied';
  result?: { version: number; observed: Record<string, number> };
  id?: string;
  dependsOn?: string[];
}

function simulate(plans: readonly PlannedOp[], schedule: readonly number[]): HistoryOperation[] {
  const recorder = new HistoryRecorder();
  let clock = 0;
  const store = new Map<string, number>();
  const writeAt = new Map<string, string>(); // `${key}@${version}` -> write id
  const queues = [0, 1, 2, 3].map((s) => plans.filter((p) => p.session === s));
  const inFlight: Array<InFlight | undefined> = [];
  const seen = queues.map(() => new Set<string>());
  let writes = 0;

  const step = (s: number) => {
    const current = inFlight[s];
    const queue = queues[s]!;
    if (!current) {
      const plan = queue.shift();
      if (!plan) return false;
      const op: InFlight = { plan, startedAt: clock++, phase: 'invoked' };
      if (plan.write) {
        op.id = `w${writes++}`;
        op.dependsOn = [...seen[s]!].filter((_, j) => (plan.dependencyMask >> j) & 1);
      }
      inFlight[s] = op;
      return true;
    }
    const { plan } = current;
    if (current.phase === 'invoked') {
      // The linearization point: the whole operation takes effect atomically here.
      current.phase = 'applied';
      if (plan.write) {
        const key = KEYS[plan.key]!;
        if (plan.outcome !== 'not-applied') {
          const version = (store.get(key) ?? 0) + 1;
          store.set(key, version);
          writeAt.set(`${key}@${version}`, current.id!);
          current.result = { version, observed: {} };
        }
      } else {
        const observed: Record<string, number> = {};
        KEYS.forEach((key, i) => {
          if ((plan.readMask >> i) & 1) observed[key] = store.get(key) ?? 0;
        });
        current.result = { version: 0, observed };
      }
      return true;
    }
    const endedAt = clock++;
    const base = { session: `s${s}`, node: 'n', startedAt: current.startedAt, endedAt };
    if (plan.write) {
      const version = current.result?.version ?? 0;
      const acknowledged = plan.outcome === 'ok';
      const recordedVersion = plan.outcome === 'ok' || plan.outcome === 'lost-ack' ? version : 0;
      recorder.write({
        ...base,
        key: KEYS[plan.key]!,
        id: current.id!,
        version: recordedVersion,
        acknowledged,
        ...(current.dependsOn!.length > 0 ? { dependsOn: current.dependsOn } : {}),
      });
      if (acknowledged) seen[s]!.add(current.id!);
    } else {
      const observed = current.result!.observed;
      recorder.read({ ...base, observed });
      for (const [key, version] of Object.entries(observed)) {
        for (let v = 1; v <= version; v++) {
          const id = writeAt.get(`${key}@${v}`);
          if (id) seen[s]!.add(id);
        }
      }
    }
    inFlight[s] = undefined;
    return true;
  };

  for (const s of schedule) step(s);
  let progressed = true;
  while (progressed) {
    progressed = false;
    for (let s = 0; s < queues.length; s++) progressed = step(s) || progressed;
  }
  return [...recorder.operations()];
}

/** Replaces operation `index` of `ops` with `replacement` (a new array). */
function replaced(ops: readonly HistoryOperation[], index: number, replacement: HistoryOperation) {
  const copy = [...ops];
  copy[index] = replacement;
  return copy;
}

function provedBy(
  violations: readonly Violation[],
  guarantee: Guarantee,
  session: string,
  key: string,
  last: HistoryOperation,
) {
  return violations.some(
    (v) =>
      v.guarantee === guarantee &&
      v.session === session &&
      v.key === key &&
      v.operations.at(-1) === last,
  );
}

describe('histories of a linearizable register set', () => {
  it('always pass every guarantee', () => {
    fc.assert(
      fc.property(linearizableArb, (ops) => {
        const result = checkHistory(ops);
        expect(result.violations).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it('a session reading an older version after a newer one is a monotonic-reads violation', () => {
    fc.assert(
      fc.property(linearizableArb, fc.nat(), (ops, pick) => {
        const candidates: Array<{ later: number; key: string; older: number }> = [];
        ops.forEach((later, j) => {
          if (later.kind !== 'read') return;
          for (let i = 0; i < j; i++) {
            const earlier = ops[i]!;
            if (earlier.kind !== 'read' || earlier.session !== later.session) continue;
            for (const [key, version] of Object.entries(earlier.observed)) {
              if (version > 0 && key in later.observed) {
                candidates.push({ later: j, key, older: version - 1 });
              }
            }
          }
        });
        fc.pre(candidates.length > 0);
        const { later, key, older } = candidates[pick % candidates.length]!;
        const read = ops[later] as ReadOperation;
        const mutated: ReadOperation = { ...read, observed: { ...read.observed, [key]: older } };
        const result = checkHistory(replaced(ops, later, mutated));
        expect(provedBy(result.violations, 'monotonic-reads', read.session, key, mutated)).toBe(
          true,
        );
      }),
      { numRuns: 200 },
    );
  });

  it('a session missing its own acknowledged write is a read-your-writes violation', () => {
    fc.assert(
      fc.property(linearizableArb, fc.nat(), (ops, pick) => {
        const candidates: Array<{ read: number; key: string; older: number }> = [];
        ops.forEach((read, j) => {
          if (read.kind !== 'read') return;
          for (let i = 0; i < j; i++) {
            const write = ops[i]!;
            if (write.kind === 'write' && write.acknowledged && write.session === read.session) {
              if (write.key in read.observed) {
                candidates.push({ read: j, key: write.key, older: write.version - 1 });
              }
            }
          }
        });
        fc.pre(candidates.length > 0);
        const { read: index, key, older } = candidates[pick % candidates.length]!;
        const read = ops[index] as ReadOperation;
        const mutated: ReadOperation = { ...read, observed: { ...read.observed, [key]: older } };
        const result = checkHistory(replaced(ops, index, mutated));
        expect(provedBy(result.violations, 'read-your-writes', read.session, key, mutated)).toBe(
          true,
        );
      }),
      { numRuns: 200 },
    );
  });
});
