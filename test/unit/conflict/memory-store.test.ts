import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryVersionedStore } from '../../../adapters/memory/versioned-store.js';
import { HybridLogicalClock } from '../../../src/clocks/hlc.js';
import type { VersionedStoreOptions } from '../../../src/conflict/versioned-store.js';
import { versionedStoreSuite } from '../../integration/versioned-store/suite.js';

versionedStoreSuite('MemoryVersionedStore', async (options) => new MemoryVersionedStore(options));

describe('anti-entropy between stores (property)', () => {
  const STORES = 3;
  const op = fc.oneof(
    fc.record({
      kind: fc.constant('put' as const),
      store: fc.nat(STORES - 1),
      context: fc.nat(),
      value: fc.nat(50),
    }),
    fc.record({
      kind: fc.constant('delete' as const),
      store: fc.nat(STORES - 1),
      context: fc.nat(),
    }),
    fc.record({ kind: fc.constant('read' as const), store: fc.nat(STORES - 1) }),
    fc.record({
      kind: fc.constant('merge' as const),
      store: fc.nat(STORES - 1),
      from: fc.nat(STORES - 1),
    }),
  );
  // Every store merges every other's state, in an arbitrary order of (target, source) pairs.
  const exchangeOrder = fc.shuffledSubarray(
    Array.from(
      { length: STORES * STORES },
      (_, i) => [Math.floor(i / STORES), i % STORES] as const,
    ),
    { minLength: STORES * STORES },
  );

  for (const handler of ['siblings', 'lww'] as const) {
    it(`${handler}: stores converge whatever the order of merges`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 25 }), exchangeOrder, async (ops, order) => {
          const time = { now: 1_700_000_000_000 };
          const stores = Array.from({ length: STORES }, (_, i) => {
            const options: VersionedStoreOptions =
              handler === 'siblings'
                ? { handler }
                : {
                    handler,
                    clock: new HybridLogicalClock({
                      nodeId: `n${i}`,
                      physicalClock: () => time.now,
                    }),
                  };
            return new MemoryVersionedStore<number>(options);
          });
          const key = 'k';
          const contexts = [''];
          for (const step of ops) {
            time.now += 1;
            const store = stores[step.store]!;
            const actor = `s${step.store}`;
            const context = 'context' in step ? contexts[step.context % contexts.length] : '';
            if (step.kind === 'put') await store.put(key, step.value, { context, actor });
            else if (step.kind === 'delete') await store.delete(key, { context, actor });
            else if (step.kind === 'read') contexts.push((await store.get(key)).context);
            else {
              const state = await stores[step.from]!.getState(key);
              if (state !== undefined) await store.merge(key, state);
            }
          }
          // Two rounds of full exchange in the given order reach every store from every other.
          for (let round = 0; round < 2; round++) {
            for (const [target, source] of order) {
              const state = await stores[source]!.getState(key);
              if (state !== undefined) await stores[target]!.merge(key, state);
            }
          }
          const states = await Promise.all(stores.map((store) => store.getState(key)));
          expect(new Set(states).size).toBe(1);
        }),
        { numRuns: 60 },
      );
    });
  }
});
