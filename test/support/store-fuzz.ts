/**
 * One hostile-input property for every `VersionedStore` (memory in the unit tests, PostgreSQL and
 * Redis in the integration tests): random operations with junk, near-valid and valid keys,
 * values, contexts, write options and remote states. Each operation succeeds or throws a
 * `CausewayError` with a refusal code; a refused one leaves the store's whole contents (as
 * `snapshot` reads them) exactly as they were; a successful put can be read back.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import type { VersionedStore } from '../../src/conflict/versioned-store.js';
import { isCausewayError } from '../../src/errors.js';
import { junkArb } from './junk.js';
import { mutateCharacter } from './mutate.js';

const REFUSALS = ['INVALID_INPUT', 'CONFLICTING_WRITE', 'CLOCK_DRIFT', 'TOO_MANY_SIBLINGS'];

/** Keys that break naive checks: empty, NUL, lone surrogates, just over 512 UTF-8 bytes. */
const badKeyArb = fc.constantFrom(
  '',
  'a\u0000b',
  'a\uD800',
  '\uDC00x',
  '€'.repeat(171),
  'k'.repeat(513),
);

export interface StoreFuzzOptions {
  /** Keys the operations mostly use (valid for every store). */
  readonly keys: readonly string[];
  /** The store's whole contents, compared before and after a refused operation. */
  readonly snapshot: () => Promise<unknown>;
  /** A serialized state of one of `keys` made by an independent store of the same handler. */
  readonly remoteState: string;
  readonly numRuns: number;
}

export async function assertStoreRefusesCleanly(
  store: VersionedStore<unknown>,
  { keys, snapshot, remoteState, numRuns }: StoreFuzzOptions,
): Promise<{ applied: number; refused: number }> {
  const contexts: string[] = [''];
  const counts = { applied: 0, refused: 0 };
  const keyArb = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...keys) },
    { weight: 1, arbitrary: badKeyArb },
    { weight: 1, arbitrary: junkArb },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }) },
  );
  const contextArb = fc.oneof(
    fc.nat().map((i) => contexts[i % contexts.length]),
    fc
      .tuple(fc.nat(), fc.nat(), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }))
      .map(([i, at, unit]) => mutateCharacter(contexts[i % contexts.length]!, at, unit)),
    junkArb,
  );
  const optionsArb = fc.oneof(
    { weight: 4, arbitrary: fc.record({ context: contextArb, actor: fc.constantFrom('a', 'b') }) },
    { weight: 1, arbitrary: fc.record({ context: contextArb, actor: junkArb }) },
    { weight: 1, arbitrary: junkArb },
  );
  const stateArb = fc.oneof(
    fc.constant(remoteState),
    fc
      .tuple(fc.nat(), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }))
      .map(([at, unit]) => mutateCharacter(remoteState, at, unit)),
    junkArb,
  );
  const operationArb = fc.oneof(
    fc.record({
      kind: fc.constant('put' as const),
      key: keyArb,
      value: fc.oneof(fc.jsonValue({ maxDepth: 3 }), junkArb),
      options: optionsArb,
    }),
    fc.record({ kind: fc.constant('delete' as const), key: keyArb, options: optionsArb }),
    fc.record({ kind: fc.constant('merge' as const), key: keyArb, state: stateArb }),
    fc.record({
      kind: fc.constantFrom('get' as const, 'getState' as const, 'purge' as const),
      key: keyArb,
    }),
  );

  await fc.assert(
    fc.asyncProperty(operationArb, async (op) => {
      const before = await snapshot();
      const key = op.key as string;
      let result: unknown;
      try {
        if (op.kind === 'put') result = await store.put(key, op.value, op.options as never);
        else if (op.kind === 'delete') result = await store.delete(key, op.options as never);
        else if (op.kind === 'merge') result = await store.merge(key, op.state as string);
        else result = await store[op.kind](key);
      } catch (error) {
        expect(isCausewayError(error), `not a CausewayError: ${String(error)}`).toBe(true);
        expect(REFUSALS, String(error)).toContain((error as { code: string }).code);
        expect(await snapshot()).toEqual(before);
        counts.refused++;
        return;
      }
      counts.applied++;
      const context = (result as { context?: unknown } | undefined)?.context;
      if (typeof context === 'string') contexts.push(context);
      if (op.kind === 'put') {
        const { values } = await store.get(key);
        expect(values.map((v) => JSON.stringify(v))).toContain(JSON.stringify(op.value));
      }
    }),
    { numRuns },
  );
  return counts;
}
