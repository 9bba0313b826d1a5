// `causeway/express`: the session middleware and the fencing-token guard for Express 4 and 5.
export {
  DEFAULT_FENCING_TOKEN_HEADER,
  type FencedRequest,
  type FenceGuardOptions,
  type FenceGuardResponse,
  type FencingContext,
  fenceGuard,
} from './fencing/express.js';
export {
  type ConsistencyApi,
  type ConsistencyHandler,
  type ConsistencyMiddleware,
  type ConsistencyRequest,
  consistency,
  consistencyOf,
  type RequestConsistency,
  type RunResult,
} from './session/express.js';
export { ROUTE_HEADER, SESSION_HEADER } from './session/express-http.js';
export type { ConsistencyOptions } from './session/express-options.js';
