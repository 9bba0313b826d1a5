// `causeway/redis`: Redis adapters over `ioredis` (Lua scripts for atomic read-modify-write).
export {
  DEFAULT_REDIS_FENCING_PREFIX,
  RedisFenceGuard,
  type RedisFenceGuardOptions,
  type RedisFencingClient,
  RedisLeaseManager,
  type RedisLeaseManagerOptions,
  type RedisReplicaWait,
  type RedisSetIfCurrentOptions,
  type RedisWaitPipeline,
} from './fencing.js';
export {
  type RedisSessionClient,
  RedisSessionStore,
  type RedisSessionStoreOptions,
} from './session-store.js';
export {
  RedisVersionedStore,
  type RedisVersionedStoreClient,
  type RedisVersionedStoreOptions,
} from './versioned-store.js';
