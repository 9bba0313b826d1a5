// `causeway/express`: the session middleware and the fencing-token guard for Express 4 and 5.
export * from './session/express.js';
export * from './txn/fence-express.js';
