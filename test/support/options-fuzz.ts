/**
 * The options fuzz of public constructors and factories (test/unit/core/options*.fuzz.test.ts):
 * whole junk, or a valid object with one or two properties (required or optional) replaced by
 * junk. Each either builds (and is closed again) or throws a `CONFIG` or `INVALID_INPUT`
 * `CausewayError`; never a `TypeError` or anything else. Each also refuses, with `CONFIG`, every
 * known key misspelt (naming the key meant) and a key it does not know at all.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isCausewayError } from '../../src/errors.js';
import { junkOptionsArb, succeedsOrRefuses } from './junk.js';

const OPTION_ERRORS = ['CONFIG', 'INVALID_INPUT'];
const RUNS = Number(process.env.FUZZ_RUNS ?? 60);

export interface OptionsSubject {
  readonly name: string;
  /** A valid options object (fresh each call). */
  readonly base: () => Record<string, unknown>;
  /** Optional properties not in `base` that junk may also land on. */
  readonly optional?: readonly string[];
  readonly build: (options: never) => unknown;
}

/** The options of each conflict handler: a store's other handler's options are unknown to it. */
export const HANDLER_KEYS = { siblings: ['maxSiblings'], lww: ['clock', 'tombstoneGraceMs'] };

/** Releases whatever a successful construction owns. */
async function release(built: unknown): Promise<void> {
  const owner = built as { close?: () => Promise<void>; end?: () => Promise<void> };
  if (typeof owner?.close === 'function') await owner.close();
  else if (typeof owner?.end === 'function') await owner.end();
}

/** `key` with its last letter's case flipped: one slip of the shift key. */
function misspelt(key: string): string {
  const last = key.at(-1)!;
  const flipped = last === last.toUpperCase() ? last.toLowerCase() : last.toUpperCase();
  return key.slice(0, -1) + flipped;
}

/** The message of the CONFIG error `build` throws, or undefined when it builds (then released). */
async function configRefusal(build: () => unknown): Promise<string | undefined> {
  try {
    await release(await build());
    return undefined;
  } catch (error) {
    expect(isCausewayError(error, 'CONFIG'), String(error)).toBe(true);
    return (error as Error).message;
  }
}

/** The two fuzz suites over `subjects`. */
export function fuzzOptions(subjects: readonly OptionsSubject[]): void {
  describe('public constructors and factories refuse junk options with CONFIG or INVALID_INPUT', () => {
    for (const subject of subjects) {
      it(`${subject.name} (${RUNS} runs)`, async () => {
        await fc.assert(
          fc.asyncProperty(junkOptionsArb(subject.base, subject.optional), async (options) => {
            const built = await succeedsOrRefuses(
              () => subject.build(options as never),
              OPTION_ERRORS,
            );
            if (built.ok) await release(built.value);
          }),
          { numRuns: RUNS },
        );
      });
    }
  });

  describe('public constructors and factories refuse unknown option keys with CONFIG', () => {
    for (const subject of subjects) {
      it(`${subject.name}: a misspelt key names the right one, a foreign key is refused`, async () => {
        const { handler } = subject.base() as { handler?: 'lww' | 'siblings' };
        const foreignToHandler =
          handler === undefined ? [] : HANDLER_KEYS[handler === 'lww' ? 'siblings' : 'lww'];
        const keys = [...Object.keys(subject.base()), ...(subject.optional ?? [])].filter(
          (key) => !foreignToHandler.includes(key),
        );
        for (const key of keys) {
          const refusal = await configRefusal(() =>
            subject.build({ ...subject.base(), [misspelt(key)]: 1 } as never),
          );
          expect(refusal, `${misspelt(key)} was accepted`).toContain(`did you mean ${key}?`);
        }
        const foreign = await configRefusal(() =>
          subject.build({ ...subject.base(), zzzUnknownOption: true } as never),
        );
        expect(foreign).toContain('unknown option "zzzUnknownOption"');
      });
    }
  });
}
