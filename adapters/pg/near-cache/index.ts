// The near cache: selected tables in this process's memory, fed by logical replication.

export { NearCache } from './near-cache.js';
export type { NearCacheOptions, NearCacheTableOption } from './options.js';
export type { NearCacheStaleReason, NearCacheState, NearCacheStatus } from './status.js';
export type { NearCacheAnswer, NearCacheKey, NearCacheReason, NearCacheTable } from './table.js';
export type { CachedRow } from './table-store.js';
