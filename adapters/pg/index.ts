// `causeway/pg`: PostgreSQL adapters over the `pg` driver.
export {
  classifySql,
  PRIMARY_ONLY_FUNCTIONS,
  type SqlClassification,
  SqlClassifier,
  type SqlClassifierOptions,
} from './classify/index.js';
export {
  DEFAULT_PG_DECISION_TABLE,
  PgDecisionLog,
  type PgDecisionLogOptions,
  pgDecisionLogTableSql,
} from './decision-log.js';
export {
  DEFAULT_PG_FENCE_TABLE,
  DEFAULT_PG_LEASE_TABLE,
  type PgFenceCheckOptions,
  PgFenceGuard,
  type PgFenceGuardOptions,
  PgLeaseManager,
  type PgLeaseManagerOptions,
  pgFenceTableSql,
  pgLeaseTableSql,
} from './fencing.js';
export {
  type CachedRow,
  NearCache,
  type NearCacheAnswer,
  type NearCacheKey,
  type NearCacheOptions,
  type NearCacheReason,
  type NearCacheStaleReason,
  type NearCacheState,
  type NearCacheStatus,
  type NearCacheTable,
  type NearCacheTableOption,
} from './near-cache/index.js';
export { PgParticipant, type PgParticipantOptions } from './participant.js';
export { type PooledClientPool, pooledClientModule } from './pooled-client-module.js';
export {
  formatLsn,
  type PgNodeOption,
  PgReplicaSet,
  type PgReplicaSetOptions,
  type PrimaryCandidateOption,
  parseLsn,
  type ReplicaSource,
} from './replica-set.js';
export {
  createReplicatedPool,
  type PgPoolClient,
  type PgQueryConfig,
  type PgQueryResult,
  type PgSubmittable,
  type PoolClassifier,
  type PoolRouteEvent,
  type PoolRouteReason,
  ReplicatedPool,
  type ReplicatedPoolOptions,
  type RoutingReplicaSet,
} from './replicated-pool.js';
export type { RoutedCheckout } from './routed-checkout.js';
export type { PgQueryable, PgQueryableClient, PgQueryablePool, PgRowsResult } from './sql.js';
export {
  DEFAULT_VERSIONED_STORE_TABLE,
  PgVersionedStore,
  type PgVersionedStoreOptions,
  versionedStoreSql,
} from './versioned-store.js';
