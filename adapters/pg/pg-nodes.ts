// The nodes of a PostgreSQL replica set: how each is given (a pool, a configuration, a URL), the
// pools Causeway creates for it, and WAL locations as text. Internal except the exported types
// and LSN helpers, which replica-set.ts re-exports.
import pg from 'pg';
import { configError, invalidInput } from '../../src/adapter-kit.js';
import { isQueryablePool, type PgQueryablePool } from './sql.js';

/**
 * One node: a pool you own (`{ pool }`, or the pool itself; never ended by Causeway) or a `pg`
 * pool configuration (`{ config }`, or a connection string; Causeway creates the pool and ends
 * it on `close()`). `name` defaults to `'primary'`, `'replica-1'`, `'replica-2'`...
 */
export type PgNodeOption<P extends PgQueryablePool = PgQueryablePool> =
  | P
  | string
  | { readonly name?: string; readonly pool: P }
  | { readonly name?: string; readonly config: object | string };

/** Parses a PostgreSQL text LSN `'X/Y'` (hexadecimal halves) into a bigint `(X << 32) | Y`. */
export function parseLsn(text: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (match === null)
    throw invalidInput('Not a PostgreSQL LSN', { lsn: String(text).slice(0, 40) });
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** Formats a bigint WAL location the way PostgreSQL prints it (`'16/B374D848'`). */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** A node as given, resolved: its name, the pool its statements run on, and how to reach it. */
export interface ResolvedNode {
  readonly name: string;
  readonly pool: PgQueryablePool;
  /** The `pg` configuration of its connections, when known (a pool passed in: its `options`). */
  readonly config: pg.PoolConfig | undefined;
  /** Ends the pool if Causeway created it; a pool passed in is never ended. */
  readonly end: (() => Promise<void>) | undefined;
}

/**
 * Resolves a node option. Pools Causeway creates start from `defaults` (the node's own settings
 * win) and wait at most `connectTimeoutMs` for a connection: a dead replica must fail fast.
 */
export function resolveNode(
  option: PgNodeOption,
  defaultName: string,
  where: string,
  defaults: pg.PoolConfig,
  connectTimeoutMs: number,
): ResolvedNode {
  const refused = () =>
    configError(`PgReplicaSet: ${where} must be a pg Pool, { pool }, { config } or a URL`);
  if (option === null || (typeof option !== 'object' && typeof option !== 'string')) {
    throw refused();
  }
  let name = defaultName;
  let given: PgQueryablePool | undefined;
  let config: object | string | undefined;
  if (typeof option === 'string') {
    config = option;
  } else if (isQueryablePool(option)) {
    given = option;
  } else if ('pool' in option) {
    if (!isQueryablePool(option.pool))
      throw configError(`PgReplicaSet: ${where}.pool is not a pg Pool`);
    given = option.pool;
    name = option.name ?? name;
  } else if ('config' in option) {
    config = option.config;
    name = option.name ?? name;
  } else {
    throw refused();
  }
  if (typeof name !== 'string' || name === '') {
    throw configError(`PgReplicaSet: ${where}.name must be a non-empty string`);
  }
  if (given !== undefined) {
    return { name, pool: given, config: poolOptions(given), end: undefined };
  }
  if (config === null || (typeof config !== 'object' && typeof config !== 'string')) {
    throw configError(`PgReplicaSet: ${where}.config must be a pg pool config or a URL`);
  }
  const own = { ...copyConfig(defaults), ...copyConfig(config) };
  if (connectTimeoutMs > 0) own.connectionTimeoutMillis ??= connectTimeoutMs;
  const pool = new pg.Pool(own);
  // An idle client's error (a replica restarting) must not crash the process: the check
  // that follows marks the node down.
  pool.on('error', () => {});
  return { name, pool, config: own, end: () => pool.end() };
}

/** The `options` of a `pg.Pool` (structural pools have none). */
export function poolOptions(pool: object): pg.PoolConfig | undefined {
  const options = (pool as { options?: unknown }).options;
  return typeof options === 'object' && options !== null ? copyConfig(options) : undefined;
}

/**
 * A copy of a `pg` configuration (a URL becomes `{ connectionString }`), including the password
 * that `pg.Pool` keeps as a non-enumerable property of its `options`.
 */
export function copyConfig(config: object | string): pg.PoolConfig {
  if (typeof config === 'string') return { connectionString: config };
  const copy: pg.PoolConfig = { ...(config as pg.PoolConfig) };
  if ('password' in config) copy.password = (config as pg.PoolConfig).password;
  return copy;
}

/** Settings of a pool or its clients that Causeway's own check connections do not take. */
const NOT_FOR_CHECKS = [
  'onConnect',
  'verify',
  'max',
  'min',
  'maxUses',
  'maxLifetimeSeconds',
  'idleTimeoutMillis',
  'allowExitOnIdle',
  'types',
  'query_timeout',
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'log',
  'Promise',
] as const;

/** Connections per node for checks and position reads (see `PgReplicaSet`). */
export const CHECK_CONNECTIONS = 2;

/**
 * The pool of a node's checks and position reads: the node's connection settings, none of its
 * pool's behaviour (no connect hooks, use limits or type parsers), `CHECK_CONNECTIONS`
 * connections, and never keeping the process alive.
 */
export function createCheckPool(config: pg.PoolConfig, connectTimeoutMs: number): pg.Pool {
  const own: Record<string, unknown> = { ...copyConfig(config) };
  for (const key of NOT_FOR_CHECKS) delete own[key];
  const pool = new pg.Pool({
    ...(own as pg.PoolConfig),
    max: CHECK_CONNECTIONS,
    allowExitOnIdle: true,
    ...(connectTimeoutMs > 0 ? { connectionTimeoutMillis: connectTimeoutMs } : {}),
  });
  pool.on('error', () => {});
  return pool;
}

// Checks run as one simple-protocol round trip with a transaction-local statement timeout, so
// the setting never leaks into the pooled connection; on an error `pool.query` discards the
// connection rather than return one in a failed transaction.
export const LEADER_CHECK = `SELECT s.system_identifier::text AS stream, pg_is_in_recovery() AS in_recovery,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_insert_lsn()) END AS walfile,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END AS lsn
FROM pg_control_system() s`;

// A replica's timeline is the one it receives (pg_stat_wal_receiver.received_tli); while it is
// not streaming, the timeline of its last restartpoint. Lag in time is measured only when WAL
// is pending (received but not replayed): on an idle primary `now() - last replay` grows with
// nothing to replay.
export const REPLICA_CHECK = `SELECT s.system_identifier::text AS stream, pg_is_in_recovery() AS in_recovery,
  coalesce(r.received_tli, c.timeline_id) AS epoch,
  pg_last_wal_replay_lsn()::text AS replay, pg_last_wal_receive_lsn()::text AS receive,
  (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::float8 AS lag_ms
FROM pg_control_system() s CROSS JOIN pg_control_checkpoint() c
LEFT JOIN pg_stat_wal_receiver r ON true`;
