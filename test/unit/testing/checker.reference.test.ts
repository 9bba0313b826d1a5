/**
 * The indexed checker against a direct, all-pairs transcription of the definitions, on
 * arbitrary small histories: the same violations, each with a proof that proves it.
 */
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

const KEYS = ['a', 'b', 'c'];

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
