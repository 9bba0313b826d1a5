import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryReplicaSet } from '../../../adapters/memory/replica-set.js';
import { ErrorCode } from '../../../src/errors.js';
import {
  MAX_SESSION_STREAMS,
  mergeSessionStates,
  SessionContext,
  type SessionState,
} from '../../../src/session/context.js';
import type { Position } from '../../../src/session/position.js';
import { Router } from '../../../src/session/router.js';
import { streamFloorsOf } from '../../../src/session/state.js';

const at = (stream: string, lsn: number, epoch = 1): Position => ({
  stream,
  epoch,
  lsn: BigInt(lsn),
});

/** A state's floors by stream, whatever order the state lists them in. */
function floorsByStream(state: SessionState) {
  const byStream: Record<string, { write?: string; read?: string }> = {};
  for (const { writeFloor, readFloor } of streamFloorsOf(state)) {
    const stream = (writeFloor ?? readFloor)!.stream;
    byStream[stream] = {
      ...(writeFloor && { write: `${writeFloor.epoch}/${writeFloor.lsn}` }),
      ...(readFloor && { read: `${readFloor.epoch}/${readFloor.lsn}` }),
    };
  }
  return byStream;
}

// Four streams, three epochs: histories collide often enough to exercise every rule.
const position = fc
  .record({
    stream: fc.constantFrom('a', 'b', 'c', 'd'),
    epoch: fc.integer({ min: 1, max: 3 }),
    lsn: fc.bigInt({ min: 0n, max: 50n }),
  })
  .map((p): Position => p);
const event = fc.tuple(fc.boolean(), position);
const state = fc.array(event, { maxLength: 12 }).map((events): SessionState => {
  const session = new SessionContext({ id: 'p' });
  for (const [write, p] of events) write ? session.noteWrite(p) : session.noteRead(p);
  return session.state;
});

describe('per-stream floors', () => {
  it('a session writing to one cluster and reading another keeps both floors', () => {
    const session = new SessionContext({ id: 'x' });
    session.noteWrite(at('a', 10));
    session.noteRead(at('b', 7));
    session.noteWrite(at('b', 9));
    expect(session.floorFor('read-your-writes', 'a')).toEqual(at('a', 10));
    expect(session.floorFor('monotonic', 'a')).toBeUndefined();
    expect(session.floorFor('read-your-writes', 'b')).toEqual(at('b', 9));
    expect(session.floorFor('monotonic', 'b')).toEqual(at('b', 7));
    expect(session.floorFor('read-your-writes', 'c')).toBeUndefined();
    // The stream raised last is the state's own; the others follow, least recent first.
    expect(session.state).toEqual({
      id: 'x',
      writeFloor: at('b', 9),
      readFloor: at('b', 7),
      otherStreams: [{ writeFloor: at('a', 10) }],
    });
    expect(new SessionContext(session.state).state).toEqual(session.state);
  });

  it('a newer epoch re-bases only its own stream', () => {
    const session = new SessionContext({
      id: 'x',
      writeFloor: at('a', 10),
      otherStreams: [{ writeFloor: at('b', 5), readFloor: at('b', 6) }],
    });
    session.noteRead(at('b', 2, 2));
    expect(session.floorFor('read-your-writes', 'b')).toEqual(at('b', 2, 2));
    expect(session.writeFloorOn('b')).toBeUndefined();
    expect(session.floorFor('read-your-writes', 'a')).toEqual(at('a', 10));
    session.noteWrite(at('b', 99, 1)); // late report from before b's failover
    expect(session.writeFloorOn('b')).toBeUndefined();
    session.rebase('a');
    expect(session.streams).toEqual(['b']);
  });

  it(`keeps at most ${MAX_SESSION_STREAMS} streams, forgetting the least recently raised`, () => {
    const session = new SessionContext({ id: 'x' });
    for (let i = 0; i <= MAX_SESSION_STREAMS; i++) session.noteWrite(at(`s${i}`, 1));
    session.noteWrite(at('s1', 2)); // raised again: now the most recent
    session.noteWrite(at('extra', 1));
    expect(session.streams).toHaveLength(MAX_SESSION_STREAMS);
    expect(session.streams).not.toContain('s0');
    expect(session.streams).not.toContain('s2');
    expect(session.streams.at(-2)).toBe('s1');
  });

  it('a state naming more streams than the limit, or a stream twice in one entry, is INVALID_INPUT', () => {
    const otherStreams = Array.from({ length: MAX_SESSION_STREAMS }, (_, i) => ({
      writeFloor: at(`s${i}`, 1),
    }));
    expect(() => new SessionContext({ id: 'x', otherStreams })).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_INPUT }),
    );
    expect(
      () =>
        new SessionContext({
          id: 'x',
          otherStreams: [{ writeFloor: at('a', 1), readFloor: at('b', 1) }],
        }),
    ).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_INPUT }));
    expect(() => new SessionContext({ id: 'x', otherStreams: [{}] })).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_INPUT }),
    );
  });

  // Four streams at most: below the limit, where no stream is forgotten.
  it('merge is commutative, associative and idempotent on the floors', () => {
    fc.assert(
      fc.property(state, state, state, (a, b, c) => {
        const merge = (x: SessionState, y: SessionState) => mergeSessionStates(x, y);
        expect(floorsByStream(merge(a, b))).toEqual(floorsByStream(merge(b, a)));
        expect(floorsByStream(merge(merge(a, b), c))).toEqual(
          floorsByStream(merge(a, merge(b, c))),
        );
        expect(floorsByStream(merge(a, a))).toEqual(floorsByStream(a));
      }),
    );
  });

  it('merge never moves a floor back within one history', () => {
    fc.assert(
      fc.property(state, state, (a, b) => {
        const merged = new SessionContext(mergeSessionStates(a, b));
        for (const input of [a, b]) {
          for (const { writeFloor, readFloor } of streamFloorsOf(input)) {
            for (const [floor, kept] of [
              [writeFloor, (s: string) => merged.writeFloorOn(s)],
              [readFloor, (s: string) => merged.floorFor('monotonic', s)],
            ] as const) {
              if (floor === undefined) continue;
              const now = kept(floor.stream);
              // Kept at or past it, or replaced by a newer epoch of its stream.
              const epoch = merged.floorFor('read-your-writes', floor.stream)?.epoch ?? 0;
              if (epoch === floor.epoch) expect(now!.lsn >= floor.lsn).toBe(true);
              else expect(epoch).toBeGreaterThan(floor.epoch);
            }
          }
        }
      }),
    );
  });
});

describe('Router over two clusters sharing one session', () => {
  let a: MemoryReplicaSet<string>;
  let b: MemoryReplicaSet<string>;
  beforeEach(() => {
    const replicas = [{ delayMs: Number.POSITIVE_INFINITY }];
    a = new MemoryReplicaSet<string>({ stream: 'cluster-a', replicas });
    b = new MemoryReplicaSet<string>({ stream: 'cluster-b', replicas });
  });
  afterEach(async () => {
    await a.close();
    await b.close();
  });

  it("a switch keeps each cluster's floors: reads go to each cluster's replicas once caught up", async () => {
    const routerA = new Router({ replicaSet: a });
    const routerB = new Router({ replicaSet: b });
    const session = new SessionContext({ id: 'two' });
    session.noteWrite(a.write('k', 'v'));
    session.noteWrite(b.write('k', 'v'));
    expect(routerA.decide(session)).toMatchObject({
      target: 'leader',
      reason: 'write-floor-not-replicated',
    });
    a.catchUp();
    // Before per-stream floors, b's write replaced a's floor and this read was 'new-history'.
    expect(await routerA.route(session)).toMatchObject({ target: 'replica' });
    expect(await routerB.route(session)).toMatchObject({
      target: 'leader',
      reason: 'write-floor-not-replicated',
    });
    b.catchUp();
    expect(await routerB.route(session)).toMatchObject({ target: 'replica' });
    expect(session.streams).toEqual(['cluster-a', 'cluster-b']);
  });

  it("a failover on one cluster re-bases that cluster's floors only", async () => {
    const session = new SessionContext({ id: 'two' });
    session.noteWrite(a.write('k', 'v'));
    session.noteWrite(b.write('k', 'v'));
    a.failover();
    expect(await new Router({ replicaSet: a }).route(session)).toMatchObject({
      reason: 'new-history',
    });
    expect(session.streams).toEqual(['cluster-b']);
    expect(new Router({ replicaSet: b }).decide(session)).toMatchObject({
      target: 'leader',
      reason: 'write-floor-not-replicated',
    });
  });
});
