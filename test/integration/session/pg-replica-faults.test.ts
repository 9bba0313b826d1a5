import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqlClassifier, type SqlClassifierOptions } from '../../../adapters/pg/classify/index.js';
import {
  createReplicatedPool,
  type PoolRouteEvent,
  type ReplicatedPool,
} from '../../../adapters/pg/replicated-pool.js';
import { SessionContext, withSession } from '../../../src/session/context.js';
import {
  type PgServer,
  type ReplicaServer,
  startPostgresPrimary,
  startReplica,
} from '../../harness/cluster.js';

// A private primary and replica: this file promotes the replica, which must never happen to the
// shared cluster. Found by the fault-injection run (test/chaos): reads kept going to a promoted
// replica until the next background check.
let primary: PgServer;
let replica: ReplicaServer;
let direct: pg.Pool;
let pool: ReplicatedPool;
const events: PoolRouteEvent[] = [];

beforeAll(async () => {
  primary = await startPostgresPrimary({ name: 'faults-primary' });
  replica = await startReplica(primary, { name: 'faults-replica' });
  direct = new pg.Pool({ connectionString: primary.url, max: 2 });
  await direct.query('CREATE TABLE faults_r (id int PRIMARY KEY, v int NOT NULL)');
  await direct.query('INSERT INTO faults_r VALUES (1, 1)');
  // No background polling: the topology is re-read only when the test says, as between two
  // checks of a real deployment.
  pool = createReplicatedPool({
    primary: { config: { connectionString: primary.url } },
    replicas: [{ name: 'replica', config: { connectionString: replica.url } }],
    replicaSetOptions: { pollIntervalMs: 0, checkTimeoutMs: 2000 },
    classifier: await readyClassifier(),
  });
  pool.on('route', (event: PoolRouteEvent) => events.push(event));
  const created = await pool.replicaSet.writePosition();
  expect(await pool.replicaSet.waitFor('replica', created!, 20_000)).toBe(true);
}, 120_000);

/** A classifier with the primary's catalog loaded, so that the first reads can be routed. */
async function readyClassifier(options: SqlClassifierOptions = {}): Promise<SqlClassifier> {
  const classifier = new SqlClassifier(options);
  classifier.useCatalog((sql) => direct.query(sql));
  await classifier.ready();
  return classifier;
}

afterAll(async () => {
  await pool?.end();
  await direct?.end();
  await replica?.stop().catch(() => {});
  await primary?.stop();
});

const readValue = async () =>
  (await pool.query('SELECT v FROM faults_r WHERE id = 1')).rows[0]?.v as number;

describe('a replica promoted between two checks (private cluster)', () => {
  it('serves no session read from the promoted node, even before the next check', async () => {
    const session = new SessionContext({ id: 'promoted' }, 'read-your-writes');
    expect(await withSession(session, readValue)).toBe(1);
    expect(events.at(-1)).toMatchObject({ target: 'replica', node: 'replica' });

    // The replica leaves the primary's stream and a client that failed over to it writes there.
    await replica.promote();
    const promoted = new pg.Client({ connectionString: replica.url });
    await promoted.connect();
    await promoted.query('UPDATE faults_r SET v = 999 WHERE id = 1');
    await promoted.end();
    expect(pool.replicaSet.snapshot().replicas[0]!.healthy).toBe(true); // no check ran yet

    // The router still believes in the replica; the read runs there, but the node cannot vouch
    // for the leader's history any more: the answer is dropped and the leader answers instead.
    expect(await withSession(session, readValue)).toBe(1);
    expect(events.slice(-2)).toMatchObject([
      { target: 'replica', node: 'replica' },
      { target: 'leader', reason: 'replica-error' },
    ]);
    expect(pool.replicaSet.snapshot().replicas[0]!.healthy).toBe(false);
    expect(await withSession(session, readValue)).toBe(1);
    expect(events.at(-1)).toMatchObject({ target: 'leader', reason: 'no-healthy-replica' });

    // Rebuilt from the primary, the node is a replica on the primary's timeline again.
    await replica.rebuild();
    await pool.replicaSet.refresh();
    expect(pool.replicaSet.snapshot().replicas[0]).toMatchObject({ healthy: true });
    const fresh = new SessionContext({ id: 'after-rebuild' }, 'read-your-writes');
    expect(await withSession(fresh, readValue)).toBe(1);
    expect(events.at(-1)).toMatchObject({ target: 'replica', node: 'replica' });
  });
});

describe('a replica that crashes during a routed read (private cluster)', () => {
  it('retries the read on the leader, and the lost connection does not end the process', async () => {
    // pg emits 'error' on a checked-out client whose server dies, and pg.Pool listens only on
    // idle ones: without a listener of the pool's own, the event would end the process.
    const slow = createReplicatedPool({
      primary: { config: { connectionString: primary.url } },
      replicas: [{ name: 'replica', config: { connectionString: replica.url } }],
      classifier: await readyClassifier({ readOnlyFunctions: ['pg_sleep', 'pg_is_in_recovery'] }),
      replicaSetOptions: { pollIntervalMs: 0, checkTimeoutMs: 2000 },
    });
    const seen: PoolRouteEvent[] = [];
    slow.on('route', (event: PoolRouteEvent) => seen.push(event));
    try {
      await slow.replicaSet.refresh();
      const session = new SessionContext({ id: 'crash' }, 'read-your-writes');
      // Slow on the replica only, so that the crash lands while the read runs there.
      const read = withSession(session, () =>
        slow.query(
          'SELECT CASE WHEN pg_is_in_recovery() THEN pg_sleep(10) END AS slept, v FROM faults_r WHERE id = 1',
        ),
      );
      const watcher = new pg.Client({ connectionString: replica.url });
      await watcher.connect();
      for (;;) {
        const { rows } = await watcher.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event = 'PgSleep'",
        );
        if (rows[0].n > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await watcher.end();
      expect(seen).toMatchObject([{ target: 'replica', node: 'replica' }]);
      await replica.crash();
      expect((await read).rows[0]?.v).toBe(1);
      expect(seen.at(-1)).toMatchObject({ target: 'leader', reason: 'replica-error' });
    } finally {
      await slow.end();
      await replica.start();
    }
  });
});

describe('a replica that restarts behind the position it had reached (private cluster)', () => {
  it('serves no read below the floor it was chosen for, before the next check', async () => {
    const onReplica = async (sql: string) => {
      const client = new pg.Client({ connectionString: replica.url });
      await client.connect();
      try {
        return (await client.query(sql)).rows;
      } finally {
        await client.end();
      }
    };
    // A restartpoint now: crash recovery starts here, before the write below.
    await onReplica('CHECKPOINT');
    await pool.replicaSet.refresh();
    const session = new SessionContext({ id: 'restart' }, 'read-your-writes');
    await withSession(session, () => pool.query('UPDATE faults_r SET v = 2 WHERE id = 1'));
    expect(await pool.replicaSet.waitFor('replica', session.writeFloor!, 20_000)).toBe(true);
    expect(await withSession(session, readValue)).toBe(2);
    expect(events.at(-1)).toMatchObject({ target: 'replica', node: 'replica' });

    // The replica crashes and comes back from its restartpoint, and (a delay that applies only
    // from the restart on) does not replay the write again: it serves v = 1 while the replica
    // set, between two checks, still has the position it had reached before.
    await onReplica("ALTER SYSTEM SET recovery_min_apply_delay = '1h'");
    await replica.crash();
    await replica.startAcceptingConnections();
    try {
      expect((await onReplica('SELECT v FROM faults_r WHERE id = 1'))[0]?.v).toBe(1);
      expect(await withSession(session, readValue)).toBe(2);
      expect(events.slice(-2)).toMatchObject([
        { target: 'replica', node: 'replica' },
        { target: 'leader', reason: 'replica-error' },
      ]);
    } finally {
      await onReplica('ALTER SYSTEM SET recovery_min_apply_delay = 0');
      await onReplica('SELECT pg_reload_conf()');
      // Streaming again before the next test: a restart waits for it.
      await replica.stop();
      await replica.start();
    }
  });
});
