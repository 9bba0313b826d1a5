// The child side of the ORM matrix (matrix.test.ts): one ORM over the routed pool, on the test
// cluster's primary and its lagging replica. It runs every check, prints one JSON line of what it
// saw (`ScenarioReport`), closes the ORM and the pool, and must then exit by itself.
import pg from 'pg';
import type { PoolRouteEvent, ReplicatedPool } from '../../../adapters/pg/index.js';
import { ormPool } from '../../../examples/orm/pool.js';
import { SessionContext, withSession } from '../../../src/session/context.js';
import { testEnv } from '../../harness/env.js';

/** What a scenario needs from an ORM, each through the ORM's own API. */
export interface OrmUnderTest {
  insert(id: number, v: string): Promise<void>;
  /** The row's `v` through the ORM's query builder or model; undefined when absent. */
  read(id: number): Promise<string | undefined>;
  /**
   * In the ORM's transaction API: inserts (id, v), runs `TX_PROBE_SQL` through the ORM twice
   * (returning both rows), awaits `during()` between them, then commits, or throws to roll back
   * when `rollback`.
   */
  transaction(
    id: number,
    v: string,
    during: () => Promise<void>,
    rollback: boolean,
  ): Promise<TxProbe[]>;
  /** The ids from `fromId` to `toId` inclusive, in order, through the ORM's stream or cursor. */
  stream?(fromId: number, toId: number): Promise<number[]>;
  /** Shuts the ORM down and ends the pool (some ORMs end the pool they were given). */
  close(): Promise<void>;
}

/** Where a statement inside the transaction ran, and whether the insert was in its transaction. */
export const TX_PROBE_SQL =
  'SELECT pg_backend_pid() AS pid, pg_is_in_recovery() AS recovery, ' +
  'txid_current_if_assigned()::text AS xid';

// A type, not an interface: Drizzle's raw results want an index signature.
export type TxProbe = {
  pid: number;
  recovery: boolean;
  xid: string | null;
};

/** Rolls an ORM transaction back from inside (`OrmUnderTest.transaction` with `rollback`). */
export class RollbackRequested extends Error {}

export interface ScenarioReport {
  readYourWrites: {
    attempts: number;
    elapsedMs: number;
    /** The lagging replica did not have the row when the read ran (the check means something). */
    staleOnReplica: boolean;
    seen: string | undefined;
    /**
     * The same read issued in the same tick as another session's read (an ORM that batches
     * reads could run both in one session's context).
     */
    seenBesideOtherSession: string | undefined;
  };
  transaction: {
    probes: TxProbe[];
    /** What another session read, through the ORM, while the transaction was open. */
    seenByOtherSession: string | undefined;
    onPrimaryBeforeCommit: boolean;
    seenAfterCommit: string | undefined;
    rolledBackRowOnPrimary: boolean;
  };
  stream: { expected: number[]; streamed: number[] } | null;
  offload: { reads: number; replicaReads: number; statements: number };
}

/** The table a scenario uses: created by the parent, one per ORM (Prisma's name is in its schema). */
export function tableFor(orm: string): string {
  return `orm_matrix_${orm.replaceAll('-', '_')}`;
}

/** The routed pool of a scenario, its connections tagged with `application_name`. */
export function scenarioPool(): ReplicatedPool {
  const env = testEnv();
  const appName = requiredEnv('ORM_APP_NAME');
  const tag = (url: string) => `${url}${url.includes('?') ? '&' : '?'}application_name=${appName}`;
  return ormPool(
    { primary: tag(env.primaryUrl), replicas: [tag(env.laggingReplicaUrl)] },
    // Slow checks on a loaded machine would mark the replica down and skew the offload share.
    { replicaSetOptions: { checkTimeoutMs: 2000, connectTimeoutMs: 10_000 } },
  );
}

export function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (the ORM matrix sets it for its children)`);
  return value;
}

const OFFLOAD_READS = 20;

/** Runs every check against `orm` and prints the report; `pool` is the pool the ORM was given. */
export async function runScenario(
  table: string,
  pool: ReplicatedPool,
  orm: OrmUnderTest,
): Promise<void> {
  const env = testEnv();
  const events: PoolRouteEvent[] = [];
  pool.on('route', (event: PoolRouteEvent) => events.push(event));
  const appName = requiredEnv('ORM_APP_NAME');
  const lagging = new pg.Client({
    connectionString: env.laggingReplicaUrl,
    application_name: appName,
  });
  const primary = new pg.Client({ connectionString: env.primaryUrl, application_name: appName });
  await Promise.all([lagging.connect(), primary.connect()]);
  const onServer = async (client: pg.Client, id: number) =>
    (await client.query(`SELECT 1 FROM ${table} WHERE id = $1`, [id])).rowCount === 1;
  let nextId = 1;
  try {
    const session = new SessionContext();
    // A write then an immediate read in one session. A run slower than the replica's apply delay
    // proves nothing (the replica may have caught up), so such a run is repeated.
    let readYourWrites: ScenarioReport['readYourWrites'];
    for (let attempts = 1; ; attempts++) {
      const id = nextId++;
      const started = performance.now();
      const seen = await withSession(session, async () => {
        await orm.insert(id, 'ryw');
        return orm.read(id);
      });
      // The other session's read first: an ORM batching both would run them in its context.
      const [, seenBesideOtherSession] = await Promise.all([
        withSession(new SessionContext(), () => orm.read(id)),
        withSession(session, () => orm.read(id)),
      ]);
      const staleOnReplica = !(await onServer(lagging, id));
      const elapsedMs = performance.now() - started;
      readYourWrites = { attempts, elapsedMs, staleOnReplica, seen, seenBesideOtherSession };
      if (elapsedMs < env.replicaDelayMs || attempts === 3) break;
    }

    const txId = nextId++;
    let seenByOtherSession: string | undefined;
    let onPrimaryBeforeCommit = true;
    const probes = await withSession(session, () =>
      orm.transaction(
        txId,
        'tx',
        async () => {
          seenByOtherSession = await withSession(new SessionContext(), () => orm.read(txId));
          onPrimaryBeforeCommit = await onServer(primary, txId);
        },
        false,
      ),
    );
    const seenAfterCommit = await withSession(session, () => orm.read(txId));
    const rolledBackId = nextId++;
    await withSession(session, async () => {
      try {
        await orm.transaction(rolledBackId, 'rolled back', async () => {}, true);
      } catch (error) {
        if (!(error instanceof RollbackRequested)) throw error;
      }
    });
    const transaction = {
      probes,
      seenByOtherSession,
      onPrimaryBeforeCommit,
      seenAfterCommit,
      rolledBackRowOnPrimary: await onServer(primary, rolledBackId),
    };

    let stream: ScenarioReport['stream'] = null;
    if (orm.stream) {
      const stream_ = orm.stream.bind(orm);
      const expected = Array.from({ length: 10 }, () => nextId++);
      stream = await withSession(session, async () => {
        for (const id of expected) await orm.insert(id, 'streamed');
        return { expected, streamed: await stream_(expected[0]!, expected.at(-1)!) };
      });
    }

    // Once the replica has applied everything written above, the session's reads can go there.
    const written = await pool.replicaSet.writePosition();
    if (written === undefined || !(await pool.replicaSet.waitFor('replica-1', written, 15_000))) {
      throw new Error('the lagging replica did not catch up within 15 s');
    }
    const from = events.length;
    await withSession(session, async () => {
      for (let i = 0; i < OFFLOAD_READS; i++) await orm.read(1 + (i % (nextId - 1)));
    });
    const window = events.slice(from);
    const offload = {
      reads: OFFLOAD_READS,
      statements: window.length,
      replicaReads: window.filter((event) => event.target === 'replica').length,
    };
    const report: ScenarioReport = { readYourWrites, transaction, stream, offload };
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    await orm.close();
    await Promise.all([lagging.end(), primary.end()]);
  }
}
