import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VersionVector } from '../../../src/clocks/version-vector.js';
import { Siblings, type SiblingsState } from '../../../src/conflict/siblings.js';
import { ErrorCode } from '../../../src/errors.js';
import { codeOf } from '../../support/errors.js';

const sorted = (values: unknown[]) => [...values].map(String).sort();

describe('Siblings', () => {
  it('replaces exactly what the context covers and keeps the rest as siblings', () => {
    const register = new Siblings<string>();
    const v0 = register.put('v0', { actor: 'a' });
    register.put('a1', { context: v0.context, actor: 'a' });
    const both = register.put('b1', { context: v0.context, actor: 'b' });
    expect(sorted(both.values)).toEqual(['a1', 'b1']);
    expect(register.size).toBe(2);
    const resolved = register.resolve((values) => values.join('+'), { actor: 'c' });
    expect(resolved.values).toEqual(['a1+b1']);
    expect(register.size).toBe(1);
  });

  it('a blind write becomes a sibling of everything', () => {
    const register = new Siblings<number>();
    register.put(1, { actor: 'a' });
    register.put(2, { actor: 'a' });
    expect(sorted(register.read().values)).toEqual(['1', '2']);
  });

  it('does not explode: the Riak 101-siblings scenario stays at 2', () => {
    // Two clients interleave, each writing with the context its own previous write returned,
    // which misses the other client's latest write. Per-key version vectors keep every old value
    // here (101 siblings after 100 rounds); dots replace exactly what each client saw.
    const register = new Siblings<string>();
    let contextA = '';
    let contextB = '';
    let most = 0;
    for (let round = 0; round < 100; round++) {
      contextA = register.put(`a${round}`, { context: contextA, actor: 'client-a' }).context;
      most = Math.max(most, register.size);
      contextB = register.put(`b${round}`, { context: contextB, actor: 'client-b' }).context;
      most = Math.max(most, register.size);
    }
    expect(most).toBe(2);
    expect(sorted(register.read().values)).toEqual(['a99', 'b99']);
  });

  it('two clients that both read before either writes also stay at 2', () => {
    const register = new Siblings<string>();
    let most = 0;
    for (let round = 0; round < 100; round++) {
      const readA = register.read().context;
      const readB = register.read().context;
      register.put(`a${round}`, { context: readA, actor: 'client-a' });
      most = Math.max(most, register.size);
      register.put(`b${round}`, { context: readB, actor: 'client-b' });
      most = Math.max(most, register.size);
    }
    expect(most).toBe(2);
  });

  it('property: k writers using the context they last saw never hold more than k versions', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 4 }),
        fc.array(fc.record({ writer: fc.nat(3), read: fc.boolean() }), { maxLength: 80 }),
        (writers, steps) => {
          const register = new Siblings<number>();
          const contexts = new Array<string>(writers).fill('');
          steps.forEach(({ writer, read }, i) => {
            const w = writer % writers;
            if (read) {
              contexts[w] = register.read().context;
            } else {
              // What put returns is also a read: the writer sees the state after its write.
              contexts[w] = register.put(i, { context: contexts[w]!, actor: `w${w}` }).context;
            }
            expect(register.size).toBeLessThanOrEqual(writers);
          });
        },
      ),
    );
  });

  it('keeps a delete concurrent with a write, and drops it once a write covers it', () => {
    const register = new Siblings<string>();
    const { context } = register.put('v0', { actor: 'a' });
    expect(register.delete({ context, actor: 'a' })).toMatchObject({ values: [], deleted: true });
    const both = register.put('v1', { context, actor: 'b' });
    expect(both).toMatchObject({ values: ['v1'], deleted: true });
    expect(register.size).toBe(2);
    const after = register.put('v2', { context: both.context, actor: 'b' });
    expect(after).toMatchObject({ values: ['v2'], deleted: false });
    expect(register.size).toBe(1);
  });

  it('a merge cannot bring back a value deleted on the other side', () => {
    const left = new Siblings<string>();
    const { context } = left.put('doomed', { actor: 'a' });
    const right = Siblings.fromJSON<string>(left.toJSON());
    left.delete({ context, actor: 'a' });
    // Drop the tombstone too: only the causal context remains.
    left.put('after', { context: left.read().context, actor: 'a' });
    left.merge(right);
    expect(left.read().values).toEqual(['after']);
  });

  it('refuses the write past maxSiblings (default 100) and stays unchanged', () => {
    const register = new Siblings<number>();
    for (let i = 0; i < 100; i++) register.put(i, { actor: 'blind' });
    const before = register.encode();
    expect(codeOf(() => register.put(100, { actor: 'blind' }))).toBe(ErrorCode.TOO_MANY_SIBLINGS);
    expect(register.encode()).toBe(before);
    expect(register.resolve(() => -1, { actor: 'fixer' }).values).toEqual([-1]);
    const small = new Siblings<number>({ maxSiblings: 1 });
    small.put(1, { actor: 'a' });
    expect(codeOf(() => small.delete({ actor: 'a' }))).toBe(ErrorCode.TOO_MANY_SIBLINGS);
    expect(codeOf(() => new Siblings({ maxSiblings: 0 }))).toBe(ErrorCode.CONFIG);
  });

  it('refuses bad input with INVALID_INPUT and stays unchanged', () => {
    const register = new Siblings<unknown>();
    const { context } = register.put({ ok: 1 }, { actor: 'a' });
    const before = register.encode();
    const circular: unknown[] = [];
    circular.push(circular);
    const bad: Array<() => unknown> = [
      () => register.put(1, { context: 'a.1.b', actor: 'a' }),
      () => register.put(1, { context: 'a.0', actor: 'a' }),
      () => register.put(1, { context: 'b.1.a.1', actor: 'a' }),
      () => register.put(1, { context, actor: '' }),
      () => register.put(1n, { context, actor: 'a' }),
      () => register.put(circular, { context, actor: 'a' }),
      () => register.put(new Map(), { context, actor: 'a' }),
      () => register.put(() => 1, { context, actor: 'a' }),
      () => register.put('\uDC00', { context, actor: 'a' }),
      () => register.merge('{"kind":"siblings"'),
      () => register.merge({ kind: 'siblings', version: 2, seen: {}, entries: [] } as never),
    ];
    for (const attempt of bad) expect(codeOf(attempt)).toBe(ErrorCode.INVALID_INPUT);
    expect(register.encode()).toBe(before);
  });

  it('validates decoded states completely', () => {
    const valid: SiblingsState = {
      kind: 'siblings',
      version: 1,
      seen: { a: 2 },
      entries: [{ dot: ['a', 2], value: 'x' }],
    };
    expect(Siblings.fromJSON(valid).read().values).toEqual(['x']);
    const broken: unknown[] = [
      null,
      { ...valid, kind: 'lww' },
      { ...valid, seen: { a: -1 } },
      { ...valid, seen: [] },
      { ...valid, entries: [{ dot: ['a', 3], value: 'beyond the context' }] },
      {
        ...valid,
        entries: [
          { dot: ['a', 1], value: 1 },
          { dot: ['a', 1], deleted: true },
        ],
      },
      { ...valid, entries: [{ dot: ['a', 1] }] },
      { ...valid, entries: [{ dot: ['a', 1], value: 1, deleted: true }] },
      { ...valid, entries: [{ dot: ['a'], value: 1 }] },
      { ...valid, entries: [{ dot: ['', 1], value: 1 }] },
    ];
    for (const state of broken) {
      expect(codeOf(() => Siblings.fromJSON(state))).toBe(ErrorCode.INVALID_INPUT);
      expect(codeOf(() => Siblings.decode(JSON.stringify(state)))).toBe(ErrorCode.INVALID_INPUT);
    }
  });

  it('keeps its own copies of values', () => {
    const register = new Siblings<{ n: number }>();
    const value = { n: 1 };
    register.put(value, { actor: 'a' });
    value.n = 2;
    register.read().values[0]!.n = 3;
    expect(register.read().values).toEqual([{ n: 1 }]);
  });

  it('reports two different versions under one dot as CONFLICTING_WRITE', () => {
    const left = new Siblings<string>();
    const right = new Siblings<string>();
    left.put('left', { actor: 'shared' });
    right.put('right', { actor: 'shared' });
    expect(codeOf(() => left.merge(right))).toBe(ErrorCode.CONFLICTING_WRITE);
  });

  it('the context is URL-safe', () => {
    const register = new Siblings<number>();
    register.put(1, { actor: 'user:7/é' });
    const { context } = register.read();
    expect(encodeURIComponent(context)).toBe(context);
    expect(VersionVector.decode(context).get('user:7/é')).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
// Replicated histories for the merge laws: three replicas, one actor per replica, puts with
// contexts read anywhere (possibly stale), deletes, and merges between replicas.

type Command =
  | { op: 'put'; replica: number; context: number; value: number }
  | { op: 'delete'; replica: number; context: number }
  | { op: 'read'; replica: number }
  | { op: 'merge'; from: number; to: number };

const REPLICAS = 3;
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  fc.record({
    op: fc.constant('put' as const),
    replica: fc.nat(REPLICAS - 1),
    context: fc.nat(),
    value: fc.nat(1000),
  }),
  fc.record({
    op: fc.constant('delete' as const),
    replica: fc.nat(REPLICAS - 1),
    context: fc.nat(),
  }),
  fc.record({ op: fc.constant('read' as const), replica: fc.nat(REPLICAS - 1) }),
  fc.record({
    op: fc.constant('merge' as const),
    from: fc.nat(REPLICAS - 1),
    to: fc.nat(REPLICAS - 1),
  }),
);

interface WriteRecord {
  actor: string;
  counter: number;
  context: VersionVector;
  value: number | 'deleted';
}

/** Runs a history; returns the replicas and every write with its dot and context. */
function run(commands: Command[]) {
  const replicas = Array.from({ length: REPLICAS }, () => new Siblings<number>());
  const contexts: string[] = [''];
  const writes: WriteRecord[] = [];
  for (const command of commands) {
    if (command.op === 'read') {
      contexts.push(replicas[command.replica]!.read().context);
    } else if (command.op === 'merge') {
      replicas[command.to]!.merge(replicas[command.from]!);
    } else {
      const register = replicas[command.replica]!;
      const context = contexts[command.context % contexts.length]!;
      const actor = `r${command.replica}`;
      if (command.op === 'put') register.put(command.value, { context, actor });
      else register.delete({ context, actor });
      writes.push({
        actor,
        counter: VersionVector.decode(register.read().context).get(actor),
        context: VersionVector.decode(context),
        value: command.op === 'put' ? command.value : 'deleted',
      });
    }
  }
  return { replicas, writes };
}

const merged = (...states: Siblings<number>[]): string => {
  const result = Siblings.decode<number>(states[0]!.encode());
  for (const state of states.slice(1)) result.merge(state.encode());
  return result.encode();
};

describe('Siblings merge (property)', () => {
  const history = fc.array(commandArb, { maxLength: 40 });

  it('is commutative, associative and idempotent', () => {
    fc.assert(
      fc.property(history, (commands) => {
        const [a, b, c] = run(commands).replicas as [
          Siblings<number>,
          Siblings<number>,
          Siblings<number>,
        ];
        expect(merged(a, b)).toBe(merged(b, a));
        expect(merged(a, a)).toBe(a.encode());
        const ab = Siblings.decode<number>(merged(a, b));
        const bc = Siblings.decode<number>(merged(b, c));
        expect(merged(ab, c)).toBe(merged(a, bc));
      }),
    );
  });

  it('loses no write: after full exchange every replica holds exactly the writes no context covered', () => {
    fc.assert(
      fc.property(history, (commands) => {
        const { replicas, writes } = run(commands);
        const converged = merged(...replicas);
        for (const replica of replicas) replica.merge(converged);
        const expected = writes.filter(
          (write) => !writes.some((other) => other.context.get(write.actor) >= write.counter),
        );
        for (const replica of replicas) {
          expect(replica.encode()).toBe(converged);
          const { values, deleted } = replica.read();
          expect(sorted(values)).toEqual(
            sorted(expected.filter((w) => w.value !== 'deleted').map((w) => w.value)),
          );
          expect(deleted).toBe(expected.some((w) => w.value === 'deleted'));
          expect(replica.size).toBe(expected.length);
        }
      }),
    );
  });
});
