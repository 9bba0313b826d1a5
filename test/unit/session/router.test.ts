import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryReplicaSet } from '../../../adapters/memory/replica-set.js';
import { ErrorCode, isCausewayError } from '../../../src/errors.js';
import { SessionContext } from '../../../src/session/context.js';
import type { ConsistencyLevel } from '../../../src/session/level.js';
import type { Position } from '../../../src/session/position.js';
import type { ReplicaSet } from '../../../src/session/replica-set.js';
import { Router, type RouterOptions } from '../../../src/session/router.js';
import { installTelemetry } from '../../support/otel.js';

const otel = installTelemetry();
afterAll(() => otel.stop());

let db: MemoryReplicaSet<string>;
beforeEach(() => {
  // Replicas apply only on catchUp(): every position in these tests is set by hand.
  db = new MemoryReplicaSet<string>({
    replicas: [
      { delayMs: Number.POSITIVE_INFINITY },
      { delayMs: Number.POSITIVE_INFINITY },
      { delayMs: Number.POSITIVE_INFINITY },
    ],
  });
});
afterEach(async () => {
  vi.useRealTimers();
  await db.close();
});

function router(options: Partial<RouterOptions> = {}) {
  return new Router({ replicaSet: db, ...options });
}

/**
 * `db` with the named replicas' measured lag replaced, as a set whose lags and positions come
 * from health checks at different moments may report them.
 */
function withLags(lags: Record<string, number | undefined>): ReplicaSet {
  return {
    snapshot: () => {
      const snapshot = db.snapshot();
      const replicas = snapshot.replicas.map((replica) =>
        replica.name in lags ? { ...replica, lagMs: lags[replica.name] } : replica,
      );
      return { ...snapshot, replicas };
    },
    refresh: () => db.refresh(),
    waitFor: (node, position, timeoutMs) => db.waitFor(node, position, timeoutMs),
    reportError: (node, error) => db.reportError(node, error),
    close: () => db.close(),
  };
}

/** A router with `onNoCaughtUp: 'wait'` (500 ms) over `db`, every replica's measured lag `lagMs`. */
function waitingRouter(lagMs: number): Router {
  const replicaSet = withLags({ 'replica-1': lagMs, 'replica-2': lagMs, 'replica-3': lagMs });
  return new Router({ replicaSet, onNoCaughtUp: 'wait', waitTimeoutMs: 500 });
}

/** The promise's value if it settles before the event loop's next turn (before any timer), else 'pending'. */
function settledThisTurn<T>(promise: Promise<T>): Promise<T | 'pending'> {
  const nextTurn = new Promise<'pending'>((resolve) => setImmediate(() => resolve('pending')));
  return Promise.race([promise, nextTurn]);
}

/** The sticky replica of a fresh session with this id (no floors, all replicas healthy). */
function stickyOf(r: Router, session: SessionContext): string {
  const decision = r.decide(session, 'eventual');
  expect(decision.reason).toBe('sticky');
  return decision.node;
}

describe('Router.decide', () => {
  it.each<[ConsistencyLevel, string, string]>([
    ['strong', 'leader', 'strong'],
    ['read-your-writes', 'replica', 'sticky'],
    ['monotonic', 'replica', 'sticky'],
    ['eventual', 'replica', 'sticky'],
    [{ maxStalenessMs: 1000 }, 'replica', 'sticky'],
  ])('a fresh session at %j goes to the %s (%s)', (level, target, reason) => {
    const decision = router().decide(new SessionContext({ id: 's1' }), level);
    expect(decision).toMatchObject({ target, reason, level });
  });

  it('takes the level from the session, then the router', () => {
    const session = new SessionContext({ id: 's1' }, 'strong');
    expect(router().decide(session).reason).toBe('strong');
    expect(router({ level: 'strong' }).decide(undefined).reason).toBe('strong');
  });

  it('without a session reads replicas in turn', () => {
    const r = router();
    const nodes = [0, 1, 2, 3].map(() => r.decide(undefined));
    expect(nodes.every((d) => d.target === 'replica' && d.reason === 'no-session')).toBe(true);
    expect(new Set(nodes.map((d) => d.node)).size).toBe(3);
    expect(nodes[3]!.node).toBe(nodes[0]!.node);
  });

  it('read-your-writes: leader until a replica reaches the write floor, then that replica', () => {
    const r = router();
    const session = new SessionContext({ id: 'writer' });
    const sticky = stickyOf(r, session);
    session.noteWrite(db.write('k', 'v1'));
    expect(r.decide(session)).toMatchObject({
      target: 'leader',
      node: 'leader',
      reason: 'write-floor-not-replicated',
    });
    const other = db.replicaNames.find((name) => name !== sticky)!;
    db.catchUp(other);
    expect(r.decide(session)).toMatchObject({
      target: 'replica',
      node: other,
      reason: 'caught-up',
    });
    db.catchUp();
    expect(r.decide(session)).toMatchObject({ target: 'replica', node: sticky, reason: 'sticky' });
  });

  it('monotonic ignores the write floor but keeps the read floor', () => {
    const r = router();
    const session = new SessionContext({ id: 'reader' });
    const sticky = stickyOf(r, session);
    session.noteWrite(db.write('k', 'v1'));
    expect(r.decide(session, 'monotonic')).toMatchObject({ node: sticky, reason: 'sticky' });
    expect(r.decide(session, 'eventual')).toMatchObject({ node: sticky, reason: 'sticky' });
    session.noteRead(db.read('leader', 'k').position);
    expect(r.decide(session, 'monotonic')).toMatchObject({
      target: 'leader',
      reason: 'read-floor-not-replicated',
    });
  });

  it('monotonic reads survive the sticky replica stopping: never a replica behind the read floor', () => {
    const r = router();
    const session = new SessionContext({ id: 'mono' });
    const sticky = stickyOf(r, session);
    const [a, b] = db.replicaNames.filter((name) => name !== sticky) as [string, string];
    db.write('k', 'v1');
    db.catchUp(sticky);
    session.noteRead(db.read(sticky, 'k').position);
    db.stop(sticky);
    // Both remaining replicas are behind what the session read: the leader it is.
    expect(r.decide(session, 'monotonic')).toMatchObject({
      target: 'leader',
      reason: 'read-floor-not-replicated',
    });
    db.catchUp(b);
    expect(r.decide(session, 'monotonic')).toMatchObject({ node: b, reason: 'caught-up' });
    db.catchUp(a);
    const moved = r.decide(session, 'monotonic');
    expect(moved.target).toBe('replica');
    expect(moved.node).not.toBe(sticky);
    db.start(sticky);
    expect(r.decide(session, 'monotonic')).toMatchObject({ node: sticky, reason: 'sticky' });
  });

  it('monotonic reads when the sticky replica falls behind: another replica or the leader', () => {
    const r = router();
    const session = new SessionContext({ id: 'behind' });
    const sticky = stickyOf(r, session);
    db.write('k', 'v1');
    const ahead = db.replicaNames.find((name) => name !== sticky)!;
    db.catchUp(ahead);
    session.noteRead(db.read(ahead, 'k').position);
    const decision = r.decide(session, 'monotonic');
    expect(decision).toMatchObject({ target: 'replica', node: ahead, reason: 'caught-up' });
  });

  it('unhealthy replicas are skipped; none healthy means the leader', () => {
    const r = router();
    const session = new SessionContext({ id: 'health' });
    const sticky = stickyOf(r, session);
    db.setHealthy(sticky, false);
    expect(r.decide(session, 'eventual').node).not.toBe(sticky);
    for (const name of db.replicaNames) db.setHealthy(name, false);
    expect(r.decide(session, 'eventual')).toMatchObject({
      target: 'leader',
      reason: 'no-healthy-replica',
    });
    expect(r.decide(undefined)).toMatchObject({ target: 'leader', reason: 'no-healthy-replica' });
  });

  it('a bounded-staleness read skips replicas lagging beyond the bound', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const r = router();
    const session = new SessionContext({ id: 'bounded' });
    const sticky = stickyOf(r, session);
    db.write('k', 'v1');
    vi.setSystemTime(Date.now() + 2000);
    expect(r.decide(session, { maxStalenessMs: 5000 })).toMatchObject({
      node: sticky,
      reason: 'sticky',
      lagMs: 2000,
    });
    expect(r.decide(session, { maxStalenessMs: 1000 })).toMatchObject({
      target: 'leader',
      reason: 'stale-beyond-bound',
    });
    const other = db.replicaNames.find((name) => name !== sticky)!;
    db.catchUp(other);
    expect(r.decide(session, { maxStalenessMs: 1000 })).toMatchObject({
      node: other,
      reason: 'caught-up',
      lagMs: 0,
    });
  });

  it('a floor from another epoch (failover) goes to the leader with reason new-history', () => {
    const session = new SessionContext({ id: 'epoch' });
    session.noteWrite(db.write('k', 'v1'));
    db.failover();
    expect(router().decide(session)).toMatchObject({ target: 'leader', reason: 'new-history' });
  });

  it('floors uncertain (session store down): floor levels read the leader, eventual does not', () => {
    const session = new SessionContext({ id: 'uncertain' });
    session.floorsUncertain = true;
    const r = router();
    expect(r.decide(session)).toMatchObject({ target: 'leader', reason: 'floors-uncertain' });
    expect(r.decide(session, 'monotonic')).toMatchObject({
      target: 'leader',
      reason: 'floors-uncertain',
    });
    expect(r.decide(session, 'eventual').target).toBe('replica');
  });
});

describe('Router.route', () => {
  it('re-bases the session after a new history: leader once, then replicas again', async () => {
    const r = router();
    const session = new SessionContext({ id: 'rebase' });
    session.noteWrite(db.write('k', 'v1'));
    db.failover();
    expect(await r.route(session)).toMatchObject({ target: 'leader', reason: 'new-history' });
    expect(session.writeFloor).toBeUndefined();
    expect(session.changed).toBe(true);
    expect(await r.route(session)).toMatchObject({ target: 'replica', reason: 'sticky' });
  });

  it("onNoCaughtUp 'leader' (default) reads the leader", async () => {
    const session = new SessionContext({ id: 'p1' });
    session.noteWrite(db.write('k', 'v1'));
    expect(await router().route(session)).toMatchObject({
      target: 'leader',
      reason: 'write-floor-not-replicated',
    });
  });

  it("onNoCaughtUp 'error' rejects with NO_REPLICA_CAUGHT_UP", async () => {
    const session = new SessionContext({ id: 'p2' });
    session.noteWrite(db.write('k', 'v1'));
    const error = await router({ onNoCaughtUp: 'error' })
      .route(session)
      .catch((e: unknown) => e);
    expect(isCausewayError(error, ErrorCode.NO_REPLICA_CAUGHT_UP)).toBe(true);
    // A strong read is not a miss.
    expect(await router({ onNoCaughtUp: 'error' }).route(session, 'strong')).toMatchObject({
      reason: 'strong',
    });
  });

  it("onNoCaughtUp 'wait' waits for a replica to reach the floor", async () => {
    // replica-2 is the most advanced, so it is the one waited for.
    db.write('k0', 'v0');
    db.catchUp('replica-2');
    db.setDelay('replica-2', 20);
    const session = new SessionContext({ id: 'p3' });
    session.noteWrite(db.write('k', 'v1'));
    const decision = await router({ onNoCaughtUp: 'wait', waitTimeoutMs: 5000 }).route(session);
    expect(decision).toMatchObject({ target: 'replica', node: 'replica-2', reason: 'waited' });
    expect(decision.waitedMs).toBeGreaterThanOrEqual(0);
    expect(db.read('replica-2', 'k').value).toBe('v1');
  });

  it("onNoCaughtUp 'wait' falls back to the leader after waitTimeoutMs", async () => {
    // The clock stands still, so the replicas' measured lag (0) stays within the timeout.
    vi.useFakeTimers({ toFake: ['Date'] });
    const session = new SessionContext({ id: 'p4' });
    session.noteWrite(db.write('k', 'v1'));
    const decision = await router({ onNoCaughtUp: 'wait', waitTimeoutMs: 20 }).route(session);
    expect(decision).toMatchObject({ target: 'leader', reason: 'wait-timed-out' });
    expect(decision.waitedMs).toBeGreaterThanOrEqual(0);
  });

  it("onNoCaughtUp 'wait' reads the leader at once when every replica lags beyond waitTimeoutMs", async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const session = new SessionContext({ id: 'p5' });
    session.noteWrite(db.write('k', 'v1'));
    vi.setSystemTime(Date.now() + 2000); // every replica has had the write pending for 2 s
    const counted = { 'causeway.reason': 'wait-skipped', 'causeway.target': 'leader' };
    const before = await otel.counter('causeway.route.reads', counted);
    const r = router({ onNoCaughtUp: 'wait', waitTimeoutMs: 500 });
    // Settled before any timer could fire: no wait was started.
    expect(await settledThisTurn(r.route(session))).toEqual({
      target: 'leader',
      node: 'leader',
      reason: 'wait-skipped',
      level: 'read-your-writes',
    });
    expect(await otel.counter('causeway.route.reads', counted)).toBe(before + 1);
  });

  it.each([
    ['exactly waitTimeoutMs', 500],
    ['by an unknown lag', undefined],
  ])(
    "onNoCaughtUp 'wait' waits for a replica lagging %s, not for the most advanced one lagging beyond it",
    async (_lag, lagMs) => {
      // The clock stands still, so the floor's age (0) takes nothing off replica-1's lag.
      vi.useFakeTimers({ toFake: ['performance'] });
      db.write('k0', 'v0');
      db.catchUp('replica-1'); // the most advanced replica
      const session = new SessionContext({ id: 'p6' });
      session.noteWrite(db.write('k', 'v1'));
      const replicaSet = withLags({ 'replica-1': 501, 'replica-2': lagMs, 'replica-3': 501 });
      const r = new Router({ replicaSet, onNoCaughtUp: 'wait', waitTimeoutMs: 500 });
      const routed = r.route(session);
      db.catchUp('replica-2');
      expect(await routed).toMatchObject({
        target: 'replica',
        node: 'replica-2',
        reason: 'waited',
      });
    },
  );

  it.each([
    ['read-your-writes', (session: SessionContext, at: Position) => session.noteWrite(at)],
    ['monotonic', (session: SessionContext, at: Position) => session.noteRead(at)],
  ] as const)(
    "onNoCaughtUp 'wait' (%s) waits on replicas lagging beyond waitTimeoutMs when the floor is old enough for them to arrive within it",
    async (level, raiseFloor) => {
      vi.useFakeTimers({ toFake: ['performance'] });
      const session = new SessionContext({ id: 'p7' }, level);
      raiseFloor(session, db.write('k', 'v1'));
      vi.advanceTimersByTime(600); // the replicas need about 1000 - 600 = 400 ms more
      const routed = waitingRouter(1000).route(session);
      db.catchUp();
      expect(await routed).toMatchObject({ target: 'replica', reason: 'waited', level });
    },
  );

  it("onNoCaughtUp 'wait' skips the wait while lag minus the floor's age is over waitTimeoutMs", async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const session = new SessionContext({ id: 'p8' });
    session.noteWrite(db.write('k', 'v1'));
    const r = waitingRouter(1000);
    const skipped = { target: 'leader', reason: 'wait-skipped' };
    // A fresh floor, then one 1 ms too young: settled before any timer could fire, no wait.
    expect(await settledThisTurn(r.route(session))).toMatchObject(skipped);
    vi.advanceTimersByTime(499);
    expect(await settledThisTurn(r.route(session))).toMatchObject(skipped);
    vi.advanceTimersByTime(1); // 1000 - 500: the replicas may arrive within the timeout
    const routed = r.route(session);
    expect(await settledThisTurn(routed)).toBe('pending');
    db.catchUp();
    expect(await routed).toMatchObject({ target: 'replica', reason: 'waited' });
  });

  it("onNoCaughtUp 'wait' takes a floor restored from a session state as raised just now", async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const position = db.write('k', 'v1');
    const restored = new SessionContext({ id: 'p9', writeFloor: position });
    const raisedHere = new SessionContext({ id: 'p9' });
    raisedHere.noteWrite(position);
    vi.advanceTimersByTime(2000); // both floors are 2 s old; only raisedHere can know it
    const r = waitingRouter(1000);
    expect(await settledThisTurn(r.route(restored))).toMatchObject({
      target: 'leader',
      reason: 'wait-skipped',
    });
    const routed = r.route(raisedHere);
    db.catchUp();
    expect(await routed).toMatchObject({ target: 'replica', reason: 'waited' });
  });

  it('counts reads by target and reason and adds an event to the active span', async () => {
    const r = router();
    const session = new SessionContext({ id: 'otel' });
    const before = await otel.counter('causeway.route.reads', { 'causeway.reason': 'strong' });
    otel.spans.reset();
    await otel.tracer.startActiveSpan('request', async (span) => {
      await r.route(session, 'strong');
      span.end();
    });
    expect(
      await otel.counter('causeway.route.reads', {
        'causeway.reason': 'strong',
        'causeway.target': 'leader',
      }),
    ).toBe(before + 1);
    const [request] = otel.spans.getFinishedSpans();
    const event = request?.events.find((e) => e.name === 'causeway.route');
    expect(event?.attributes).toMatchObject({
      'causeway.level': 'strong',
      'causeway.target': 'leader',
      'causeway.node': 'leader',
      'causeway.reason': 'strong',
    });
  });

  it("telemetry 'span' makes one causeway.route span per read", async () => {
    otel.spans.reset();
    await router({ telemetry: 'span' }).route(new SessionContext({ id: 'span' }), 'eventual');
    const [span] = otel.spans.getFinishedSpans();
    expect(span?.name).toBe('causeway.route');
    expect(span?.attributes).toMatchObject({
      'causeway.target': 'replica',
      'causeway.reason': 'sticky',
      'causeway.lag': 0,
    });
  });

  it('rejects bad options with CONFIG', () => {
    for (const bad of [
      { level: 'fresh' },
      { level: { maxStalenessMs: -1 } },
      { onNoCaughtUp: 'retry' },
      { waitTimeoutMs: Number.NaN },
      { telemetry: 'verbose' },
    ]) {
      expect(() => new Router({ replicaSet: db, ...(bad as object) })).toThrow(
        expect.objectContaining({ code: ErrorCode.CONFIG }),
      );
    }
  });
});
