export {
  HlcTimestamp,
  HybridLogicalClock,
  type HybridLogicalClockOptions,
} from './hlc.js';
export {
  compareLamportTimestamps,
  LAMPORT_MAX_COUNTER,
  LamportClock,
  type LamportTimestamp,
} from './lamport.js';
export { VersionVector, type VersionVectorOrder } from './version-vector.js';
