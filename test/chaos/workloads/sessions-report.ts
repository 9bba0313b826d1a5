/**
 * The sessions workload's setup and report: its tables, the replica comparison, the histories
 * per device and per user, and the lines that describe what the checker found.
 */
import pg from 'pg';
import {
  type CheckResult,
  type Guarantee,
  HistoryRecorder,
  type ReadOperation,
  type WriteOperation,
} from '../../../src/testing/index.js';
import type { Cluster } from '../../harness/cluster.js';
import { DIVERGENT_VERSION_OFFSET, REGISTERS_TABLE, waitForReplicas } from '../faults.js';

/** One row per committed write: its id, key and the version it made. */
export const WRITES_TABLE = 'chaos_writes';

export interface RegisterRow {
  key: string;
  version: number;
  write_id: string | null;
}

/** One operation as the client saw it, before the history is assembled. */
export type Observed =
  | { readonly user: string; readonly device: string; readonly op: Omit<WriteOperation, 'session'> }
  | { readonly user: string; readonly device: string; readonly op: Omit<ReadOperation, 'session'> };

/** Creates the tables on the primary and waits until both replicas have replayed them. */
export async function createTables(cluster: Cluster): Promise<void> {
  const admin = new pg.Client({ connectionString: cluster.primary.url });
  await admin.connect();
  try {
    await admin.query(`CREATE TABLE IF NOT EXISTS ${REGISTERS_TABLE} (
      key text PRIMARY KEY, version bigint NOT NULL, write_id text NOT NULL)`);
    await admin.query(`CREATE TABLE IF NOT EXISTS ${WRITES_TABLE} (
      id text PRIMARY KEY, key text NOT NULL, version bigint NOT NULL)`);
  } finally {
    await admin.end();
  }
  await waitForReplicas(cluster, 30_000);
}

/** Differences between the primary's registers and each replica's, once they caught up. */
export async function compareReplicas(
  cluster: Cluster,
  primary: readonly RegisterRow[],
): Promise<string[]> {
  await waitForReplicas(cluster, 60_000);
  const want = new Map(primary.map((row) => [row.key, row.version]));
  const differences: string[] = [];
  for (const replica of [cluster.replica, cluster.laggingReplica]) {
    const client = new pg.Client({ connectionString: replica.url });
    await client.connect();
    try {
      const { rows } = await client.query<RegisterRow>(
        `SELECT key, version::int AS version FROM ${REGISTERS_TABLE}`,
      );
      const have = new Map(rows.map((row) => [row.key, row.version]));
      for (const key of new Set([...want.keys(), ...have.keys()])) {
        if (want.get(key) !== have.get(key)) {
          differences.push(
            `${replica.name} diverged: ${key} at version ${have.get(key)}, the primary has ${want.get(key)}`,
          );
        }
      }
    } finally {
      await client.end();
    }
  }
  return differences;
}

export function isDivergent(version: number): boolean {
  return version >= DIVERGENT_VERSION_OFFSET;
}

/**
 * The two histories: per device (a token's session) and per user (the store's). Writes whose
 * client saw an error take the version the primary's log gives them, or 0 if they never
 * committed.
 */
export function assemble(
  ops: readonly Observed[],
  logged: ReadonlyMap<string, { version: number; key: string }>,
): { devices: HistoryRecorder; users: HistoryRecorder } {
  const devices = new HistoryRecorder();
  const users = new HistoryRecorder();
  for (const { user, device, op } of ops) {
    if (op.kind === 'write') {
      const resolved =
        op.acknowledged || op.version > 0
          ? op
          : { ...op, version: logged.get(op.id)?.version ?? 0 };
      const { kind: _kind, ...fields } = resolved;
      devices.write({ ...fields, session: device });
      users.write({ ...fields, session: user });
    } else {
      const { kind: _kind, ...fields } = op;
      devices.read({ ...fields, session: device });
      users.read({ ...fields, session: user });
    }
  }
  return { devices, users };
}

const MAX_LISTED_VIOLATIONS = 10;

export function describeViolations(scope: string, result: CheckResult): string[] {
  const lines = result.violations
    .slice(0, MAX_LISTED_VIOLATIONS)
    .map(
      (v) =>
        `${v.guarantee} (${scope}): ${v.message}; proof: ${v.operations
          .map(
            (op) =>
              `${op.kind === 'write' ? op.id : 'read'}@${op.node}[${op.startedAt.toFixed(0)}-${op.endedAt.toFixed(0)}]`,
          )
          .join(', ')}`,
    );
  if (result.violations.length > MAX_LISTED_VIOLATIONS) {
    lines.push(`... ${result.violations.length - MAX_LISTED_VIOLATIONS} more ${scope} violations`);
  }
  return lines;
}

export function formatCounts(counts: ReadonlyMap<string, number>): string {
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([name, count]) => `${name} ${count}`)
    .join(', ');
}

export function formatGuarantees(result: CheckResult): string {
  return (Object.entries(result.counts) as [Guarantee, number][])
    .map(([guarantee, count]) => `${guarantee} ${count}`)
    .join(', ');
}

export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return `${error.name}${typeof code === 'string' ? ` ${code}` : ''}: ${error.message.slice(0, 80)}`;
  }
  return String(error);
}
