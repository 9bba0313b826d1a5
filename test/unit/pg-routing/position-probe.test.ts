import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nextMark, PositionProbe } from '../../../adapters/pg/position-probe.js';
import { isConnectionLoss, triageReplicaError } from '../../../adapters/pg/replica-errors.js';

/** A stand-in position read: the number of the read, recorded with the mark it started at. */
function countingProbe(concurrency: number) {
  const starts: number[] = [];
  const pending: (() => void)[] = [];
  const probe = new PositionProbe<number>(() => {
    // The probe takes its own mark just before calling read: the last mark issued.
    const started = nextMark();
    starts.push(started);
    const index = starts.length - 1;
    return new Promise<number>((resolve) => pending.push(() => resolve(index)));
  }, concurrency);
  return { probe, starts, pending };
}

describe('PositionProbe', () => {
  it('answers every caller with a read that started after its mark, sharing reads', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.constant('complete' as const), fc.constant('finish' as const)), {
          minLength: 1,
          maxLength: 60,
        }),
        fc.integer({ min: 1, max: 3 }),
        async (steps, concurrency) => {
          const { probe, starts, pending } = countingProbe(concurrency);
          const answers: Promise<void>[] = [];
          for (const step of steps) {
            if (step === 'complete') {
              // A statement completes now and asks for a position read after it.
              const mark = nextMark();
              answers.push(
                probe.after(mark).then((index) => {
                  expect(starts[index]!).toBeGreaterThan(mark);
                }),
              );
            } else {
              pending.shift()?.();
            }
            await Promise.resolve();
          }
          while (pending.length > 0) {
            pending.shift()!();
            await new Promise((resolve) => setImmediate(resolve));
          }
          await Promise.all(answers);
          const completed = steps.filter((step) => step === 'complete').length;
          expect(starts.length).toBeLessThanOrEqual(completed);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('shares one read between callers that completed before it started', async () => {
    const { probe, starts, pending } = countingProbe(1);
    const first = probe.after(nextMark());
    const a = nextMark();
    const b = nextMark();
    const second = probe.after(a);
    const third = probe.after(b);
    expect(starts).toHaveLength(1);
    pending.shift()!();
    expect(await first).toBe(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(starts).toHaveLength(2);
    pending.shift()!();
    expect([await second, await third]).toEqual([1, 1]);
  });
});

describe('replica error triage', () => {
  const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code });
  it('counts only a lost connection against a replica', () => {
    for (const error of [
      withCode('57P01'),
      withCode('08006'),
      withCode('ECONNREFUSED'),
      new Error('Connection terminated unexpectedly'),
    ]) {
      expect(isConnectionLoss(error)).toBe(true);
      expect(triageReplicaError(error)).toBe('connection');
    }
    for (const error of [
      withCode('08P01'),
      new RangeError('Maximum call stack size exceeded'),
      new Error('Query read timeout'),
      withCode('42P01'),
      withCode('57014'),
    ]) {
      expect(isConnectionLoss(error)).toBe(false);
      expect(triageReplicaError(error)).toBe('fail');
    }
  });

  it('retries what only a replica refuses on the leader', () => {
    expect(triageReplicaError(withCode('25006'))).toBe('replica-only');
    expect(
      triageReplicaError(withCode('40001', 'canceling statement due to conflict with recovery')),
    ).toBe('replica-only');
    expect(triageReplicaError(withCode('40001', 'could not serialize access'))).toBe('fail');
  });
});
