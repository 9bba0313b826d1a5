/**
 * One behavioural suite for every `VersionedStore` (memory, PostgreSQL, Redis), in the style of
 * kysely's per-dialect tests: each adapter's test file calls `versionedStoreSuite` with a
 * factory. Keys are random per test so the suite can share a table or key space.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HlcTimestamp, HybridLogicalClock } from '../../../src/clocks/hlc.js';
import type {
  VersionedStore,
  VersionedStoreOptions,
} from '../../../src/conflict/versioned-store.js';
import { ErrorCode, isCausewayError } from '../../../src/errors.js';

/**
 * Makes a store. `replica` 0 and 1 must be independent stores (two tables, two key prefixes,
 * two memory instances) for the anti-entropy tests.
 */
export type StoreFactory = (
  options: VersionedStoreOptions,
  replica: 0 | 1,
) => Promise<VersionedStore<unknown>>;

const newKey = (): string => `k-${randomUUID()}`;

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(isCausewayError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
}

/** Orders two LWW contexts (`<timestamp>.<id>`) the way the register does. */
function compareLwwContexts(a: string, b: string): number {
  const parse = (context: string) => {
    const dot = context.lastIndexOf('.');
    const ts = HlcTimestamp.decode(context.slice(0, dot).padEnd(HlcTimestamp.ENCODED_LENGTH, '!'));
    return { ts, id: context.slice(dot + 1) };
  };
  const x = parse(a);
  const y = parse(b);
  return x.ts.compare(y.ts) || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0);
}

export function versionedStoreSuite(name: string, makeStore: StoreFactory): void {
  describe(`${name}: siblings handler`, () => {
    const open = (replica: 0 | 1 = 0, maxSiblings?: number) =>
      makeStore(
        maxSiblings === undefined ? { handler: 'siblings' } : { handler: 'siblings', maxSiblings },
        replica,
      );

    it('reads nothing for a new key, then what was written', async () => {
      const store = await open();
      const key = newKey();
      expect(await store.get(key)).toEqual({ values: [], context: '', deleted: false });
      expect(await store.getState(key)).toBeUndefined();
      const written = await store.put(key, { n: 1 }, { actor: 'alice' });
      expect(written.values).toEqual([{ n: 1 }]);
      expect(await store.get(key)).toEqual(written);
    });

    it('keeps concurrent writes as siblings and replaces exactly what a context covers', async () => {
      const store = await open();
      const key = newKey();
      const base = await store.put(key, 'v0', { actor: 'alice' });
      await store.put(key, 'a1', { context: base.context, actor: 'alice' });
      const both = await store.put(key, 'b1', { context: base.context, actor: 'bob' });
      expect([...both.values].sort()).toEqual(['a1', 'b1']);
      const resolved = await store.put(key, 'ab', { context: both.context, actor: 'carol' });
      expect(resolved.values).toEqual(['ab']);
      expect((await store.get(key)).values).toEqual(['ab']);
    });

    it('two interleaved writers, each with the context its own last write returned, stay at 2 siblings', async () => {
      // The classic sibling explosion: each writer's context misses the other's latest write.
      // Plain per-key version vectors cannot tell which old value such a context saw, keep them
      // all and grow by one sibling per write; dotted version vectors replace exactly what the
      // writer saw.
      const store = await open();
      const key = newKey();
      let contextA = '';
      let contextB = '';
      for (let round = 0; round < 25; round++) {
        const afterA = await store.put(key, `a${round}`, { context: contextA, actor: 'a' });
        expect([...afterA.values].sort()).toEqual(
          round === 0 ? ['a0'] : [`a${round}`, `b${round - 1}`],
        );
        contextA = afterA.context;
        const afterB = await store.put(key, `b${round}`, { context: contextB, actor: 'b' });
        expect([...afterB.values].sort()).toEqual([`a${round}`, `b${round}`]);
        contextB = afterB.context;
      }
    });

    it('two interleaved writers that both read before either writes never exceed 2 siblings', async () => {
      const store = await open();
      const key = newKey();
      let contextA = '';
      let contextB = '';
      for (let round = 0; round < 25; round++) {
        contextA = (await store.get(key)).context;
        contextB = (await store.get(key)).context;
        const afterA = await store.put(key, `a${round}`, { context: contextA, actor: 'a' });
        expect(afterA.values.length).toBeLessThanOrEqual(2);
        const afterB = await store.put(key, `b${round}`, { context: contextB, actor: 'b' });
        expect(afterB.values.length).toBeLessThanOrEqual(2);
        expect([...afterB.values].sort()).toEqual([`a${round}`, `b${round}`]);
      }
    });

    it('keeps a delete and a write that are concurrent, then drops the delete once covered', async () => {
      const store = await open();
      const key = newKey();
      const { context } = await store.put(key, 'v0', { actor: 'alice' });
      await store.delete(key, { context, actor: 'alice' });
      const both = await store.put(key, 'v1', { context, actor: 'bob' });
      expect(both).toMatchObject({ values: ['v1'], deleted: true });
      const after = await store.put(key, 'v2', { context: both.context, actor: 'bob' });
      expect(after).toMatchObject({ values: ['v2'], deleted: false });
      const gone = await store.delete(key, { context: after.context, actor: 'alice' });
      expect(gone).toMatchObject({ values: [], deleted: true });
    });

    it('loses no concurrent blind write from 30 async writers', async () => {
      const store = await open();
      const key = newKey();
      const writers = Array.from({ length: 30 }, (_, i) => i);
      await Promise.all(writers.map((i) => store.put(key, i, { actor: `w${i}` })));
      const { values } = await store.get(key);
      expect([...(values as number[])].sort((x, y) => x - y)).toEqual(writers);
    });

    it('loses no write from 20 writers sharing one context and one actor', async () => {
      const store = await open();
      const key = newKey();
      const { context } = await store.put(key, 'old', { actor: 'app' });
      const writers = Array.from({ length: 20 }, (_, i) => `new${i}`);
      await Promise.all(writers.map((value) => store.put(key, value, { context, actor: 'app' })));
      const { values } = await store.get(key);
      expect([...(values as string[])].sort()).toEqual([...writers].sort());
    });

    it('refuses the write past maxSiblings with TOO_MANY_SIBLINGS and keeps the state', async () => {
      const store = await open(0, 3);
      const key = newKey();
      for (const value of ['x', 'y', 'z']) await store.put(key, value, { actor: 'blind' });
      const before = await store.getState(key);
      await expectCode(store.put(key, 'w', { actor: 'blind' }), ErrorCode.TOO_MANY_SIBLINGS);
      expect(await store.getState(key)).toBe(before);
      const { context } = await store.get(key);
      expect((await store.put(key, 'one', { context, actor: 'fixer' })).values).toEqual(['one']);
    });

    it('converges two stores by merging their states in either order', async () => {
      const left = await open(0);
      const right = await open(1);
      const key = newKey();
      const base = await left.put(key, 'base', { actor: 'l' });
      await right.merge(key, (await left.getState(key))!);
      await left.put(key, 'left', { context: base.context, actor: 'l' });
      await right.put(key, 'right', { context: base.context, actor: 'r' });
      await right.delete(key, { actor: 'r2' });
      const leftState = (await left.getState(key))!;
      const rightState = (await right.getState(key))!;
      const mergedLeft = await left.merge(key, rightState);
      const mergedRight = await right.merge(key, leftState);
      expect(await left.getState(key)).toBe(await right.getState(key));
      expect(mergedLeft).toEqual(mergedRight);
      expect([...mergedLeft.values].sort()).toEqual(['left', 'right']);
      expect(mergedLeft.deleted).toBe(true);
      // Idempotent: merging again changes nothing.
      await left.merge(key, rightState);
      expect(await left.getState(key)).toBe(await right.getState(key));
    });

    it('never purges: the causal context must outlive the last version', async () => {
      const store = await open();
      const key = newKey();
      const { context } = await store.put(key, 'v', { actor: 'a' });
      await store.delete(key, { context, actor: 'a' });
      const before = await store.getState(key);
      expect(await store.purge(key)).toBe(false);
      expect(await store.getState(key)).toBe(before);
    });

    badInputTests(() => open());
    convergenceProperty((replica) => open(replica), 15);

    it('refuses a last-write-wins state', async () => {
      const store = await open();
      const key = newKey();
      await store.put(key, 1, { actor: 'a' });
      const before = await store.getState(key);
      await expectCode(
        store.merge(key, JSON.stringify({ kind: 'lww', version: 1, write: null })),
        ErrorCode.INVALID_INPUT,
      );
      expect(await store.getState(key)).toBe(before);
    });
  });

  describe(`${name}: lww handler`, () => {
    const open = (replica: 0 | 1 = 0) => makeStore({ handler: 'lww' }, replica);

    it('keeps the last write and reads deletes as deleted', async () => {
      const store = await open();
      const key = newKey();
      expect(await store.get(key)).toEqual({ values: [], context: '', deleted: false });
      const first = await store.put(key, 'a', { actor: 'x' });
      const second = await store.put(key, 'b', { context: first.context, actor: 'y' });
      expect(second.values).toEqual(['b']);
      expect(compareLwwContexts(first.context, second.context)).toBe(-1);
      expect(second.context).toMatch(/^[A-Za-z0-9._~-]+$/);
      const gone = await store.delete(key, { context: second.context, actor: 'x' });
      expect(gone).toMatchObject({ values: [], deleted: true });
      expect(await store.get(key)).toEqual(gone);
    });

    it('under 30 concurrent writers, the stored winner is the greatest (timestamp, id)', async () => {
      const store = await open();
      const key = newKey();
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) => store.put(key, i, { actor: `w${i}` })),
      );
      const contexts = results.map((result) => result.context).sort(compareLwwContexts);
      const greatest = contexts[contexts.length - 1]!;
      const winner = results.find((result) => result.context === greatest)!;
      expect(await store.get(key)).toEqual(winner);
    });

    it('orders a write and a delete made in two stores by (timestamp, id) and converges', async () => {
      const left = await open(0);
      const right = await open(1);
      const key = newKey();
      const written = await left.put(key, 'kept?', { actor: 'l' });
      const deleted = await right.delete(key, { actor: 'r' });
      const leftState = (await left.getState(key))!;
      await left.merge(key, (await right.getState(key))!);
      await right.merge(key, leftState);
      const merged = await left.get(key);
      expect(await right.get(key)).toEqual(merged);
      const expected = compareLwwContexts(written.context, deleted.context) > 0 ? written : deleted;
      expect(merged).toEqual(expected);
      // Re-delivering the same state is a no-op.
      await left.merge(key, leftState);
      expect(await left.get(key)).toEqual(merged);
    });

    it('refuses the same write identity with different contents (CONFLICTING_WRITE)', async () => {
      const store = await open();
      const key = newKey();
      await store.put(key, 'original', { actor: 'x' });
      const state = JSON.parse((await store.getState(key))!) as { write: { value: unknown } };
      const before = await store.getState(key);
      state.write.value = 'forged';
      await expectCode(store.merge(key, JSON.stringify(state)), ErrorCode.CONFLICTING_WRITE);
      expect(await store.getState(key)).toBe(before);
    });

    it('purges a tombstone only after its grace period', async () => {
      const time = { now: 1_700_000_000_000 };
      const clock = new HybridLogicalClock({ nodeId: 'purge', physicalClock: () => time.now });
      const store = await makeStore({ handler: 'lww', clock, tombstoneGraceMs: 1000 }, 0);
      const key = newKey();
      const { context } = await store.put(key, 'v', { actor: 'a' });
      time.now += 5000;
      expect(await store.purge(key)).toBe(false); // a live value is never purged
      await store.delete(key, { context, actor: 'a' });
      time.now += 1000;
      expect(await store.purge(key)).toBe(false);
      expect((await store.get(key)).deleted).toBe(true);
      time.now += 1;
      expect(await store.purge(key)).toBe(true);
      expect(await store.getState(key)).toBeUndefined();
      expect(await store.get(key)).toEqual({ values: [], context: '', deleted: false });
      expect((await store.put(key, 'again', { actor: 'a' })).values).toEqual(['again']);
      // A purge racing writes never loses them.
      await store.delete(key, { actor: 'a' });
      time.now += 1001;
      await Promise.all([
        store.purge(key),
        store.put(key, 'racer', { actor: 'r' }),
        store.purge(key),
      ]);
      expect((await store.get(key)).values).toEqual(['racer']);
    });

    badInputTests(() => open());
    convergenceProperty((replica) => open(replica), 15);
  });
}

/**
 * Property: two stores that took writes and deletes independently (and partial merges along the
 * way) hold the same state after exchanging states, whatever the order of the merges.
 */
function convergenceProperty(
  open: (replica: 0 | 1) => Promise<VersionedStore<unknown>>,
  numRuns: number,
): void {
  it(`merging the two stores' states in any order converges (property, ${numRuns} runs)`, async () => {
    const stores = [await open(0), await open(1)] as const;
    const step = fc.oneof(
      fc.record({ kind: fc.constant('put' as const), store: fc.nat(1), value: fc.nat(9) }),
      fc.record({ kind: fc.constant('delete' as const), store: fc.nat(1) }),
      fc.record({ kind: fc.constant('read' as const), store: fc.nat(1) }),
      fc.record({ kind: fc.constant('merge' as const), store: fc.nat(1) }),
    );
    const exchange = fc.shuffledSubarray([0, 1, 0, 1] as const, { minLength: 4 });
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 12 }), exchange, async (steps, order) => {
        const key = newKey();
        const contexts = ['', ''];
        const mergeInto = async (target: number) => {
          const state = await stores[1 - target]!.getState(key);
          if (state !== undefined) await stores[target]!.merge(key, state);
        };
        for (const s of steps) {
          const store = stores[s.store]!;
          const options = { context: contexts[s.store], actor: `s${s.store}` };
          if (s.kind === 'put')
            contexts[s.store] = (await store.put(key, s.value, options)).context;
          else if (s.kind === 'delete')
            contexts[s.store] = (await store.delete(key, options)).context;
          else if (s.kind === 'read') contexts[s.store] = (await store.get(key)).context;
          else await mergeInto(s.store);
        }
        for (const target of order) await mergeInto(target);
        const [left, right] = await Promise.all(stores.map((store) => store.getState(key)));
        expect(left).toBe(right);
        expect(await stores[0].get(key)).toEqual(await stores[1].get(key));
      }),
      { numRuns },
    );
  });
}

/** Bad input is `INVALID_INPUT` and leaves the store exactly as it was. */
function badInputTests(open: () => Promise<VersionedStore<unknown>>): void {
  it('refuses bad input with INVALID_INPUT and leaves the store unchanged', async () => {
    const store = await open();
    const key = newKey();
    const { context } = await store.put(key, { ok: true }, { actor: 'a' });
    const before = await store.getState(key);
    const circular: Record<string, unknown> = {};
    circular['self'] = circular;
    const attempts: Array<() => Promise<unknown>> = [
      () => store.put(key, 'x', { context: 'not a context!', actor: 'a' }),
      () => store.put(key, 'x', { context: `${context}@@`, actor: 'a' }),
      () => store.delete(key, { context: '%%%', actor: 'a' }),
      () => store.put(key, 10n, { context, actor: 'a' }),
      () => store.put(key, circular, { context, actor: 'a' }),
      () => store.put(key, { when: new Date() }, { context, actor: 'a' }),
      () => store.put(key, [1, Number.NaN], { context, actor: 'a' }),
      () => store.put(key, undefined, { context, actor: 'a' }),
      () => store.put(key, 'x', { context, actor: '' }),
      () => store.merge(key, 'not json'),
      () =>
        store.merge(key, JSON.stringify({ kind: 'siblings', version: 1, seen: {}, entries: [{}] })),
      () => store.merge(key, JSON.stringify({ kind: 'lww', version: 1, write: { ts: 'x' } })),
    ];
    for (const attempt of attempts) await expectCode(attempt(), ErrorCode.INVALID_INPUT);
    expect(await store.getState(key)).toBe(before);

    // Keys: empty, over 512 UTF-8 bytes (171 three-byte characters), a lone surrogate, NUL.
    for (const badKey of ['', '€'.repeat(171), 'a\uD800b', 'a\u0000b']) {
      await expectCode(store.put(badKey, 1, { actor: 'a' }), ErrorCode.INVALID_INPUT);
      await expectCode(store.get(badKey), ErrorCode.INVALID_INPUT);
    }
    const longest = '€'.repeat(168) + randomUUID().slice(0, 8); // exactly 512 bytes
    expect((await store.put(longest, 1, { actor: 'a' })).values).toEqual([1]);
    expect((await store.get(longest)).values).toEqual([1]);
  });
}
