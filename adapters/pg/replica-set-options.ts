import pg from 'pg';
import { configError } from '../../src/adapter-kit.js';
import { copyConfig, type PgNodeOption } from './pg-nodes.js';
import type { ReplicaSource } from './replica-roster.js';
import type { PgQueryablePool } from './sql.js';

/** One host that may be the primary: a URL or `{ config }` (see `PgReplicaSetOptions.primary`). */
export type PrimaryCandidateOption = string | { readonly config: object | string };

export interface PgReplicaSetOptions<P extends PgQueryablePool = PgQueryablePool> {
  /**
   * The primary (the leader): a pool, `{ name?, pool }`, `{ name?, config }` or a URL; or a list
   * of candidates (URLs or `{ config }`, the same settings but for `host` and `port`), as libpq's
   * `target_session_attrs=read-write`: the primary is the candidate not in recovery, on the
   * latest timeline. Every check (`pollIntervalMs`) asks each candidate; a promotion (a candidate
   * not in recovery on a newer timeline, a replica found promoted, or a statement failing as
   * read-only, SQLSTATE 25006, on the primary) moves writes to the new primary and ends every
   * connection to the old one, which is not used again on its old timeline. While no candidate
   * is the primary, statements fail at once with `NO_PRIMARY` and are never sent (nor retried).
   * A read-only refusal on a primary that is fine (a write in a `READ ONLY` transaction) costs
   * one check: until it answers, statements to the primary fail with `NO_PRIMARY` too (no
   * statement is held back and reordered). The leader is then named `'primary'`.
   */
  primary: PgNodeOption<P> | readonly PrimaryCandidateOption[];
  /**
   * Its streaming replicas, same forms. May be empty (every read then goes to the leader). Or a
   * function giving them (sync or async), called on every check (DNS, a service registry, a
   * cloud API): a replica is known by its `name`, else by its `host:port`; new ones join routing
   * after their first check, and ones no longer listed leave it at once, their reads in flight
   * finish and their pools (if the set created them) then end. A call that fails or takes longer
   * than `connectTimeoutMs` keeps the list as it was.
   */
  replicas: readonly PgNodeOption<P>[] | ReplicaSource<P>;
  /**
   * With a list of primary candidates: how often they are checked while none is the primary (a
   * failover under way), in milliseconds. Default 100. 0: only at the regular checks.
   */
  failoverPollIntervalMs?: number;
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
  'failoverPollIntervalMs',
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
  const replicas: unknown = options.replicas;
  if (!Array.isArray(replicas) && typeof replicas !== 'function') {
    throw configError('PgReplicaSet: replicas must be an array (it may be empty) or a function');
  }
  return {
    primaryCandidates: primaryCandidates(options.primary, poolDefaults),
    failoverPollIntervalMs: nonNegative(
      options.failoverPollIntervalMs ?? 100,
      'failoverPollIntervalMs',
    ),
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

/**
 * The `pg` settings of each primary candidate when `primary` is a list (undefined otherwise):
 * `poolDefaults` under each; every candidate must reach the same user and database, as libpq's
 * list of hosts does (the routed pool's connections move between them by host and port only).
 */
export function primaryCandidates(
  primary: unknown,
  defaults: pg.PoolConfig,
): pg.PoolConfig[] | undefined {
  if (!Array.isArray(primary)) return undefined;
  const refused = (why: string) =>
    configError(`PgReplicaSet: primary, given as a list of candidates, ${why}`);
  if (primary.length === 0) throw refused('must not be empty');
  const configs = Array.from(primary as unknown[], (candidate) => {
    const given =
      typeof candidate === 'object' && candidate !== null && 'config' in candidate
        ? (candidate as { config: unknown }).config
        : candidate;
    if (typeof given !== 'string' && (typeof given !== 'object' || given === null)) {
      throw refused('must hold URLs or { config } objects');
    }
    return { ...copyConfig(defaults), ...copyConfig(given) };
  });
  const [first, ...others] = configs.map((config) => new pg.Client(config));
  const seen = new Set([`${first?.host}:${first?.port}`]);
  for (const other of others) {
    if (other.user !== first?.user || other.database !== first?.database) {
      throw refused('must reach one user and database (only host and port may differ)');
    }
    const where = `${other.host}:${other.port}`;
    if (seen.has(where)) throw refused(`names ${where} twice`);
    seen.add(where);
  }
  return configs;
}
