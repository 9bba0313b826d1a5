// The core's public API. Re-exports only: nothing here loads a database driver.
export * from './clocks/index.js';
export * from './conflict/index.js';
export { CausewayError, type CausewayErrorOptions, ErrorCode, isCausewayError } from './errors.js';
export * from './fencing/index.js';
export {
  type CarriedPosition,
  forwardingFetch,
  SessionPropagator,
  type SessionSigner,
  sessionFromContext,
  withFloor,
} from './propagation/index.js';
export * from './session/index.js';
export * from './txn/index.js';
