// `causeway/memory`: in-process implementations of every adapter interface.
export { MemoryDecisionLog, type MemoryDecisionLogOptions } from './decision-log.js';
export { MemoryFenceGuard, MemoryLeaseManager, type MemoryLeaseManagerOptions } from './fencing.js';
export {
  type MemoryCommit,
  type MemoryFailurePoint,
  MemoryParticipant,
  type MemoryParticipantOptions,
  type MemoryStatement,
} from './participant.js';
export {
  MAX_MEMORY_REPLICAS,
  type MemoryRead,
  type MemoryReplicaOptions,
  MemoryReplicaSet,
  type MemoryReplicaSetOptions,
} from './replica-set.js';
export { MemorySessionStore, type MemorySessionStoreOptions } from './session-store.js';
export { MemoryVersionedStore, type MemoryVersionedStoreOptions } from './versioned-store.js';
