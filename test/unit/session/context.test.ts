import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  bindToSession,
  currentSession,
  mergeSessionStates,
  SessionContext,
  withSession,
} from '../../../src/session/context.js';
import type { Position } from '../../../src/session/position.js';

const at = (lsn: number, epoch = 1, stream = 's'): Position => ({
  stream,
  epoch,
  lsn: BigInt(lsn),
});

afterEach(() => {
  vi.useRealTimers();
});

describe('SessionContext floors', () => {
  it('only move forward within one history', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(1000))), (events) => {
        const session = new SessionContext({ id: 'x' });
        let maxWrite = -1;
        let maxRead = -1;
        for (const [isWrite, lsn] of events) {
          if (isWrite) {
            session.noteWrite(at(lsn));
            maxWrite = Math.max(maxWrite, lsn);
          } else {
            session.noteRead(at(lsn));
            maxRead = Math.max(maxRead, lsn);
          }
        }
        expect(session.writeFloor?.lsn ?? -1n).toBe(BigInt(maxWrite));
        expect(session.readFloor?.lsn ?? -1n).toBe(BigInt(maxRead));
        const ryw = session.floorFor('read-your-writes')?.lsn ?? -1n;
        expect(ryw).toBe(BigInt(Math.max(maxWrite, maxRead)));
        expect(session.changed).toBe(events.length > 0);
      }),
    );
  });

  it('a newer epoch replaces both floors; an older one is ignored', () => {
    const session = new SessionContext({ id: 'x', writeFloor: at(10, 2), readFloor: at(12, 2) });
    session.noteRead(at(99, 1));
    expect(session.readFloor).toEqual(at(12, 2));
    expect(session.changed).toBe(false);
    session.noteWrite(at(3, 3));
    expect(session.writeFloor).toEqual(at(3, 3));
    expect(session.readFloor).toBeUndefined();
    expect(session.changed).toBe(true);
  });

  it('rebase drops the floors and marks the session changed', () => {
    const session = new SessionContext({ id: 'x', writeFloor: at(10) });
    session.rebase();
    expect(session.state).toEqual({ id: 'x' });
    expect(session.changed).toBe(true);
  });

  it('floorAgeMs is the time since this process raised the floor a level reads against', () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const age = (s: SessionContext) => [
      s.floorAgeMs('read-your-writes'),
      s.floorAgeMs('monotonic'),
      s.floorAgeMs('eventual'),
    ];
    // Restored floors have an unknown age: taken as raised just now.
    const session = new SessionContext({ id: 'x', writeFloor: at(5), readFloor: at(3) });
    vi.advanceTimersByTime(100);
    expect(age(session)).toEqual([0, 0, 0]);
    session.noteRead(at(5)); // both floors at 5: the position is known to exist since now
    vi.advanceTimersByTime(50);
    expect(age(session)).toEqual([50, 50, 0]);
    session.noteWrite(at(4)); // not raised: the age stays
    session.noteRead(at(5));
    vi.advanceTimersByTime(50);
    expect(age(session)).toEqual([100, 100, 0]);
    session.noteWrite(at(7));
    vi.advanceTimersByTime(10);
    expect(age(session)).toEqual([10, 110, 0]);
    session.noteRead(at(9));
    vi.advanceTimersByTime(5);
    expect(age(session)).toEqual([5, 5, 0]);
    session.noteWrite(at(1, 2)); // a newer epoch drops the read floor and its age
    vi.advanceTimersByTime(20);
    expect(age(session)).toEqual([20, 0, 0]);
    session.rebase();
    expect(age(session)).toEqual([0, 0, 0]);
  });

  it('mergeSessionStates keeps the first id and the later floors', () => {
    const merged = mergeSessionStates(
      { id: 'kept', writeFloor: at(5), readFloor: at(9) },
      { id: 'other', writeFloor: at(7), readFloor: at(8) },
    );
    expect(merged).toEqual({ id: 'kept', writeFloor: at(7), readFloor: at(9) });
    expect(
      mergeSessionStates({ id: 'a', writeFloor: at(50, 1) }, { id: 'b', readFloor: at(1, 2) }),
    ).toEqual({
      id: 'a',
      readFloor: at(1, 2),
    });
  });
});

describe('withSession / currentSession', () => {
  it('carries the session through async work and nowhere else', async () => {
    expect(currentSession()).toBeUndefined();
    const seen = await withSession({ id: 'job-1' }, async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      return currentSession()?.id;
    });
    expect(seen).toBe('job-1');
    expect(currentSession()).toBeUndefined();
  });

  it('starts a fresh session from undefined and applies the level', () => {
    withSession(
      undefined,
      (session) => {
        expect(session.id).toMatch(/^[A-Za-z0-9_-]{16}$/);
        expect(currentSession()).toBe(session);
        expect(session.level).toBe('monotonic');
      },
      { level: 'monotonic' },
    );
  });
});

describe('bindToSession', () => {
  it('runs the callback as the session that bound it, whoever calls it', () => {
    const binder = new SessionContext({ id: 'binder' });
    const caller = new SessionContext({ id: 'caller' });
    const bound = withSession(binder, () => bindToSession((x: number) => [currentSession(), x]));
    const unbound = bindToSession(() => currentSession());
    expect(withSession(caller, () => bound(7))).toEqual([binder, 7]);
    // Bound outside any session: it runs outside any, even when called from inside one.
    expect(withSession(caller, () => unbound())).toBeUndefined();
  });
});
