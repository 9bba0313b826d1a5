// `causeway/redis`: Redis adapters over `ioredis` (Lua scripts for atomic read-modify-write).
export * from './fencing.js';
export * from './session-store.js';
export * from './versioned-store.js';
