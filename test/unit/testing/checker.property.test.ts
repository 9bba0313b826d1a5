import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CHECKER_TUNING, checkHistory } from '../../../src/testing/checker.js';
import type {
  Guarantee,
  HistoryOperation,
  ReadOperation,
  Violation,
  WriteOperation,
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

// ---------------------------------------------------------------------------------------------
// Arbitrary (mostly inconsistent) small histories against a direct, all-pairs transcription of
// the definitions: the indexed checker must find exactly the same violations, and each proof
// must prove what it claims.

const randomHistoryArb = fc
  .array(
    fc.record({
      write: fc.boolean(),
      session: fc.nat(2),
      key: fc.nat(2),
      versionSeed: fc.nat(5),
      acknowledged: fc.constantFrom(true, true, false),
      unknownVersion: fc.boolean(),
      observed: fc.array(fc.option(fc.nat(6)), { minLength: 3, maxLength: 3 }),
      dependencies: fc.array(fc.nat(), { maxLength: 2 }),
    }),
    { maxLength: 30 },
  )
  .map((specs) => {
    const h: HistoryOperation[] = [];
    const used = KEYS.map(() => new Set<number>());
    const writeIds: string[] = [];
    specs.forEach((spec, i) => {
      const session = `s${spec.session}`;
      const times = { node: 'n', startedAt: i, endedAt: i };
      if (spec.write) {
        let version = 0;
        if (spec.acknowledged || !spec.unknownVersion) {
          version = spec.versionSeed + 1;
          while (used[spec.key]!.has(version)) version++;
          used[spec.key]!.add(version);
        }
        const dependsOn = [
          ...new Set(
            writeIds.length === 0
              ? []
              : spec.dependencies.map((d) => writeIds[d % writeIds.length]!),
          ),
        ];
        const id = `w${i}`;
        writeIds.push(id);
        h.push({
          kind: 'write',
          session,
          key: KEYS[spec.key]!,
          id,
          version,
          acknowledged: spec.acknowledged,
          ...(dependsOn.length > 0 ? { dependsOn } : {}),
          ...times,
        });
      } else {
        const observed: Record<string, number> = {};
        spec.observed.forEach((version, k) => {
          if (version !== null) observed[KEYS[k]!] = version;
        });
        h.push({ kind: 'read', session, observed, ...times });
      }
    });
    return h;
  });

const sees = (read: ReadOperation, write: WriteOperation) =>
  write.version > 0 && write.key in read.observed && read.observed[write.key]! >= write.version;

function transitiveDependencies(ops: readonly HistoryOperation[], write: WriteOperation) {
  const byId = new Map(ops.flatMap((op) => (op.kind === 'write' ? [[op.id, op] as const] : [])));
  const found = new Set<WriteOperation>();
  const visit = (w: WriteOperation) => {
    for (const id of w.dependsOn ?? []) {
      const dependency = byId.get(id)!;
      if (!found.has(dependency)) {
        found.add(dependency);
        visit(dependency);
      }
    }
  };
  visit(write);
  return found;
}

/** `guarantee|trigger index|key` -> the sessions that could be named. All pairs, on purpose. */
function referenceViolations(ops: readonly HistoryOperation[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const add = (g: Guarantee, i: number, key: string, session: string) => {
    const id = `${g}|${i}|${key}`;
    out.set(id, (out.get(id) ?? new Set()).add(session));
  };
  ops.forEach((op, i) => {
    const before = ops.slice(0, i).filter((o) => o.session === op.session);
    if (op.kind === 'write') {
      if (op.version === 0) return;
      for (const e of before) {
        if (e.kind === 'write' && e.acknowledged && e.key === op.key && e.version >= op.version) {
          add('monotonic-writes', i, op.key, op.session);
        }
        if (e.kind === 'read' && op.key in e.observed && e.observed[op.key]! >= op.version) {
          add('writes-follow-reads', i, op.key, op.session);
        }
      }
      return;
    }
    for (const [key, version] of Object.entries(op.observed)) {
      for (const e of before) {
        if (e.kind === 'write' && e.acknowledged && e.key === key && e.version > version) {
          add('read-your-writes', i, key, op.session);
        }
        if (e.kind === 'read' && key in e.observed && e.observed[key]! > version) {
          add('monotonic-reads', i, key, op.session);
        }
      }
      ops.forEach((w2, j) => {
        if (w2.kind !== 'write' || !sees(op, w2)) return;
        for (const dependency of transitiveDependencies(ops, w2)) {
          if (dependency.acknowledged && dependency.key === key && dependency.version > version) {
            add('consistent-prefix', i, key, op.session);
          }
        }
        if (w2.key === key) return;
        for (const e of ops.slice(0, j)) {
          if (e.session !== w2.session) continue;
          if (e.kind === 'write' && e.acknowledged && e.key === key && e.version > version) {
            add('monotonic-writes', i, key, w2.session);
          }
          if (e.kind === 'read' && key in e.observed && e.observed[key]! > version) {
            add('writes-follow-reads', i, key, w2.session);
          }
        }
      });
    }
  });
  return out;
}

/**
 * The operation a violation is about: a two-operation proof ends with it (the read, or the write
 * out of order with its session); in a longer proof (a read that saw some write but not what it
 * requires, which may come later in history order) it is the read that saw the stalest version.
 */
function triggerOf(v: Violation): HistoryOperation {
  if (v.operations.length === 2) return v.operations[1]!;
  const reads = v.operations.filter((op): op is ReadOperation => op.kind === 'read');
  return reads.reduce((a, b) => (b.observed[v.key!]! < a.observed[v.key!]! ? b : a));
}

/** Checks that a violation's operations prove it, by the definition of its guarantee. */
function assertProof(ops: readonly HistoryOperation[], v: Violation): void {
  const at = v.operations.map((op) => ops.indexOf(op));
  expect(at.every((i) => i >= 0)).toBe(true);
  expect([...at].sort((a, b) => a - b)).toEqual(at);
  const key = v.key!;
  const trigger = triggerOf(v);
  const others = v.operations.filter((op) => op !== trigger);
  const before = (a: HistoryOperation, b: HistoryOperation) => ops.indexOf(a) < ops.indexOf(b);
  if (trigger.kind === 'write') {
    const [first] = others;
    expect(others).toHaveLength(1);
    expect(first!.session).toBe(trigger.session);
    expect(before(first!, trigger)).toBe(true);
    if (first!.kind === 'write') {
      expect(first!.acknowledged && first!.version >= trigger.version).toBe(true);
    } else {
      expect(first!.observed[key]!).toBeGreaterThanOrEqual(trigger.version);
    }
    return;
  }
  const stale = trigger.observed[key]!;
  if (v.guarantee === 'read-your-writes' || v.guarantee === 'monotonic-reads') {
    const [first] = others;
    expect(others).toHaveLength(1);
    expect(first!.session).toBe(trigger.session);
    expect(before(first!, trigger)).toBe(true);
    const required = first!.kind === 'write' ? first!.version : first!.observed[key]!;
    expect(required).toBeGreaterThan(stale);
    return;
  }
  const writes = others.filter((op): op is WriteOperation => op.kind === 'write');
  if (v.guarantee === 'consistent-prefix') {
    // An acknowledged dependency of `key` the read does not see, reached from a write it sees.
    const dependency = writes.find((w) => w.key === key && w.acknowledged && w.version > stale)!;
    expect(dependency).toBeDefined();
    const seen = writes.find(
      (w) => sees(trigger, w) && transitiveDependencies(ops, w).has(dependency),
    );
    expect(seen).toBeDefined();
    expect(v.session).toBe(trigger.session);
    return;
  }
  expect(others).toHaveLength(2);
  const seen = writes.find((w) => w.key !== key)!;
  expect(sees(trigger, seen)).toBe(true);
  const source = others.find((op) => op !== seen)!;
  expect(source.session).toBe(seen.session);
  expect(v.session).toBe(seen.session);
  expect(before(source, seen)).toBe(true);
  if (v.guarantee === 'monotonic-writes') {
    expect(source.kind === 'write' && source.acknowledged && source.key === key).toBe(true);
  }
  const required = source.kind === 'write' ? source.version : source.observed[key]!;
  expect(required).toBeGreaterThan(stale);
}

describe.each([
  ['per-write binary searches', 0],
  ['sweeps over the history', Number.POSITIVE_INFINITY],
  ['the default mix', CHECKER_TUNING.sweepFactor],
])('the indexed checker against the definitions (%s)', (_name, sweepFactor) => {
  const defaultFactor = CHECKER_TUNING.sweepFactor;
  beforeEach(() => {
    CHECKER_TUNING.sweepFactor = sweepFactor;
  });
  afterEach(() => {
    CHECKER_TUNING.sweepFactor = defaultFactor;
  });

  it('finds exactly the violations an all-pairs check finds, each with a valid proof', () => {
    fc.assert(
      fc.property(randomHistoryArb, (ops) => {
        const expected = referenceViolations(ops);
        const result = checkHistory(ops);
        const idOf = (v: Violation) => `${v.guarantee}|${ops.indexOf(triggerOf(v))}|${v.key}`;
        const found = result.violations.map(idOf);
        expect(found.sort()).toEqual([...expected.keys()].sort());
        for (const v of result.violations) {
          expect(expected.get(idOf(v))!.has(v.session)).toBe(true);
          assertProof(ops, v);
        }
        expect(result.ok).toBe(expected.size === 0);
      }),
      { numRuns: 500 },
    );
  });
});
