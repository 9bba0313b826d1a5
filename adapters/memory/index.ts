// `causeway/memory`: in-process implementations of every adapter interface.
export * from './decision-log.js';
export * from './fencing.js';
export * from './participant.js';
export * from './replica-set.js';
export * from './session-store.js';
export * from './versioned-store.js';
