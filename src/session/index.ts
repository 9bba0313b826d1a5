// Session guarantees: positions, the topology interface, session context, router and tokens.
// The Express middleware is exported from `causeway/express` only.
export {
  currentSession,
  MAX_SESSION_STREAMS,
  mergeSessionStates,
  newSessionId,
  SessionContext,
  type SessionState,
  type StreamFloors,
  type WithSessionOptions,
  withSession,
} from './context.js';
export { type ConsistencyLevel, DEFAULT_LEVEL, levelName } from './level.js';
export { comparePositions, hasReached, type Position, type PositionOrder } from './position.js';
export type { NodeStatus, ReplicaSet, TopologySnapshot } from './replica-set.js';
export type { RouteDecision, RouteReason } from './route-decision.js';
export {
  type NoCaughtUpPolicy,
  Router,
  type RouterOptions,
  type RouteTelemetry,
} from './router.js';
export type { SessionStore } from './session-store.js';
export {
  type InvalidTokenReason,
  JOB_SESSION_FIELD,
  type JobSessionCarrier,
  MAX_TOKEN_LENGTH,
  MIN_SECRET_LENGTH,
  MULTI_STREAM_TOKEN_VERSION,
  SessionTokens,
  type SessionTokensOptions,
  sessionForJob,
  TOKEN_VERSION,
  type VerifiedToken,
  type VerifyOptions,
  withJobSession,
} from './token.js';
