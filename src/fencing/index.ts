// Fencing tokens and leases: the contracts the adapters implement, and token parsing. The Express
// guard is exported from `causeway/express` only.
export type { AcquireOptions, FenceGuard, Lease, LeaseManager } from './token.js';
export { MAX_FENCING_TOKEN, MAX_RESOURCE_LENGTH, parseFencingToken } from './token.js';
