export {
  type ConflictHandler,
  createConflictHandler,
  type HandlerOptions,
  type HandlerResult,
} from './handler.js';
export { type JsonValue, MAX_ACTOR_BYTES, MAX_KEY_BYTES } from './input.js';
export {
  DEFAULT_TOMBSTONE_GRACE_MS,
  type LwwOptions,
  LwwRegister,
  type LwwState,
  type LwwWrite,
} from './lww.js';
export {
  DEFAULT_MAX_SIBLINGS,
  type Dot,
  Siblings,
  type SiblingsEntryJson,
  type SiblingsOptions,
  type SiblingsState,
} from './siblings.js';
export type { VersionedValue, WriteOptions } from './types.js';
export {
  AtomicVersionedStore,
  type VersionedStore,
  type VersionedStoreOptions,
} from './versioned-store.js';
