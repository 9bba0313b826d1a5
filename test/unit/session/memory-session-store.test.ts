import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemorySessionStore } from '../../../adapters/memory/session-store.js';
import type { Position } from '../../../src/session/position.js';

const at = (lsn: number, epoch = 1): Position => ({ stream: 's', epoch, lsn: BigInt(lsn) });

let store: MemorySessionStore;
afterEach(async () => {
  vi.useRealTimers();
  await store.close();
});

describe('MemorySessionStore', () => {
  it('merges forward only and keeps the first id', async () => {
    store = new MemorySessionStore();
    await store.set('u1', { id: 'first', writeFloor: at(10) });
    await store.set('u1', { id: 'second', writeFloor: at(5), readFloor: at(12) });
    expect(await store.get('u1')).toEqual({ id: 'first', writeFloor: at(10), readFloor: at(12) });
    await store.set('u1', { id: 'x', writeFloor: at(1, 2) });
    expect(await store.get('u1')).toEqual({ id: 'first', writeFloor: at(1, 2) });
    expect(await store.get('u2')).toBeUndefined();
  });

  it('keeps the floor of concurrent writers (no lost update)', async () => {
    store = new MemorySessionStore();
    const lsns = [30, 90, 10, 70, 50];
    await Promise.all(lsns.map((lsn) => store.set('u1', { id: `d${lsn}`, writeFloor: at(lsn) })));
    expect((await store.get('u1'))?.writeFloor).toEqual(at(90));
  });

  it('forgets a key ttlMs after its last write', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    store = new MemorySessionStore({ ttlMs: 1000 });
    await store.set('u1', { id: 'a' });
    vi.setSystemTime(Date.now() + 999);
    expect(await store.get('u1')).toEqual({ id: 'a' });
    vi.setSystemTime(Date.now() + 2);
    expect(await store.get('u1')).toBeUndefined();
  });
});
