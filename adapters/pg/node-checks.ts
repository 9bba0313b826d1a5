// One node of a PostgreSQL replica set as the set keeps it, and what a check's answer makes of
// its status. Internal to replica-set.ts and replica-roster.ts.
import type { NodeStatus, Position } from '../../src/adapter-kit.js';
import { parseLsn, type ResolvedNode, replicaHealth } from './pg-nodes.js';
import { PositionProbe } from './position-probe.js';
import type { PgQueryablePool, PgRowsResult } from './sql.js';

export interface NodeState extends ResolvedNode {
  readonly role: 'leader' | 'replica';
  status: NodeStatus;
  /** Stream and timeline last seen on this node; positions read later reuse them. */
  history: { stream: string; epoch: number } | undefined;
  checking: Promise<void> | undefined;
  /** When (performance.now()) the query that gave `status.position` started. */
  positionAsOf: number;
  /** Checks and position reads: their own connections, never the node's pool's. */
  readonly checks: PgQueryablePool;
  readonly endChecks: (() => Promise<void>) | undefined;
  readonly probe: PositionProbe<Position | undefined>;
  /** performance.now() of the connection losses reported since the last successful check. */
  failures: number[];
}

/**
 * Runs check `sql` (`LEADER_CHECK` or `REPLICA_CHECK`) on `pool` as one simple-protocol round
 * trip with a transaction-local statement timeout, and resolves with its row.
 */
export async function checkRow(
  pool: PgQueryablePool,
  sql: string,
  checkTimeoutMs: number,
  timed: <T>(query: Promise<T>) => Promise<T>,
): Promise<Record<string, unknown>> {
  const text = `BEGIN; SET LOCAL statement_timeout = ${checkTimeoutMs}; ${sql}; COMMIT`;
  // Four statements, so `pg` answers with an array of four results.
  const results: PgRowsResult | PgRowsResult[] = await timed(pool.query(text));
  const row = Array.isArray(results) ? results[2]?.rows[0] : undefined;
  if (row === undefined) throw new Error('check returned no row');
  return row;
}

/**
 * The leader's history and status from its check row, or undefined when it is not a usable
 * leader: in recovery (a standby: a failover moved the leader) or an answer that makes no sense.
 */
export function leaderFromRow(
  name: string,
  row: Record<string, unknown>,
): { history: { stream: string; epoch: number }; status: NodeStatus } | undefined {
  const { stream, walfile, lsn } = row;
  if (
    row['in_recovery'] === true ||
    typeof stream !== 'string' ||
    typeof walfile !== 'string' ||
    typeof lsn !== 'string'
  ) {
    return undefined;
  }
  // A WAL file name starts with the timeline in 8 hex digits: exact, unlike the control
  // file's checkpoint timeline, which changes only at the first checkpoint after a promotion.
  const epoch = Number.parseInt(walfile.slice(0, 8), 16);
  return {
    history: { stream, epoch },
    status: {
      name,
      healthy: true,
      position: { stream, epoch, lsn: parseLsn(lsn) },
      lagMs: undefined,
      lagBytes: undefined,
    },
  };
}

/**
 * A replica's status from its check row (started at `asOf`), judged against the leader's
 * position; undefined when it is not a usable replica (promoted: not in recovery, or it never
 * replayed anything). Sets the node's history and position time.
 */
export function replicaFromRow(
  node: NodeState,
  row: Record<string, unknown>,
  asOf: number,
  leaderAt: Position | undefined,
  limits: { readonly maxLagMs: number; readonly maxLagBytes: bigint },
): NodeStatus | undefined {
  const { stream, epoch, replay } = row;
  if (
    typeof stream !== 'string' ||
    typeof epoch !== 'number' ||
    typeof replay !== 'string' ||
    row['in_recovery'] !== true
  ) {
    return undefined;
  }
  node.history = { stream, epoch };
  let position: Position = { stream, epoch, lsn: parseLsn(replay) };
  // A check answered after a read that started later learnt a newer position (waitFor, a
  // routed read) must not move the cached position back: the router would then send reads
  // to the leader that the replica can serve. A newer check may (a rebuilt replica).
  const known = node.status.position;
  if (
    known !== undefined &&
    node.positionAsOf > asOf &&
    known.stream === stream &&
    known.epoch === epoch &&
    known.lsn > position.lsn
  ) {
    position = known;
  } else {
    node.positionAsOf = asOf;
  }
  return { name: node.name, position, ...replicaHealth(row, position, leaderAt, limits) };
}

/**
 * A node as the set keeps it, before its first check: the leader counts as healthy (it is always
 * used), a replica is trusted only after its first successful check. `checks` runs its checks
 * and position reads (its own pool when undefined: a structural stand-in); `readPosition` reads
 * its position for the probe.
 */
export function createNode(
  resolved: ResolvedNode,
  role: 'leader' | 'replica',
  checks: { pool: PgQueryablePool; end: () => Promise<void> } | undefined,
  readPosition: (node: NodeState) => Promise<Position | undefined>,
): NodeState {
  const node: NodeState = {
    ...resolved,
    role,
    status: {
      name: resolved.name,
      healthy: role === 'leader',
      position: undefined,
      lagMs: undefined,
      lagBytes: undefined,
    },
    history: undefined,
    checking: undefined,
    positionAsOf: 0,
    checks: checks?.pool ?? resolved.pool,
    endChecks: checks?.end,
    probe: new PositionProbe(() => readPosition(node), 1),
    failures: [],
  };
  return node;
}
