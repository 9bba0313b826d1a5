import { type Attributes, type Span, trace } from '@opentelemetry/api';
import { CausewayError, configError, ErrorCode } from '../errors.js';
import { knownOptions, numberOption, oneOfOption } from '../options.js';
import {
  Attr,
  addToCounter,
  CounterName,
  EventName,
  getTracer,
  recordError,
  SpanName,
} from '../telemetry.js';
import type { SessionContext } from './context.js';
import { type ConsistencyLevel, levelName, validateLevel } from './level.js';
import { comparePositions, hasReached } from './position.js';
import type { NodeStatus, ReplicaSet } from './replica-set.js';
import type { RouteDecision, RouteReason } from './route-decision.js';
import { beforeRoute } from './route-preparation.js';
import { type ReplicaView, rendezvousScore, replicaView } from './sticky.js';

// Kept where adapters/pg/replicated-pool.ts imports them until it imports from level.ts.
export type { ConsistencyLevel } from './level.js';
export type { RouteDecision, RouteReason } from './route-decision.js';

/** What to do when no healthy replica has reached the session's floor. */
export type NoCaughtUpPolicy = 'leader' | 'wait' | 'error';

/** How `route()` reports each decision to OpenTelemetry (counters are always kept). */
export type RouteTelemetry = 'event' | 'span' | 'none';

export interface RouterOptions {
  /** The topology to route over. Required. */
  replicaSet: ReplicaSet;
  /** Level for calls that name none and have no session level. Default `'read-your-writes'`. */
  level?: ConsistencyLevel;
  /**
   * When no healthy replica has reached the floor: `'leader'` (default: read the leader now,
   * never stale, no added latency), `'wait'` (wait up to `waitTimeoutMs` for the most advanced
   * replica, then the leader; no wait, the leader at once with reason `'wait-skipped'`, when every
   * replica would still need more than `waitTimeoutMs`: its last measured lag minus the time since
   * the session's floor was raised), or `'error'` (reject with `NO_REPLICA_CAUGHT_UP`; also used
   * when no replica is healthy or none is within a staleness bound).
   */
  onNoCaughtUp?: NoCaughtUpPolicy;
  /**
   * Longest wait for a replica with `onNoCaughtUp: 'wait'`. Default 500 ms: MaxScale waits up to
   * 10 s, far beyond a web request's budget; past half a second the leader answers sooner.
   * A replica is not waited for when its last measured lag minus the floor's age (the time since
   * this process raised the session's floor; 0 for a floor restored from a token or a session
   * store, whose age is unknown) is over this: it would most likely not arrive in time. The lag is
   * an estimate up to a health check old; an unknown lag is waited for.
   */
  waitTimeoutMs?: number;
  /**
   * `'event'` (default): a `causeway.route` event on the active span, if any is recording;
   * `'span'`: a `causeway.route` span per routed read; `'none'`: counters only. The default was
   * chosen by measurement (bench/router.bench.ts, SDK registered, one read per request span):
   * an event added about 2.5 µs per read, a span about 6.7 µs (on top of about 3 µs for the
   * decision and counter), and a span per read also multiplies the spans a service exports.
   */
  telemetry?: RouteTelemetry;
}

const ROUTER_OPTION_KEYS = [
  'replicaSet',
  'level',
  'onNoCaughtUp',
  'waitTimeoutMs',
  'telemetry',
] as const satisfies readonly (keyof RouterOptions)[];
const NO_CAUGHT_UP_POLICIES: readonly NoCaughtUpPolicy[] = ['leader', 'wait', 'error'];
const ROUTE_TELEMETRY: readonly RouteTelemetry[] = ['event', 'span', 'none'];

const REPLICA_REASONS: ReadonlySet<RouteReason> = new Set([
  'sticky',
  'caught-up',
  'waited',
  'no-session',
]);
const FLOOR_MISSES: ReadonlySet<RouteReason> = new Set([
  'write-floor-not-replicated',
  'read-floor-not-replicated',
]);

/**
 * Decides, for each read, whether it may go to a replica and which one, on the replica set's
 * cached snapshot: leader pinning for read-your-writes, rendezvous-sticky replicas plus a read
 * floor for monotonic reads. `decide()` is synchronous and allocates only its result; `route()`
 * adds the `onNoCaughtUp` policy, re-basing after a new history, and telemetry.
 */
export class Router {
  readonly replicaSet: ReplicaSet;
  readonly level: ConsistencyLevel;
  readonly onNoCaughtUp: NoCaughtUpPolicy;
  readonly waitTimeoutMs: number;
  readonly telemetry: RouteTelemetry;
  #view: ReplicaView | undefined;
  #turn = 0;

  constructor(options: RouterOptions) {
    const { replicaSet, level, onNoCaughtUp, waitTimeoutMs, telemetry } = knownOptions(
      options,
      'Router',
      ROUTER_OPTION_KEYS,
    );
    if (replicaSet === undefined) throw configError('Router: replicaSet is required');
    this.replicaSet = replicaSet;
    this.level = validateLevel(level ?? 'read-your-writes', 'level');
    this.onNoCaughtUp = oneOfOption(
      'Router',
      'onNoCaughtUp',
      onNoCaughtUp,
      NO_CAUGHT_UP_POLICIES,
      'leader',
    );
    this.waitTimeoutMs = numberOption('Router', 'waitTimeoutMs', waitTimeoutMs, 500, { min: 0 });
    this.telemetry = oneOfOption('Router', 'telemetry', telemetry, ROUTE_TELEMETRY, 'event');
  }

  /**
   * Where a read at `level` (default: the session's level, else the router's) should go, from
   * the cached topology only: no I/O, no waiting, no telemetry.
   */
  decide(session: SessionContext | undefined, level?: ConsistencyLevel): RouteDecision {
    const lvl = level ?? session?.level ?? this.level;
    const view = this.#currentView();
    const leader = view.snapshot.leader;
    if (lvl === 'strong') return toLeader(leader, 'strong', lvl);
    const healthy = view.healthy;
    if (healthy.length === 0) return toLeader(leader, 'no-healthy-replica', lvl);
    if (session === undefined) {
      const replica = healthy[this.#turn % healthy.length]!;
      this.#turn = (this.#turn + 1) >>> 0;
      return toReplica(replica, 'no-session', lvl);
    }
    if (session.floorsUncertain && (lvl === 'read-your-writes' || lvl === 'monotonic')) {
      return toLeader(leader, 'floors-uncertain', lvl);
    }
    // The session's floors on this replica set's stream; those on other clusters do not apply.
    const leaderAt = leader.position;
    const stream = leaderAt?.stream;
    const floor = session.floorFor(lvl, stream);
    if (floor !== undefined && leaderAt !== undefined) {
      if (comparePositions(floor, leaderAt) === 'incomparable') {
        return toLeader(leader, 'new-history', lvl);
      }
    }
    const bound = typeof lvl === 'object' ? lvl.maxStalenessMs : undefined;

    // One pass: the top-scored replica is the sticky one; the top-scored eligible one is chosen.
    // A replica behind the floor is also checked against the write floor alone, to tell which
    // floor kept the read on the leader without a second pass.
    const writeFloor = lvl === 'read-your-writes' ? session.writeFloorOn(stream) : undefined;
    const sessionHash = session.idHash;
    let sticky = -1;
    let stickyScore = -1;
    let chosen = -1;
    let chosenScore = -1;
    let writeFloorReplicated = false;
    for (let i = 0; i < healthy.length; i++) {
      const score = rendezvousScore(sessionHash, view.hashes[i]!);
      if (score > stickyScore) {
        stickyScore = score;
        sticky = i;
      }
      if (score <= chosenScore) continue;
      const replica = healthy[i]!;
      if (floor !== undefined && !hasReached(replica.position, floor)) {
        if (writeFloor !== undefined && hasReached(replica.position, writeFloor)) {
          writeFloorReplicated = true;
        }
        continue;
      }
      if (bound !== undefined && (replica.lagMs === undefined || replica.lagMs > bound)) continue;
      chosenScore = score;
      chosen = i;
    }
    if (chosen >= 0) {
      return toReplica(healthy[chosen]!, chosen === sticky ? 'sticky' : 'caught-up', lvl);
    }
    if (bound !== undefined) return toLeader(leader, 'stale-beyond-bound', lvl);
    const missed =
      writeFloor !== undefined && !writeFloorReplicated
        ? 'write-floor-not-replicated'
        : 'read-floor-not-replicated';
    return toLeader(leader, missed, lvl);
  }

  /**
   * `decide()` plus the `onNoCaughtUp` policy, re-basing the session after a new history, and
   * telemetry (the `causeway.route.reads` counter, and an event or span per `telemetry`).
   * Rejects with `NO_REPLICA_CAUGHT_UP` under `onNoCaughtUp: 'error'`.
   */
  async route(
    session: SessionContext | undefined,
    level?: ConsistencyLevel,
  ): Promise<RouteDecision> {
    if (this.telemetry !== 'span') {
      const decision = await this.#resolve(session, level);
      this.#report(decision, session, trace.getActiveSpan());
      return decision;
    }
    const span = getTracer().startSpan(SpanName.ROUTE);
    try {
      const decision = await this.#resolve(session, level);
      this.#report(decision, session, span);
      return decision;
    } catch (error) {
      recordError(span, error);
      throw error;
    } finally {
      span.end();
    }
  }

  async #resolve(
    session: SessionContext | undefined,
    level?: ConsistencyLevel,
  ): Promise<RouteDecision> {
    const preparing = session === undefined ? undefined : beforeRoute(session);
    if (preparing !== undefined) await preparing;
    const decision = this.decide(session, level);
    if (decision.reason === 'new-history') {
      // Only this stream's floors (decide() saw the leader's position on this same snapshot):
      // the session's floors on other clusters still hold.
      const stream = this.#currentView().snapshot.leader.position?.stream;
      if (stream !== undefined) session?.rebase(stream);
      return decision;
    }
    if (decision.target === 'replica' || this.onNoCaughtUp === 'leader') return decision;
    if (
      this.onNoCaughtUp === 'wait' &&
      session !== undefined &&
      FLOOR_MISSES.has(decision.reason)
    ) {
      return this.#waitForReplica(session, decision);
    }
    if (
      this.onNoCaughtUp === 'error' &&
      decision.reason !== 'strong' &&
      decision.reason !== 'floors-uncertain'
    ) {
      throw new CausewayError(
        ErrorCode.NO_REPLICA_CAUGHT_UP,
        `No replica can serve this read (${decision.reason})`,
        {
          details: { reason: decision.reason, level: levelName(decision.level) },
        },
      );
    }
    return decision;
  }

  /**
   * Waits for the most advanced healthy replica (ties: the session's rendezvous order) to reach
   * the floor, then falls back to the leader. One waiter per read, whatever the replica count.
   * A replica applies the floor about its lag after the floor's position existed on the leader,
   * i.e. lag minus the floor's age from now. Replicas for which that exceeds `waitTimeoutMs` are
   * passed over: their wait would most likely end in the timeout and then the leader anyway. If
   * that leaves none, the read goes to the leader at once (`'wait-skipped'`).
   */
  async #waitForReplica(session: SessionContext, missed: RouteDecision): Promise<RouteDecision> {
    const view = this.#currentView();
    const stream = view.snapshot.leader.position?.stream;
    const floor = session.floorFor(missed.level, stream)!;
    // Waiting is worth it when the replica still needs at most waitTimeoutMs.
    const lagAllowed = this.waitTimeoutMs + session.floorAgeMs(missed.level, stream);
    let best: NodeStatus | undefined;
    let bestScore = -1;
    let tooFarBehind = false;
    for (let i = 0; i < view.healthy.length; i++) {
      const replica = view.healthy[i]!;
      const at = replica.position;
      if (at === undefined || comparePositions(at, floor) === 'incomparable') continue;
      // Filtered before ranking: when the most advanced replica lags too far but another does
      // not (lags come from checks at different moments), the wait goes to the other rather
      // than nowhere. Usually the most advanced replica also lags least.
      if (replica.lagMs !== undefined && replica.lagMs > lagAllowed) {
        tooFarBehind = true;
        continue;
      }
      const score = rendezvousScore(session.idHash, view.hashes[i]!);
      const bestAt = best?.position?.lsn ?? -1n;
      if (at.lsn > bestAt || (at.lsn === bestAt && score > bestScore)) {
        best = replica;
        bestScore = score;
      }
    }
    if (best === undefined) return tooFarBehind ? { ...missed, reason: 'wait-skipped' } : missed;
    const started = performance.now();
    const reached = await this.replicaSet.waitFor(best.name, floor, this.waitTimeoutMs);
    const waitedMs = Math.round(performance.now() - started);
    if (reached) return { ...toReplica(best, 'waited', missed.level), waitedMs };
    return { ...missed, reason: 'wait-timed-out', waitedMs };
  }

  #report(
    decision: RouteDecision,
    session: SessionContext | undefined,
    span: Span | undefined,
  ): void {
    addToCounter(CounterName.ROUTED_READS, reasonAttributes(decision.reason));
    session?.recordRoute(decision);
    if (this.telemetry === 'none' || span === undefined || !span.isRecording()) return;
    const attributes = decisionAttributes(decision);
    if (this.telemetry === 'span') span.setAttributes(attributes);
    else if (this.telemetry === 'event') span.addEvent(EventName.ROUTE, attributes);
  }

  /** The derived view of the replica set's snapshot, re-derived only when the snapshot changes. */
  #currentView(): ReplicaView {
    const snapshot = this.replicaSet.snapshot();
    if (this.#view?.snapshot !== snapshot) this.#view = replicaView(snapshot);
    return this.#view;
  }
}

// Each reason implies its target, so counter attributes are built once per reason.
const reasonAttributeCache = new Map<RouteReason, Attributes>();
function reasonAttributes(reason: RouteReason): Attributes {
  let attributes = reasonAttributeCache.get(reason);
  if (attributes === undefined) {
    attributes = {
      [Attr.TARGET]: REPLICA_REASONS.has(reason) ? 'replica' : 'leader',
      [Attr.REASON]: reason,
    };
    reasonAttributeCache.set(reason, attributes);
  }
  return attributes;
}

/** The span attributes of one decision. */
export function decisionAttributes(decision: RouteDecision): Attributes {
  const attributes: Attributes = {
    [Attr.LEVEL]: levelName(decision.level),
    [Attr.TARGET]: decision.target,
    [Attr.NODE]: decision.node,
    [Attr.REASON]: decision.reason,
  };
  if (decision.waitedMs !== undefined) attributes[Attr.WAIT_MS] = decision.waitedMs;
  if (decision.lagMs !== undefined) attributes[Attr.LAG] = decision.lagMs;
  return attributes;
}

function toLeader(leader: NodeStatus, reason: RouteReason, level: ConsistencyLevel): RouteDecision {
  return { target: 'leader', node: leader.name, reason, level };
}

function toReplica(
  replica: NodeStatus,
  reason: RouteReason,
  level: ConsistencyLevel,
): RouteDecision {
  return replica.lagMs === undefined
    ? { target: 'replica', node: replica.name, reason, level }
    : { target: 'replica', node: replica.name, reason, level, lagMs: replica.lagMs };
}
