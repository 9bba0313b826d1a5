/**
 * The memory stores with hostile keys, values, contexts, options, remote states and session
 * states: every call succeeds or is refused with a `CausewayError`, and a refused call leaves the
 * store's contents as they were. The PostgreSQL and Redis stores get the same property in
 * test/integration/fuzz.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { MemorySessionStore, MemoryVersionedStore } from '../../../adapters/memory/index.js';
import {
  mergeSessionStates,
  SessionContext,
  type SessionState,
} from '../../../src/session/context.js';
import { expectTypedError, junkArb } from '../../support/junk.js';
import { assertStoreRefusesCleanly } from '../../support/store-fuzz.js';

const KEYS = ['k1', 'k2', 'ключ', '🔑'];

describe.each(['siblings', 'lww'] as const)('MemoryVersionedStore (%s)', (handler) => {
  it('refuses hostile input cleanly (400 runs)', async () => {
    const store = new MemoryVersionedStore<unknown>({ handler });
    const remote = new MemoryVersionedStore<unknown>({ handler });
    await remote.put('k1', { from: 'remote' }, { actor: 'r' });
    const snapshot = async () =>
      Object.fromEntries(await Promise.all(KEYS.map(async (k) => [k, await store.getState(k)])));
    const counts = await assertStoreRefusesCleanly(store, {
      keys: KEYS,
      snapshot,
      remoteState: (await remote.getState('k1'))!,
      numRuns: 400,
    });
    // The property saw both outcomes, not only refusals.
    expect(counts.applied).toBeGreaterThan(20);
    expect(counts.refused).toBeGreaterThan(20);
  });
});

describe('MemorySessionStore', () => {
  const store = new MemorySessionStore();
  afterAll(() => store.close());

  const position = fc.record({
    stream: fc.constant('s'),
    epoch: fc.nat(3),
    lsn: fc.bigInt({ min: 0n, max: 1000n }),
  });
  const validState: fc.Arbitrary<SessionState> = fc
    .record({ id: fc.constantFrom('u1', 'u2'), floor: fc.option(position, { nil: undefined }) })
    .map(({ id, floor }) => (floor ? { id, writeFloor: floor } : { id }));
  const keyArb = fc.oneof(fc.constantFrom('alice', 'bob'), junkArb);
  const stateArb = fc.oneof(
    validState,
    junkArb,
    fc.record({ id: junkArb }),
    fc.record({ id: fc.constant('u'), writeFloor: fc.oneof(junkArb, fc.record({ lsn: junkArb })) }),
    // A state decoded by hand from JSON: the lsn is a string.
    fc.constant({ id: 'u', writeFloor: { stream: 's', epoch: 1, lsn: '5' } }),
  );

  it('set and get: merged as a model says, or INVALID_INPUT with nothing stored (300 runs)', async () => {
    const model = new Map<string, SessionState>();
    await fc.assert(
      fc.asyncProperty(keyArb, stateArb, async (key, state) => {
        try {
          await store.set(key as string, state as SessionState);
        } catch (error) {
          expectTypedError(error, ['INVALID_INPUT']);
        }
        if (typeof key === 'string' && typeof (state as SessionState)?.id === 'string') {
          try {
            const kept = model.get(key);
            const incoming = state as SessionState;
            new SessionContext(incoming); // the model's validation
            model.set(key, kept === undefined ? incoming : mergeSessionStates(kept, incoming));
          } catch (error) {
            // The model refuses what the store refused.
            expectTypedError(error, ['INVALID_INPUT']);
          }
        }
        for (const known of ['alice', 'bob']) {
          expect(await store.get(known)).toEqual(model.get(known));
        }
        try {
          await store.get(key as string);
        } catch (error) {
          expectTypedError(error, ['INVALID_INPUT']);
        }
      }),
      { numRuns: 300 },
    );
  });
});
