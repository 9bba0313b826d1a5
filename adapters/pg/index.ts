// `causeway/pg`: PostgreSQL adapters over the `pg` driver.
export * from './decision-log.js';
export * from './fencing.js';
export type {
  CachedRow,
  NearCacheAnswer,
  NearCacheKey,
  NearCacheOptions,
  NearCacheReason,
  NearCacheStaleReason,
  NearCacheState,
  NearCacheStatus,
  NearCacheTable,
  NearCacheTableOption,
} from './near-cache/index.js';
export { NearCache } from './near-cache/index.js';
export * from './participant.js';
export * from './replica-set.js';
export * from './replicated-pool.js';
export type { PgQueryable, PgQueryableClient, PgQueryablePool, PgRowsResult } from './sql.js';
export * from './versioned-store.js';
