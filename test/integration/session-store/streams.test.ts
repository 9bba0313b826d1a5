import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemorySessionStore } from '../../../adapters/memory/session-store.js';
import { RedisSessionStore } from '../../../adapters/redis/session-store.js';
import {
  MAX_SESSION_STREAMS,
  mergeSessionStates,
  SessionContext,
  type SessionState,
} from '../../../src/session/context.js';
import type { Position } from '../../../src/session/position.js';
import { streamFloorsOf } from '../../../src/session/state.js';
import { testEnv } from '../../harness/env.js';

const prefix = `causeway:test:streams:${randomUUID()}:`;
let redis: Redis;
beforeAll(() => {
  redis = new Redis(testEnv().redisUrl);
});
afterAll(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

/** A state's floors by stream, whatever order it lists them in. */
function floorsByStream(state: SessionState | undefined) {
  const byStream: Record<string, string> = {};
  for (const { writeFloor, readFloor } of state === undefined ? [] : streamFloorsOf(state)) {
    const { stream, epoch } = (writeFloor ?? readFloor)!;
    byStream[stream] = `${epoch}:${writeFloor?.lsn ?? '-'}:${readFloor?.lsn ?? '-'}`;
  }
  return byStream;
}

const position = fc
  .record({
    stream: fc.constantFrom('a', 'b', 'c', '7301234567890123456'),
    epoch: fc.integer({ min: 0, max: 2 }),
    lsn: fc.constantFrom(0n, 1n, 255n, 256n, (1n << 64n) - 1n),
  })
  .map((p): Position => p);
const state = fc.array(fc.tuple(fc.boolean(), position), { maxLength: 8 }).map((events) => {
  const session = new SessionContext({ id: 'device' });
  for (const [write, p] of events) write ? session.noteWrite(p) : session.noteRead(p);
  return session.state;
});

describe('session stores keep floors per stream', () => {
  it('Redis and memory stores merge as mergeSessionStates does (property)', async () => {
    const redisStore = new RedisSessionStore({ redis, keyPrefix: prefix, timeoutMs: 2000 });
    const memoryStore = new MemorySessionStore();
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(state, { minLength: 1, maxLength: 5 }), async (states) => {
        const key = `k${run++}`;
        let expected = states[0]!;
        for (const each of states) {
          await redisStore.set(key, each);
          await memoryStore.set(key, each);
          expected = each === states[0] ? each : mergeSessionStates(expected, each);
        }
        const fromRedis = await redisStore.get(key);
        expect(floorsByStream(fromRedis)).toEqual(floorsByStream(expected));
        expect(floorsByStream(await memoryStore.get(key))).toEqual(floorsByStream(expected));
        // The stream raised last stays the state's own (its top-level floors).
        if (fromRedis !== undefined) new SessionContext(fromRedis);
      }),
      { numRuns: 60 },
    );
    await memoryStore.close();
  });

  it(`keeps at most ${MAX_SESSION_STREAMS} streams, forgetting the least recently raised`, async () => {
    const store = new RedisSessionStore({ redis, keyPrefix: prefix, timeoutMs: 2000 });
    for (let i = 0; i < MAX_SESSION_STREAMS + 2; i++) {
      await store.set('many', { id: 'x', writeFloor: { stream: `s${i}`, epoch: 1, lsn: 5n } });
    }
    const kept = await store.get('many');
    expect(Object.keys(floorsByStream(kept)).sort()).toEqual(
      Array.from({ length: MAX_SESSION_STREAMS }, (_, i) => `s${i + 2}`).sort(),
    );
    expect(kept?.writeFloor?.stream).toBe(`s${MAX_SESSION_STREAMS + 1}`);
  });

  it('reads and merges a hash written before per-stream floors', async () => {
    const store = new RedisSessionStore({ redis, keyPrefix: prefix, timeoutMs: 2000 });
    const key = `${prefix}legacy`;
    await redis.hset(key, { id: 'old', s: 'a', e: '2', w: '0000000000000010' });
    expect(await store.get('legacy')).toEqual({
      id: 'old',
      writeFloor: { stream: 'a', epoch: 2, lsn: 16n },
    });
    await store.set('legacy', { id: 'new', readFloor: { stream: 'b', epoch: 1, lsn: 3n } });
    expect(floorsByStream(await store.get('legacy'))).toEqual({ a: '2:16:-', b: '1:-:3' });
    expect(await redis.hexists(key, 's')).toBe(0);
  });

  it('a stored field it cannot read is INVALID_INPUT, not a crash', async () => {
    const store = new RedisSessionStore({ redis, keyPrefix: prefix, timeoutMs: 2000 });
    await redis.hset(`${prefix}bad`, { id: 'x', 'f:a': '1 zz - 1' });
    await expect(store.get('bad')).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });
});
