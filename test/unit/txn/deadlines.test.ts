import { afterEach, describe, expect, it, vi } from 'vitest';
import { Deadlines } from '../../../src/txn/deadlines.js';

describe('Deadlines', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('keeps one timer for any number of deadlines and fires each on time, in order', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const deadlines = new Deadlines();
    const fired: string[] = [];
    const never = new Promise<never>(() => {});
    const watch = (label: string, ms: number) =>
      deadlines
        .within(never, ms, () => new Error(label))
        .catch((error: Error) => {
          fired.push(error.message);
        });
    const all = [watch('a100', 100), watch('b50', 50), watch('c100', 100), watch('d10', 10)];
    for (let i = 0; i < 100; i++) void deadlines.within(Promise.resolve(i), 1_000, () => 'late');
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(10);
    expect(fired).toEqual(['d10']);
    await vi.advanceTimersByTimeAsync(40);
    expect(fired).toEqual(['d10', 'b50']);
    await vi.advanceTimersByTimeAsync(50);
    await Promise.all(all);
    expect(fired).toEqual(['d10', 'b50', 'a100', 'c100']);
    // Settled promises cancelled their deadlines: nothing is left to fire or to arm.
    await vi.advanceTimersByTimeAsync(1_000);
    expect(vi.getTimerCount()).toBe(0);
    deadlines.close();
  });

  it('settles like the promise when it wins, and cancels the deadline', async () => {
    const deadlines = new Deadlines();
    await expect(deadlines.within(Promise.resolve(7), 5, () => 'late')).resolves.toBe(7);
    await expect(
      deadlines.within(Promise.reject(new Error('no')), 5, () => 'late'),
    ).rejects.toThrow('no');
    deadlines.close();
  });

  it('sleeps, and close() wakes every sleeper at once', async () => {
    const deadlines = new Deadlines();
    const started = performance.now();
    await deadlines.sleep(5);
    expect(performance.now() - started).toBeGreaterThanOrEqual(4);
    const long = deadlines.sleep(60_000);
    deadlines.close();
    await long;
    await deadlines.sleep(60_000);
    // A deadline set with within() still fires after close (transactions in flight keep theirs).
    await expect(
      deadlines.within(new Promise(() => {}), 5, () => new Error('late')),
    ).rejects.toThrow('late');
  });
});
