/**
 * The near-cache workload: sessions write registers through a replicated pool and read them
 * through a `NearCache` on the primary (falling through to the pool when the cache has not
 * applied their floors), while the driver breaks the replicas and this workload's own fault drops
 * the cache's replication slot under it. Afterwards: the history checker over every session, no
 * acknowledged write missing at the primary, and the cache back live and equal to the primary.
 */
import pg from 'pg';
import { NearCache } from '../../../adapters/pg/near-cache/index.js';
import { createReplicatedPool, type ReplicatedPool } from '../../../adapters/pg/replicated-pool.js';
import { SessionContext, withSession } from '../../../src/session/context.js';
import { checkHistory, HistoryRecorder } from '../../../src/testing/index.js';
import { sleep } from '../../../src/util/timers.js';
import type { Rng } from '../rng.js';
import type { ChaosContext, Fault, Workload, WorkloadReport } from '../types.js';

const TABLE = 'chaos_near_cache';

interface Register {
  key: string;
  version: number;
}

export interface NearCacheWorkloadOptions {
  /** Concurrent sessions. Default 6. */
  sessions?: number;
  /** Registers every session shares. Default 6. */
  keys?: number;
}

export function nearCacheWorkload(options: NearCacheWorkloadOptions = {}): Workload {
  const keys = Array.from({ length: options.keys ?? 6 }, (_, i) => `k${i}`);
  const sessionCount = options.sessions ?? 6;
  const recorder = new HistoryRecorder();
  const errors = new Map<string, number>();
  const answeredBy = new Map<string, number>();
  let ctx: ChaosContext | undefined;
  let pool: ReplicatedPool | undefined;
  let cache: NearCache | undefined;
  let stopping = false;
  let loops: Promise<void>[] = [];
  let operations = 0;
  let writeIds = 0;

  const count = (map: Map<string, number>, what: string) => map.set(what, (map.get(what) ?? 0) + 1);

  async function write(name: string, session: SessionContext, key: string): Promise<void> {
    const startedAt = recorder.now();
    const id = `${name}.w${writeIds++}`;
    try {
      const { rows } = await withSession(session, () =>
        pool!.query<{ version: number }>(
          `INSERT INTO ${TABLE} AS r (key, version) VALUES ($1, 1)
           ON CONFLICT (key) DO UPDATE SET version = r.version + 1 RETURNING version`,
          [key],
        ),
      );
      const version = rows[0]!.version;
      recorder.write({
        session: name,
        key,
        id,
        version,
        node: 'primary',
        startedAt,
        endedAt: recorder.now(),
        acknowledged: true,
      });
    } catch (error) {
      count(errors, `write: ${(error as Error).message}`);
      // It may have committed: unacknowledged writes take part in no check.
      recorder.write({
        session: name,
        key,
        id,
        version: 0,
        node: 'unknown',
        startedAt,
        endedAt: recorder.now(),
        acknowledged: false,
      });
    }
  }

  async function read(
    name: string,
    session: SessionContext,
    wanted: readonly string[],
  ): Promise<void> {
    const startedAt = recorder.now();
    try {
      // One answer, one snapshot: from the cache's memory, or one statement on the pool.
      const answer = await withSession(session, () =>
        cache!.table<Register>(TABLE).filter((row) => wanted.includes(row.key)),
      );
      const observed: Record<string, number> = Object.fromEntries(wanted.map((key) => [key, 0]));
      for (const row of answer.value) observed[row.key] = row.version;
      count(answeredBy, `${answer.node} (${answer.reason})`);
      recorder.read({
        session: name,
        observed,
        node: answer.node,
        startedAt,
        endedAt: recorder.now(),
      });
    } catch (error) {
      count(errors, `read: ${(error as Error).message}`);
    }
  }

  async function runSession(index: number, rng: Rng): Promise<void> {
    const name = `nc${index}`;
    const session = new SessionContext({ id: name });
    while (!stopping) {
      operations += 1;
      if (rng.chance(0.3)) await write(name, session, rng.pick(keys));
      else
        await read(
          name,
          session,
          keys.filter(() => rng.chance(0.6)),
        );
      await sleep(rng.int(5, 40));
    }
  }

  /** Ends the walsender streaming the cache's slot and drops the slot. */
  const slotDrop: Fault = {
    kind: 'near-cache-slot-drop',
    async inject({ cluster, log }) {
      if (cache === undefined) return;
      const slot = cache.slotName;
      const db = new pg.Client({ connectionString: cluster.primary.url });
      await db.connect();
      try {
        for (let attempt = 0; attempt < 50; attempt++) {
          await db.query(
            'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL',
            [slot],
          );
          const dropped = await db
            .query('SELECT pg_drop_replication_slot($1)', [slot])
            .then(() => true)
            .catch(() => false);
          if (dropped) break;
          await sleep(20);
        }
        log(`near cache: slot ${slot} dropped under it`);
      } finally {
        await db.end();
      }
    },
  };

  return {
    name: 'near-cache',
    faults: [slotDrop],

    async start(context) {
      ctx = context;
      const { cluster } = context;
      const admin = new pg.Client({ connectionString: cluster.primary.url });
      await admin.connect();
      await admin.query(
        `CREATE TABLE IF NOT EXISTS ${TABLE} (key text PRIMARY KEY, version int NOT NULL)`,
      );
      await admin.end();
      pool = createReplicatedPool({
        primary: { config: { connectionString: cluster.primary.url, max: 4 } },
        replicas: [cluster.replica, cluster.laggingReplica].map((replica) => ({
          name: replica.name,
          config: { connectionString: replica.url, max: 4 },
        })),
        replicaSetOptions: { checkTimeoutMs: 500 },
      });
      pool.on('error', () => {});
      cache = await NearCache.open({
        primary: cluster.primary.url,
        pool,
        tables: [TABLE],
        retryDelayMs: 200,
        slotCheckIntervalMs: 1000,
      });
      loops = Array.from({ length: sessionCount }, (_, i) => runSession(i, context.rng.fork()));
    },

    async stop() {
      stopping = true;
      await Promise.all(loops);
    },

    async verify(): Promise<WorkloadReport> {
      const failures: string[] = [];
      const result = checkHistory(recorder.operations());
      for (const violation of result.violations)
        failures.push(`${violation.guarantee}: ${violation.message}`);
      const db = new pg.Client({ connectionString: ctx!.cluster.primary.url });
      await db.connect();
      let lostWrites = 0;
      try {
        const primary = new Map(
          (await db.query<Register>(`SELECT key, version FROM ${TABLE}`)).rows.map((row) => [
            row.key,
            row.version,
          ]),
        );
        for (const op of recorder.operations()) {
          if (op.kind === 'write' && op.acknowledged && (primary.get(op.key) ?? 0) < op.version) {
            lostWrites += 1;
            failures.push(`write ${op.id} (${op.key} v${op.version}) missing at the primary`);
          }
        }
        // Healed: the cache must be live again and hold exactly the primary's rows.
        const deadline = performance.now() + 30_000;
        let cached = '';
        const expected = JSON.stringify([...primary].sort());
        while (performance.now() < deadline) {
          const answer = await cache!.table<Register>(TABLE).filter(() => true);
          cached = JSON.stringify(answer.value.map((row) => [row.key, row.version]).sort());
          if (answer.source === 'near-cache' && cached === expected) break;
          await sleep(100);
        }
        if (cached !== expected)
          failures.push(`the cache did not converge: ${cached} vs ${expected}`);
      } finally {
        await db.end();
      }
      const status = cache!.status();
      await cache!.close();
      await pool!.end();
      return {
        workload: 'near-cache',
        operations,
        violations: result.violations.length,
        lostWrites,
        staleWritesRejected: 0,
        staleWritesAccepted: 0,
        failures,
        notes: [
          `${status.snapshots} snapshots (${status.snapshots - 1} after going stale)`,
          `reads answered by: ${[...answeredBy].map(([what, n]) => `${what} ${n}`).join(', ')}`,
          ...[...errors].map(([what, n]) => `${n} x ${what}`),
        ],
        history: recorder.toJSON(),
      };
    },
  };
}
