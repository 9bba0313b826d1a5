import { afterEach, describe, expect, it } from 'vitest';
import { MemoryReplicaSet } from '../../../adapters/memory/replica-set.js';
import { ErrorCode } from '../../../src/errors.js';

let db: MemoryReplicaSet<string>;
afterEach(() => db.close());

describe('MemoryReplicaSet', () => {
  it('applies writes to each replica after its own delay', async () => {
    db = new MemoryReplicaSet({ replicas: [{ name: 'fast' }, { name: 'slow', delayMs: 30 }] });
    const position = db.write('k', 'v');
    expect(position.lsn).toBe(1n);
    expect(db.read('leader', 'k')).toEqual({ value: 'v', position });
    expect(db.read('fast', 'k').value).toBe('v');
    expect(db.read('slow', 'k')).toMatchObject({ value: undefined, position: { lsn: 0n } });
    expect(db.snapshot().replicas[1]).toMatchObject({ name: 'slow', lagBytes: 1n });
    expect(await db.waitFor('slow', position, 5000)).toBe(true);
    expect(db.read('slow', 'k').value).toBe('v');
    expect(db.snapshot().replicas[1]).toMatchObject({ lagMs: 0, lagBytes: 0n });
  });

  it('keeps the snapshot object while nothing changes', () => {
    db = new MemoryReplicaSet({ replicas: 2 });
    const first = db.snapshot();
    expect(db.snapshot()).toBe(first);
    db.write('k', 'v');
    expect(db.snapshot()).not.toBe(first);
  });

  it('waitFor times out, and answers false for another epoch', async () => {
    db = new MemoryReplicaSet({ replicas: [{ delayMs: Number.POSITIVE_INFINITY }] });
    const position = db.write('k', 'v');
    expect(await db.waitFor('replica-1', position, 10)).toBe(false);
    db.failover();
    expect(db.epoch).toBe(2);
    expect(await db.waitFor('replica-1', position, 10)).toBe(false);
  });

  it('stopped replicas apply nothing and report unhealthy until started', () => {
    db = new MemoryReplicaSet({ replicas: 1 });
    db.stop('replica-1');
    db.write('k', 'v');
    expect(db.snapshot().replicas[0]).toMatchObject({ healthy: false, position: { lsn: 0n } });
    db.start('replica-1');
    expect(db.snapshot().replicas[0]).toMatchObject({ healthy: true, position: { lsn: 1n } });
    db.reportError('replica-1', new Error('boom'));
    expect(db.snapshot().replicas[0]?.healthy).toBe(false);
  });

  it('close resolves pending waits with false', async () => {
    db = new MemoryReplicaSet({ replicas: [{ delayMs: Number.POSITIVE_INFINITY }] });
    const wait = db.waitFor('replica-1', db.write('k', 'v'), 60_000);
    await db.close();
    expect(await wait).toBe(false);
  });

  it('rejects bad options and unknown nodes', () => {
    expect(() => new MemoryReplicaSet({ replicas: [{ name: 'a' }, { name: 'a' }] })).toThrow(
      expect.objectContaining({ code: ErrorCode.CONFIG }),
    );
    // A hole in a sparse array is a missing replica, not one map() skips (close() then threw).
    expect(() => new MemoryReplicaSet({ replicas: new Array(1) })).toThrow(
      expect.objectContaining({ code: ErrorCode.CONFIG }),
    );
    db = new MemoryReplicaSet();
    expect(() => db.read('nope', 'k')).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_INPUT }),
    );
  });
});
