// TODO: remove once src/txn/coordinator.ts and src/txn/recovery.ts import the lease contracts
// from '../fencing/token.js' (fencing moved to src/fencing/).
export type { AcquireOptions, FenceGuard, Lease, LeaseManager } from '../fencing/token.js';
