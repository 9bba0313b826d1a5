import fc from 'fast-check';
import { version as uuidVersion, v7 as uuidv7, validate as validateUuid } from 'uuid';
import { describe, expect, it } from 'vitest';
import { HlcTimestamp, HybridLogicalClock } from '../../../src/clocks/hlc.js';
import {
  DEFAULT_TOMBSTONE_GRACE_MS,
  LwwRegister,
  type LwwWrite,
} from '../../../src/conflict/lww.js';
import { ErrorCode } from '../../../src/errors.js';
import { codeOf } from '../../support/errors.js';

/** A physical clock the test moves by hand. */
function manualTime(start = 1_700_000_000_000) {
  const time = { now: start };
  return { time, read: () => time.now };
}

function clockAt(nodeId: string, read: () => number, maxOffsetMs = 500): HybridLogicalClock {
  return new HybridLogicalClock({ nodeId, maxOffsetMs, physicalClock: read });
}

const order = (a: LwwWrite<unknown>, b: LwwWrite<unknown>): number =>
  HlcTimestamp.decode(a.ts).compare(HlcTimestamp.decode(b.ts)) ||
  (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

describe('LwwRegister', () => {
  it('keeps the last write, with a fresh UUID v7 per write', () => {
    const register = new LwwRegister<string>();
    expect(register.read()).toEqual({ values: [], context: '', deleted: false });
    register.put('a', { actor: 'x' });
    const first = register.write!;
    const read = register.put('b', { actor: 'y' });
    const second = register.write!;
    expect(read.values).toEqual(['b']);
    expect(order(first, second)).toBe(-1);
    for (const write of [first, second]) {
      expect(validateUuid(write.id) && uuidVersion(write.id)).toBe(7);
    }
    expect(first.id).not.toBe(second.id);
    expect(register.delete({ actor: 'x' })).toMatchObject({ values: [], deleted: true });
  });

  it('a write wins over what its writer read, even from a replica whose clock is ahead', () => {
    const { read } = manualTime();
    const ahead = new LwwRegister<string>({ clock: clockAt('ahead', () => read() + 400) });
    const behind = new LwwRegister<string>({ clock: clockAt('behind', read) });
    const seen = ahead.put('from the fast node', { actor: 'a' });
    behind.put('written after reading it', { context: seen.context, actor: 'b' });
    ahead.merge(behind);
    expect(ahead.read().values).toEqual(['written after reading it']);
  });

  it('orders a delete and a write with equal timestamps by id, never by "delete wins"', () => {
    const { read } = manualTime();
    const ts = clockAt('same', read).now().encode();
    const [low, high] = [uuidv7(), uuidv7()].sort();
    for (const [writeId, deleteId] of [
      [high, low],
      [low, high],
    ] as const) {
      const put: LwwWrite<string> = { ts, id: writeId!, actor: 'w', value: 'alive' };
      const del: LwwWrite<string> = { ts, id: deleteId!, actor: 'd', deleted: true };
      const expected = writeId === high ? put : del;
      for (const [first, second] of [
        [put, del],
        [del, put],
      ]) {
        const register = new LwwRegister<string>({ clock: clockAt('m', read) });
        register.apply(first!);
        register.apply(second!);
        expect(register.write).toEqual(expected);
      }
    }
  });

  it('re-delivering a write is a no-op; the same identity with other contents is CONFLICTING_WRITE', () => {
    const register = new LwwRegister<string>();
    register.put('v', { actor: 'x' });
    const write = register.write!;
    const before = register.encode();
    register.apply(write);
    register.merge(register.toJSON());
    expect(register.encode()).toBe(before);
    expect(codeOf(() => register.apply({ ...write, value: 'other' } as LwwWrite<string>))).toBe(
      ErrorCode.CONFLICTING_WRITE,
    );
    expect(codeOf(() => register.apply({ ...write, actor: 'other' }))).toBe(
      ErrorCode.CONFLICTING_WRITE,
    );
    expect(register.encode()).toBe(before);
  });

  it('refuses a remote write too far in the future with CLOCK_DRIFT and stays unchanged', () => {
    const { read } = manualTime();
    const future = new LwwRegister<string>({ clock: clockAt('future', () => read() + 60_000) });
    future.put('from the future', { actor: 'f' });
    const register = new LwwRegister<string>({ clock: clockAt('here', read) });
    register.put('now', { actor: 'h' });
    const before = register.encode();
    expect(codeOf(() => register.merge(future))).toBe(ErrorCode.CLOCK_DRIFT);
    expect(codeOf(() => register.apply(future.write!))).toBe(ErrorCode.CLOCK_DRIFT);
    expect(register.encode()).toBe(before);
  });

  it('a timestamp from a fast clock locks no key: later writes are stamped just after it', () => {
    const { time, read } = manualTime();
    const fast = new LwwRegister<string>({ clock: clockAt('fast', () => read() + 600_000) });
    fast.put('from a clock 10 minutes ahead', { actor: 'f' });
    const clock = clockAt('right', read);
    const register = LwwRegister.fromJSON<string>(fast.toJSON(), { clock });
    for (let i = 0; i < 20; i++) {
      time.now += 10;
      const { context } = register.read();
      expect(register.put(`put ${i}`, { context, actor: 'r' }).values).toEqual([`put ${i}`]);
    }
    expect(register.delete({ actor: 'r' }).deleted).toBe(true);
    // The writer's clock took nothing in: its own timestamps still follow its physical clock.
    expect(clock.now().wallTime).toBe(read());
    // A write with the fast node's context, on a register that never held it, wins over it too.
    const other = new LwwRegister<string>({ clock: clockAt('other', read) });
    other.put('after reading it', { context: fast.read().context, actor: 'o' });
    other.merge(fast);
    expect(other.read().values).toEqual(['after reading it']);
  });

  it('purges a tombstone only after the grace period (default 10 days)', () => {
    expect(DEFAULT_TOMBSTONE_GRACE_MS).toBe(864_000_000);
    const { time, read } = manualTime();
    const register = new LwwRegister<string>({ clock: clockAt('n', read) });
    register.put('v', { actor: 'a' });
    time.now += DEFAULT_TOMBSTONE_GRACE_MS * 2;
    expect(register.purge()).toBe(false); // a live value is never purged
    register.delete({ actor: 'a' });
    time.now += DEFAULT_TOMBSTONE_GRACE_MS;
    expect(register.purge()).toBe(false);
    time.now += 1;
    expect(register.purge()).toBe(true);
    expect(register.read()).toEqual({ values: [], context: '', deleted: false });
  });

  it('refuses bad input with INVALID_INPUT and stays unchanged', () => {
    const register = new LwwRegister<unknown>();
    const { context } = register.put({ ok: 1 }, { actor: 'a' });
    const before = register.encode();
    const circular: Record<string, unknown> = {};
    circular['me'] = circular;
    const [ts, id] = [
      context.slice(0, context.lastIndexOf('.')),
      context.slice(context.lastIndexOf('.') + 1),
    ];
    const bad: Array<() => unknown> = [
      () => register.put(1, { context: 'garbage', actor: 'a' }),
      () => register.put(1, { context: `${ts}!.${id}`, actor: 'a' }),
      () => register.put(1, { context: `${ts}.${id.toUpperCase()}`, actor: 'a' }),
      () => register.put(1, { context: `${ts}.00000000-0000-4000-8000-000000000000`, actor: 'a' }),
      () => register.put(1, { context, actor: 'x'.repeat(129) }),
      () => register.put(10n, { context, actor: 'a' }),
      () => register.put(circular, { context, actor: 'a' }),
      () => register.put(Number.POSITIVE_INFINITY, { context, actor: 'a' }),
      () => register.merge('[]'),
      () => register.merge({ kind: 'lww', version: 1, write: { ts, id, actor: 'a' } } as never),
      () => register.apply({ ts: 'nope', id, actor: 'a', value: 1 }),
    ];
    for (const attempt of bad) expect(codeOf(attempt)).toBe(ErrorCode.INVALID_INPUT);
    expect(register.encode()).toBe(before);
    expect(codeOf(() => new LwwRegister({ tombstoneGraceMs: -1 }))).toBe(ErrorCode.CONFIG);
  });
});

describe('LwwRegister merge (property)', () => {
  // Three replicas on one manual physical clock with skews well inside maxOffsetMs.
  const op = fc.record({
    replica: fc.nat(2),
    kind: fc.constantFrom('put', 'delete', 'merge'),
    from: fc.nat(2),
    advance: fc.nat(5),
    value: fc.nat(100),
  });

  function run(ops: Array<typeof op extends fc.Arbitrary<infer U> ? U : never>) {
    const { time, read } = manualTime();
    const skews = [0, 3, -3];
    const replicas = skews.map(
      (skew, i) => new LwwRegister<number>({ clock: clockAt(`n${i}`, () => read() + skew) }),
    );
    const writes: LwwWrite<number>[] = [];
    for (const { replica, kind, from, advance, value } of ops) {
      time.now += advance;
      const register = replicas[replica]!;
      if (kind === 'merge') register.merge(replicas[from]!);
      else {
        if (kind === 'put') register.put(value, { actor: `a${replica}` });
        else register.delete({ actor: `a${replica}` });
        writes.push(register.write!);
      }
    }
    return { replicas, writes, read };
  }

  const join = (read: () => number, ...states: LwwRegister<number>[]): string => {
    const result = new LwwRegister<number>({ clock: clockAt('join', read) });
    for (const state of states) result.merge(state.encode());
    return result.encode();
  };

  it('is commutative, associative and idempotent, and the winner is the greatest write', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const { replicas, writes, read } = run(ops);
        const [a, b, c] = replicas as [
          LwwRegister<number>,
          LwwRegister<number>,
          LwwRegister<number>,
        ];
        expect(join(read, a, b)).toBe(join(read, b, a));
        expect(join(read, a, a)).toBe(a.encode());
        const ab = LwwRegister.decode<number>(join(read, a, b), { clock: clockAt('x', read) });
        const bc = LwwRegister.decode<number>(join(read, b, c), { clock: clockAt('y', read) });
        expect(join(read, ab, c)).toBe(join(read, a, bc));
        const all = LwwRegister.decode<number>(join(read, a, b, c), { clock: clockAt('z', read) });
        const greatest = [...writes].sort(order).at(-1);
        expect(all.write).toEqual(greatest);
      }),
    );
  });
});
