/**
 * The failover workload: sessions write and read registers through a replicated pool given its
 * primary as a list of candidates ([a, b], both also replicas), on two servers of its own, while
 * its fault `primary-switchover` promotes the standby and demotes the primary (a clean
 * switchover: the primary stops fast, shipping every WAL record, the standby is promoted, the
 * old primary restarts as its standby). The pool must follow: afterwards every acknowledged write
 * is at the primary with its version (or a later one), and the history checker finds no
 * violation of any session guarantee across the moves. Its servers are its own because the
 * other workloads (and the heal) expect the run's primary to stay where it is.
 */
import pg from 'pg';
import { createReplicatedPool, type ReplicatedPool } from '../../../adapters/pg/replicated-pool.js';
import { isCausewayError } from '../../../src/errors.js';
import { SessionContext, withSession } from '../../../src/session/context.js';
import {
  checkHistory,
  type HistoryOperation,
  HistoryRecorder,
} from '../../../src/testing/index.js';
import { sleep } from '../../../src/util/timers.js';
import { type PgServer, startPostgresPrimary, startReplica } from '../../harness/cluster.js';
import { inRecovery, switchover } from '../../harness/failover.js';
import type { Rng } from '../rng.js';
import type { ChaosContext, Fault, Workload, WorkloadReport } from '../types.js';

const REGISTERS = 'failover_registers';
const WRITES = 'failover_writes';

export interface FailoverWorkloadOptions {
  /** Sessions writing and reading at once. Default 4. */
  sessions?: number;
  /** Pause between a session's operations, drawn in this range (ms). Default [20, 80]. */
  thinkMs?: readonly [number, number];
}

export function failoverWorkload(options: FailoverWorkloadOptions = {}): Workload {
  const sessionCount = options.sessions ?? 4;
  const [thinkMin, thinkMax] = options.thinkMs ?? [20, 80];
  let servers: [PgServer, PgServer] | undefined;
  let pool: ReplicatedPool | undefined;
  let stopping = false;
  let loops: Promise<void>[] = [];
  const recorder = new HistoryRecorder();
  const errors = new Map<string, number>();
  let operations = 0;
  let switchovers = 0;
  /** Each promotion: the node promoted, when (the recorder's clock). */
  const promotions: { node: string; at: number }[] = [];
  /** Acknowledged writes by node, with their start times. */
  const acknowledged: { node: string; startedAt: number }[] = [];
  /** Whether a write started after promotion `p` was acknowledged by the promoted node. */
  const followed = (p: { node: string; at: number }) =>
    acknowledged.some((w) => w.node === p.node && w.startedAt >= p.at);

  const nodeOf = (port: unknown) =>
    servers?.find((server) => server.port === Number(port))?.name ?? `port-${String(port)}`;
  const countError = (error: unknown) => {
    const what = isCausewayError(error)
      ? error.code
      : ((error as { code?: string }).code ?? String((error as Error).message).slice(0, 40));
    errors.set(what, (errors.get(what) ?? 0) + 1);
  };

  async function write(session: SessionContext, key: string, id: string): Promise<void> {
    const startedAt = recorder.now();
    try {
      const { rows } = await withSession(session, () =>
        pool!.query<{ version: number; port: number }>(
          `WITH bumped AS (
             INSERT INTO ${REGISTERS} AS r (key, version) VALUES ($1, 1)
             ON CONFLICT (key) DO UPDATE SET version = r.version + 1 RETURNING key, version)
           INSERT INTO ${WRITES} (id, key, version) SELECT $2, key, version FROM bumped
           RETURNING version, inet_server_port() AS port`,
          [key, id],
        ),
      );
      const row = rows[0]!;
      acknowledged.push({ node: nodeOf(row.port), startedAt });
      recorder.write({
        session: session.id,
        key,
        id,
        version: row.version,
        node: nodeOf(row.port),
        startedAt,
        endedAt: recorder.now(),
        acknowledged: true,
      });
    } catch (error) {
      countError(error);
      const fields = { session: session.id, key, id, version: 0, node: 'unknown', startedAt };
      recorder.write({ ...fields, endedAt: recorder.now(), acknowledged: false });
    }
  }

  async function read(session: SessionContext, keys: readonly string[]): Promise<void> {
    const startedAt = recorder.now();
    try {
      const { rows } = await withSession(session, () =>
        pool!.query<{ key: string; version: number; port: number }>(
          `SELECT inet_server_port() AS port, k.key, coalesce(r.version, 0) AS version
           FROM unnest($1::text[]) AS k(key) LEFT JOIN ${REGISTERS} r ON r.key = k.key`,
          [keys],
        ),
      );
      const observed = Object.fromEntries(rows.map((row) => [row.key, row.version]));
      const node = nodeOf(rows[0]?.port);
      recorder.read({ session: session.id, observed, node, startedAt, endedAt: recorder.now() });
    } catch (error) {
      countError(error);
    }
  }

  async function run(name: string, rng: Rng): Promise<void> {
    const session = new SessionContext({ id: name });
    const own = [`${name}/0`, `${name}/1`];
    const shared = ['shared/0', 'shared/1'];
    let writes = 0;
    while (!stopping) {
      operations += 1;
      if (rng.chance(0.35)) {
        writes += 1;
        await write(session, rng.pick([...own, ...shared]), `${name}.w${writes}`);
      } else {
        await read(session, [...own, ...shared]);
      }
      await sleep(rng.int(thinkMin, thinkMax));
    }
  }

  /** The server that is the primary now (the other is its standby). */
  async function primaryNow(): Promise<{ primary: PgServer; standby: PgServer }> {
    const [a, b] = servers!;
    return (await inRecovery(a.url)) ? { primary: b, standby: a } : { primary: a, standby: b };
  }

  const primarySwitchover: Fault = {
    kind: 'primary-switchover',
    async inject({ log }: ChaosContext) {
      const { primary, standby } = await primaryNow();
      log(`switchover: ${primary.name} stops, ${standby.name} is promoted`);
      await switchover(primary, standby, () => {
        promotions.push({ node: standby.name, at: recorder.now() });
        log(`${standby.name} promoted`);
      });
      switchovers += 1;
      log(`switchover: ${primary.name} streams from ${standby.name}`);
    },
  };

  return {
    name: 'failover',
    faults: [primarySwitchover],

    async start(context) {
      const a = await startPostgresPrimary({ name: 'failover-a' });
      const b = await startReplica(a, { name: 'failover-b' });
      servers = [a, b];
      const admin = new pg.Client({ connectionString: a.url });
      await admin.connect();
      await admin.query(`CREATE TABLE ${REGISTERS} (key text PRIMARY KEY, version int NOT NULL);
        CREATE TABLE ${WRITES} (id text PRIMARY KEY, key text NOT NULL, version int NOT NULL)`);
      await admin.end();
      pool = createReplicatedPool({
        primary: [a.url, b.url].map((url) => ({ config: { connectionString: url, max: 4 } })),
        replicas: servers.map((server) => ({
          name: server.name,
          config: { connectionString: server.url, max: 2 },
        })),
        classifier: { readOnlyFunctions: ['inet_server_port'] },
        replicaSetOptions: { checkTimeoutMs: 500 },
      });
      pool.on('error', () => {});
      await pool.ready();
      loops = Array.from({ length: sessionCount }, (_, i) => run(`s${i}`, context.rng.fork()));
      context.log(`${sessionCount} sessions over [${a.name}, ${b.name}]`);
    },

    async stop() {
      // The last switchover may have just finished: give the pool time to write there.
      const last = promotions.at(-1);
      for (let waited = 0; last !== undefined && !followed(last) && waited < 10_000; waited += 50) {
        await sleep(50);
      }
      stopping = true;
      await Promise.all(loops);
    },

    async verify(): Promise<WorkloadReport> {
      const failures: string[] = [];
      let lostWrites = 0;
      try {
        const { primary } = await primaryNow();
        const admin = new pg.Client({ connectionString: primary.url });
        await admin.connect();
        const logged = new Map(
          (
            await admin.query<{ id: string; key: string; version: number }>(
              `SELECT * FROM ${WRITES}`,
            )
          ).rows.map((row) => [row.id, row]),
        );
        const finals = new Map(
          (
            await admin.query<{ key: string; version: number }>(`SELECT * FROM ${REGISTERS}`)
          ).rows.map((row) => [row.key, row.version]),
        );
        await admin.end();
        const history: HistoryOperation[] = recorder.toJSON().operations.map((op) => {
          if (op.kind !== 'write' || op.acknowledged) return op;
          // An unacknowledged write that committed anyway: the checker needs its version.
          const row = logged.get(op.id);
          return row === undefined ? op : { ...op, version: row.version };
        });
        for (const op of history) {
          if (op.kind !== 'write' || !op.acknowledged) continue;
          const row = logged.get(op.id);
          if (row?.version !== op.version || (finals.get(op.key) ?? 0) < op.version) {
            lostWrites += 1;
            failures.push(`lost write ${op.id}: acknowledged as ${op.key} v${op.version}`);
          }
        }
        for (const promotion of promotions) {
          if (followed(promotion)) continue;
          failures.push(
            `no write acknowledged by ${promotion.node} after its promotion at ${promotion.at.toFixed(0)} ms: the pool did not follow`,
          );
        }
        const check = checkHistory(history);
        for (const violation of check.violations.slice(0, 5)) {
          failures.push(`${violation.guarantee} broken in session ${violation.session}`);
        }
        const writes = history.filter((op) => op.kind === 'write');
        const reads = history.filter((op) => op.kind === 'read');
        const byNode = new Map<string, number>();
        for (const op of reads) byNode.set(op.node, (byNode.get(op.node) ?? 0) + 1);
        return {
          workload: 'failover',
          operations,
          violations: check.violations.length,
          lostWrites,
          staleWritesRejected: 0,
          staleWritesAccepted: 0,
          failures,
          notes: [
            `${switchovers} switchovers; ${writes.length} writes (${writes.filter((w) => w.kind === 'write' && w.acknowledged).length} acknowledged), ${reads.length} reads by node ${[...byNode].map(([node, n]) => `${node} ${n}`).join(', ')}`,
            ...(errors.size > 0
              ? [`client errors: ${[...errors].map(([what, n]) => `${what} ${n}`).join(', ')}`]
              : []),
          ],
          history: { operations: history, violations: check.violations },
        };
      } finally {
        await pool?.end();
        await Promise.allSettled((servers ?? []).map((server) => server.stop()));
      }
    },
  };
}
