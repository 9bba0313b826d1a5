// `causeway/express`: the session middleware and the fencing-token guard for Express 4 and 5.

export * from './fencing/express.js';
export * from './session/express.js';
