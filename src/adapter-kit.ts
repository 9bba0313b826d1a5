/**
 * The core as the adapters see it: everything an adapter in adapters/ may use from src/, and
 * nothing else (test/unit/structure/adapter-boundary.test.ts enforces it). An adapter that needs
 * more adds it here, so what the adapters depend on stays one list. Not a package entry point.
 */

export { AtomicVersionedStore, type VersionedStoreOptions } from './conflict/versioned-store.js';
export { CausewayError, configError, ErrorCode, invalidInput, isCausewayError } from './errors.js';
export {
  type AcquireOptions,
  assertFencingToken,
  assertResource,
  type FenceGuard,
  type Lease,
  type LeaseManager,
  leaseNotHeld,
  resolveAcquireOptions,
  staleFencingToken,
  traceFenceCheck,
  traceLeaseAcquire,
} from './fencing/token.js';
export {
  booleanOption,
  functionOption,
  knownOptions,
  numberOption,
  oneOfOption,
  optionsObject,
  stringOption,
} from './options.js';
export {
  assertSessionState,
  bindToSession,
  currentSession,
  mergeSessionStates,
  type SessionContext,
  type SessionState,
} from './session/context.js';
export { type ConsistencyLevel, levelName, validateLevel } from './session/level.js';
export { comparePositions, hasReached, type Position } from './session/position.js';
export type {
  NodeStatus,
  ReplicaSet,
  TopologySnapshot,
} from './session/replica-set.js';
export type { RouteReason } from './session/route-decision.js';
export {
  type NoCaughtUpPolicy,
  Router,
  type RouterOptions,
  type RouteTelemetry,
} from './session/router.js';
export { assertSessionKey, type SessionStore } from './session/session-store.js';
export {
  floorsOnly,
  MAX_SESSION_STREAMS,
  type StreamFloors,
  streamFloorsOf,
} from './session/state.js';
export {
  Attr,
  addToCounter,
  NearCacheAttr,
  NearCacheCounterName,
  NearCacheEventName,
  NearCacheSpanName,
  withSpan,
} from './telemetry.js';
export type {
  Decision,
  DecisionEntry,
  DecisionLog,
  DecisionRecord,
} from './txn/decision-log.js';
export { isSafeGidComponent, MAX_GID_BYTES } from './txn/gid.js';
export type {
  BranchStatus,
  Participant,
  ParticipantBranch,
  ParticipantQueryResult,
  PreparedBranch,
  PreparedInfo,
} from './txn/participant.js';
export { sleep, withTimeout } from './util/timers.js';
