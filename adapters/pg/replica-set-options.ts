import type pg from 'pg';
import { configError } from '../../src/adapter-kit.js';
import type { PgNodeOption } from './pg-nodes.js';
import type { PgQueryablePool } from './sql.js';

export interface PgReplicaSetOptions<P extends PgQueryablePool = PgQueryablePool> {
  /** The primary (the leader): a pool, `{ name?, pool }`, `{ name?, config }` or a URL. */
  primary: PgNodeOption<P>;
  /** Its streaming replicas, same forms. May be empty (every read then goes to the leader). */
  replicas: readonly PgNodeOption<P>[];
  /**
   * Milliseconds between background checks of every node. Default 1000. GitLab checks every
   * 60 s because its routing reads positions on demand; session routing decides on the cached
   * positions, so they must be fresh: one cheap query per node per second keeps a replica usable
   * about a second after it catches up. 0 disables background polling (call `refresh()`).
   */
  pollIntervalMs?: number;
  /** Random spread of each interval, as a fraction (0.2 = ±20 %), so that many processes do not
   * check in lockstep. Default 0.2. */
  pollJitter?: number;
  /**
   * A replica lagging more than this many milliseconds is unhealthy, unless its byte lag is at
   * most `maxLagBytes`. Default 60000 (GitLab's figure).
   */
  maxLagMs?: number;
  /** Byte lag under which a replica stays healthy whatever its time lag. Default 8 MiB (GitLab). */
  maxLagBytes?: number;
  /**
   * `statement_timeout` of every check query, in milliseconds. Default 100 (GitLab's): a check
   * that takes longer marks the node unhealthy rather than hold a connection.
   */
  checkTimeoutMs?: number;
  /**
   * Longest wait for a connection (plus the check) before the node counts as down; also the
   * `connectionTimeoutMillis` of the replica pools the set creates, unless their config sets
   * one. Default 2000.
   */
  connectTimeoutMs?: number;
  /** Interval of `waitFor`'s polls of a replica's replay position. Default 10 ms. */
  waitPollIntervalMs?: number;
  /**
   * Connection losses reported by callers (`reportError`) within `failureWindowMs` that take a
   * replica out of routing until its next successful check. Default 3: one lost connection (a
   * restarted backend, a terminated session) does not eject a replica for everyone. Errors that
   * are not a lost connection (a bad parameter, a syntax error, a timeout) never count.
   */
  failureThreshold?: number;
  /** The window of `failureThreshold`, in milliseconds. Default 10000. */
  failureWindowMs?: number;
  /**
   * `pg` pool settings every pool the set creates starts from; a node's own `config` wins.
   * Default none. The routed pool passes its primary's settings (timeouts, `max`,
   * `allowExitOnIdle`, `onConnect`...) so that its replica connections behave the same.
   */
  poolDefaults?: pg.PoolConfig;
}

/** Every key of `PgReplicaSetOptions`: any other is refused. */
export const PG_REPLICA_SET_OPTION_KEYS: readonly (keyof PgReplicaSetOptions)[] = [
  'primary',
  'replicas',
  'pollIntervalMs',
  'pollJitter',
  'maxLagMs',
  'maxLagBytes',
  'checkTimeoutMs',
  'connectTimeoutMs',
  'waitPollIntervalMs',
  'failureThreshold',
  'failureWindowMs',
  'poolDefaults',
];

/** The options of a `PgReplicaSet`, checked, with their defaults. */
export function replicaSetSettings(options: PgReplicaSetOptions) {
  const pollJitter = nonNegative(options.pollJitter ?? 0.2, 'pollJitter');
  if (pollJitter >= 1) throw configError('PgReplicaSet: pollJitter must be below 1');
  const poolDefaults = options.poolDefaults ?? {};
  if (typeof poolDefaults !== 'object' || poolDefaults === null) {
    throw configError('PgReplicaSet: poolDefaults must be a pg pool config');
  }
  return {
    pollIntervalMs: nonNegative(options.pollIntervalMs ?? 1000, 'pollIntervalMs'),
    pollJitter,
    maxLagMs: nonNegative(options.maxLagMs ?? 60_000, 'maxLagMs'),
    maxLagBytes: BigInt(
      Math.floor(nonNegative(options.maxLagBytes ?? 8 * 1024 * 1024, 'maxLagBytes')),
    ),
    // An integer: it is written into the check's SQL text.
    checkTimeoutMs: Math.max(
      1,
      Math.round(nonNegative(options.checkTimeoutMs ?? 100, 'checkTimeoutMs')),
    ),
    connectTimeoutMs: nonNegative(options.connectTimeoutMs ?? 2000, 'connectTimeoutMs'),
    waitPollIntervalMs: Math.max(
      1,
      nonNegative(options.waitPollIntervalMs ?? 10, 'waitPollIntervalMs'),
    ),
    failureThreshold: Math.max(
      1,
      Math.floor(nonNegative(options.failureThreshold ?? 3, 'failureThreshold')),
    ),
    failureWindowMs: nonNegative(options.failureWindowMs ?? 10_000, 'failureWindowMs'),
    poolDefaults,
  };
}

function nonNegative(value: number, option: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw configError(`PgReplicaSet: ${option} must be a finite number >= 0`, { [option]: value });
  }
  return value;
}
