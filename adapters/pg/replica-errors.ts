// Triage of an error seen on a replica: whether the read is retried on the leader, and whether
// the error says anything about the replica's health. Only a lost connection does; an error the
// driver raised on our side (a parameter it could not serialise, a read timeout) or a statement
// the server refused fails that one query and leaves the replica alone.

/** SQLSTATEs of a connection the server ended or could not give (`57P01`-`57P03`, `08xxx`). */
const CONNECTION_LOST_STATES: ReadonlySet<string> = new Set([
  '57P01', // admin_shutdown: terminated by an administrator (or a fast shutdown)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: starting up, shutting down, or in recovery without hot standby
  '08000', // connection_exception
  '08001', // sqlclient_unable_to_establish_sqlconnection
  '08003', // connection_does_not_exist
  '08004', // sqlserver_rejected_establishment_of_sqlconnection
  '08006', // connection_failure
]);

/** Node.js socket error codes of a connection that could not be made or was cut. */
const SOCKET_ERRORS: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** Messages `pg` and `pg-pool` give a lost or unobtainable connection (they carry no code). */
const CONNECTION_LOST_MESSAGES =
  /^(Connection terminated|Client has encountered a connection error|terminating connection)/;

/** The SQLSTATE of a server error, if `error` is one (five digits or capitals). */
export function sqlStateOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * True when `error` means the connection to the node was lost or could not be made: a socket
 * error, a server-side termination (`57P01`-`57P03`), a `08xxx` connection failure other than a
 * protocol violation (`08P01` is a malformed message from our side, e.g. a wrong parameter count),
 * or `pg`'s "Connection terminated" family. Nothing else counts against a node's health.
 */
export function isConnectionLoss(error: unknown): boolean {
  const state = sqlStateOf(error);
  if (state !== undefined) return CONNECTION_LOST_STATES.has(state);
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && SOCKET_ERRORS.has(code)) return true;
  const message = error instanceof Error ? error.message : '';
  return CONNECTION_LOST_MESSAGES.test(message);
}

/**
 * What to do after a routed read failed on a replica:
 * - `'connection'`: the replica is down or going away; retry on the leader and report it.
 * - `'replica-only'`: the replica could not answer what the leader can (a hot-standby conflict,
 *   a write it refused as read-only, a full replica); retry on the leader, health untouched.
 * - `'fail'`: the leader would fail the same way (a syntax error, a missing table, a parameter
 *   the driver could not serialise, a read timeout): the caller gets the error.
 */
export function triageReplicaError(error: unknown): 'connection' | 'replica-only' | 'fail' {
  if (isConnectionLoss(error)) return 'connection';
  const state = sqlStateOf(error);
  if (state === '25006' || state === '53300') return 'replica-only';
  if (state === '40001' || state === '40P01') {
    const message = error instanceof Error ? error.message : '';
    if (/conflict with recovery/i.test(message)) return 'replica-only';
  }
  return 'fail';
}

/**
 * True when a failed checkout of a connection from a replica's pool was only a wait for a free
 * connection that timed out (`connectionTimeoutMillis` of a busy pool): the node is fine.
 */
export function isCheckoutWait(error: unknown): boolean {
  return error instanceof Error && error.message === 'timeout exceeded when trying to connect';
}
