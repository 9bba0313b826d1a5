/**
 * The two-cluster workload shared by bench/clusters.bench.ts and its integration test: simulated
 * user sessions over registers on two independent PostgreSQL clusters (a primary and its
 * streaming replicas each), every session using both and switching between them. Every
 * operation is recorded in the history shape of src/testing/history.ts, with the node that served
 * it reported by the statement itself (`inet_server_port()`), so a checker, not the router,
 * decides what the sessions saw.
 */
import pg from 'pg';
import { createReplicatedPool, type ReplicatedPool } from '../adapters/pg/replicated-pool.js';
import { SessionContext, withSession } from '../src/session/context.js';
import { type CheckResult, HistoryRecorder } from '../src/testing/index.js';
import { sleep } from '../src/util/timers.js';
import { createRng, type Rng } from '../test/chaos/rng.js';
import { INTERACTIVE } from './offload-workload.js';

/** One cluster: its primary and streaming replicas, by connection URL. */
export interface ClusterNodes {
  readonly name: string;
  readonly primaryUrl: string;
  readonly replicas: readonly { readonly name: string; readonly url: string }[];
}

/**
 * `'per-stream'`: one `SessionContext` keeps floors on both clusters (this release).
 * `'single-stream'`: the session as it was before per-stream floors, replayed on this release: a
 * switch to the other cluster finds floors of another history, so the router sends that read to
 * the leader (`'new-history'`) and every floor is dropped; a write there replaces them.
 */
export type SessionMode = 'per-stream' | 'single-stream';

export interface ClustersRunOptions {
  readonly clusters: readonly ClusterNodes[];
  readonly mode: SessionMode;
  /** The register table, created on each primary when missing. */
  readonly table: string;
  readonly sessions: number;
  readonly seconds: number;
  readonly seed: number;
  /** Chance that an operation goes to another cluster than the session's previous one. */
  readonly switchShare: number;
}

/** What the sessions did on one cluster. */
export interface ClusterCounts {
  reads: number;
  replicaReads: number;
  writes: number;
}

export interface ClustersRun {
  readonly mode: SessionMode;
  readonly check: CheckResult;
  readonly byCluster: Readonly<Record<string, ClusterCounts>>;
  readonly errors: number;
}

const HOT_KEYS = 2;

/** Runs the workload once; opens and closes its own pools. */
export async function runClusters(options: ClustersRunOptions): Promise<ClustersRun> {
  const { clusters, mode, table } = options;
  const ports = new Map<number, { cluster: string; node: string; replica: boolean }>();
  for (const cluster of clusters) {
    const nodes = [{ name: 'primary', url: cluster.primaryUrl }, ...cluster.replicas];
    for (const node of nodes) {
      const client = new pg.Client({ connectionString: node.url });
      await client.connect();
      try {
        if (node.name === 'primary') {
          await client.query(
            `CREATE TABLE IF NOT EXISTS ${table} (key text PRIMARY KEY, version int NOT NULL)`,
          );
        }
        // A replica replays the CREATE TABLE up to its apply delay later.
        while ((await client.query('SELECT to_regclass($1) AS t', [table])).rows[0].t === null) {
          await sleep(50);
        }
        const { rows } = await client.query('SELECT inet_server_port() AS port');
        ports.set(rows[0].port, {
          cluster: cluster.name,
          node: `${cluster.name}/${node.name}`,
          replica: node.name !== 'primary',
        });
      } finally {
        await client.end();
      }
    }
  }
  const pools = new Map<string, ReplicatedPool>();

  for (const cluster of clusters) {
    const pool = createReplicatedPool({
      primary: { config: { connectionString: cluster.primaryUrl, max: 4 } },
      replicas: cluster.replicas.map((replica) => ({
        name: replica.name,
        config: { connectionString: replica.url, max: 4 },
      })),
      replicaSetOptions: { pollIntervalMs: 200, checkTimeoutMs: 2000 },
      // The read reports the server that answered it.
      classifier: { readOnlyFunctions: ['inet_server_port', 'json_object_agg'] },
    });
    pools.set(cluster.name, pool);

    await pool.replicaSet.refresh();
  }
  const recorder = new HistoryRecorder();
  const byCluster: Record<string, ClusterCounts> = {};
  for (const cluster of clusters)
    byCluster[cluster.name] = { reads: 0, replicaReads: 0, writes: 0 };
  let errors = 0;
  const rng = createRng(options.seed);
  const deadline = performance.now() + options.seconds * 1000;
  const run = (i: number, sessionRng: Rng) => async () => {
    const id = `${options.seed}-${mode}-${i}`;
    const session = new SessionContext({ id });
    let cluster = sessionRng.pick(clusters).name;
    let afterWrite = false;
    while (performance.now() < deadline) {
      if (clusters.length > 1 && sessionRng.chance(options.switchShare)) {
        cluster = sessionRng.pick(clusters.filter((c) => c.name !== cluster)).name;
      }
      const pool = pools.get(cluster)!;
      const write = sessionRng.chance(INTERACTIVE.writeShare);
      const own = `${cluster}:${table}:${id}`;
      const hot = `${cluster}:${table}:hot${sessionRng.int(0, HOT_KEYS - 1)}`;
      let level: 'strong' | undefined;
      if (mode === 'single-stream') level = forgetOtherHistories(session, pool, write);
      try {
        if (write) {
          const key = sessionRng.chance(INTERACTIVE.ownKeyWriteShare) ? own : hot;
          const startedAt = recorder.now();
          const { rows } = await withSession(session, () =>
            pool.query(
              `INSERT INTO ${table} (key, version) VALUES ($1, 1) ON CONFLICT (key) DO UPDATE SET version = ${table}.version + 1 RETURNING version`,
              [key],
            ),
          );
          recorder.write({
            session: id,
            key,
            id: `${key}@${rows[0].version}`,
            version: rows[0].version,
            node: `${cluster}/primary`,
            startedAt,
            endedAt: recorder.now(),
            acknowledged: true,
          });
          byCluster[cluster]!.writes++;
        } else {
          const keys = [own, hot];
          const startedAt = recorder.now();
          const { rows } = await withSession(
            session,
            () =>
              pool.query(
                `SELECT inet_server_port() AS port, (SELECT json_object_agg(key, version) FROM ${table} WHERE key = ANY($1)) AS versions`,
                [keys],
              ),
            level === undefined ? undefined : { level },
          );
          const endedAt = recorder.now();
          const server = ports.get(rows[0].port)!;
          const observed = {
            ...Object.fromEntries(keys.map((key) => [key, 0])),
            ...rows[0].versions,
          };
          recorder.read({ session: id, observed, node: server.node, startedAt, endedAt });
          byCluster[cluster]!.reads++;
          if (server.replica) byCluster[cluster]!.replicaReads++;
        }
      } catch {
        errors++;
      } finally {
        // withSession with a level keeps it on the context: back to the default.
        session.level = 'read-your-writes';
      }
      await sleep(INTERACTIVE.thinkMs(sessionRng, afterWrite));
      afterWrite = write;
    }
  };
  try {
    await Promise.all(Array.from({ length: options.sessions }, (_, i) => run(i, rng.fork())()));
  } finally {
    await Promise.all([...pools.values()].map((pool) => pool.end()));
  }
  return { mode, check: recorder.check(), byCluster, errors };
}

/**
 * The session before per-stream floors: floors of one history only. An operation on a cluster
 * whose stream the floors do not belong to drops them all; a read then goes to the leader, as
 * the router's `'new-history'` decision did.
 */
function forgetOtherHistories(
  session: SessionContext,
  pool: ReplicatedPool,
  write: boolean,
): 'strong' | undefined {
  const stream = pool.replicaSet.snapshot().leader.position?.stream;
  if (stream === undefined || session.streams.every((each) => each === stream)) return undefined;
  session.rebase();
  return write ? undefined : 'strong';
}

/** Read offload on a cluster: the share of its reads a replica answered. */
export function offload(counts: ClusterCounts): number {
  return counts.reads === 0 ? 0 : counts.replicaReads / counts.reads;
}
