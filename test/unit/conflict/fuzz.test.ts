/**
 * Contexts and remote states arrive from outside (HTTP, other stores). Whatever they hold, a
 * store either applies them or refuses them with a `CausewayError`, and a refusal leaves the
 * stored state exactly as it was: never another exception, never a half-applied change.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryVersionedStore } from '../../../adapters/memory/versioned-store.js';
import { isCausewayError } from '../../../src/errors.js';
import { mutateCharacter, replaceAt } from '../../support/mutate.js';

/** Codes a refused context or state may carry; the test fails on anything else. */
const REFUSALS = new Set([
  'INVALID_INPUT',
  'CONFLICTING_WRITE',
  'CLOCK_DRIFT',
  'TOO_MANY_SIBLINGS',
]);

for (const handler of ['siblings', 'lww'] as const) {
  describe(`${handler}: hostile contexts and states`, () => {
    async function seeded() {
      const store = new MemoryVersionedStore<unknown>({ handler });
      const first = await store.put('k', { n: 1 }, { actor: 'a' });
      await store.put('k', 'two', { actor: 'b' });
      const remote = new MemoryVersionedStore<unknown>({ handler });
      await remote.put('k', [3], { actor: 'c' });
      await remote.delete('k', { actor: 'c' });
      return { store, context: first.context, remoteState: (await remote.getState('k'))! };
    }

    async function expectAppliedOrRefused(
      store: MemoryVersionedStore<unknown>,
      action: () => Promise<unknown>,
    ): Promise<void> {
      const before = await store.getState('k');
      try {
        await action();
      } catch (error) {
        expect(isCausewayError(error), String(error)).toBe(true);
        expect(REFUSALS.has((error as { code: string }).code), String(error)).toBe(true);
        expect(await store.getState('k')).toBe(before);
      }
    }

    const noise = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc.string({ unit: 'binary', maxLength: 80 }),
      fc.jsonValue().map((v) => JSON.stringify(v)),
    );

    it('any context passed to put or delete', async () => {
      const { store, context } = await seeded();
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            noise,
            fc
              .tuple(fc.nat(), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }))
              .map(([at, unit]) => mutateCharacter(context, at, unit)),
          ),
          fc.boolean(),
          async (candidate, isDelete) => {
            await expectAppliedOrRefused(store, () =>
              isDelete
                ? store.delete('k', { context: candidate, actor: 'fuzz' })
                : store.put('k', 'fuzzed', { context: candidate, actor: 'fuzz' }),
            );
          },
        ),
        { numRuns: 300 },
      );
    });

    it('any remote state passed to merge', async () => {
      const { store, remoteState } = await seeded();
      const parsed: unknown = JSON.parse(remoteState);
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            noise,
            fc
              .tuple(fc.nat(), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }))
              .map(([at, unit]) => mutateCharacter(remoteState, at, unit)),
            fc
              .tuple(fc.nat(), fc.jsonValue())
              .map(([pick, value]) => JSON.stringify(replaceAt(parsed, pick, value))),
          ),
          async (candidate) => {
            await expectAppliedOrRefused(store, () => store.merge('k', candidate));
          },
        ),
        { numRuns: 300 },
      );
    });
  });
}
