import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgReplicaSet } from '../../../adapters/pg/replica-set.js';
import {
  createReplicatedPool,
  type PoolRouteEvent,
  type ReplicatedPool,
} from '../../../adapters/pg/replicated-pool.js';
import { SessionContext, withSession } from '../../../src/session/context.js';
import type { Position } from '../../../src/session/position.js';
import { type PgServer, startPostgresPrimary, startReplica } from '../../harness/cluster.js';
import { testEnv } from '../../harness/env.js';

// A private cluster: this file stops a replica, which must never happen to the shared one.
const DELAY_MS = 4000;
let primary: PgServer;
let fast: PgServer;
let slow: PgServer;
let direct: pg.Pool;
let pool: ReplicatedPool;
const events: PoolRouteEvent[] = [];

beforeAll(async () => {
  primary = await startPostgresPrimary({ name: 'route-primary' });
  [fast, slow] = await Promise.all([
    startReplica(primary, { name: 'route-fast' }),
    startReplica(primary, { name: 'route-slow', delayMs: DELAY_MS }),
  ]);
  direct = new pg.Pool({ connectionString: primary.url, max: 2 });
  await direct.query('CREATE TABLE route_m (id int PRIMARY KEY, v int NOT NULL)');
  await direct.query('INSERT INTO route_m VALUES (1, 1)');
  // No background polling: the test decides when the topology is re-read, so the router still
  // believes in the fast replica after it is stopped (as it would between two checks).
  pool = createReplicatedPool({
    primary: { config: { connectionString: primary.url } },
    replicas: [
      { name: 'fast', config: { connectionString: fast.url } },
      { name: 'slow', config: { connectionString: slow.url } },
    ],
    // A generous check timeout: a check slower than the default 100 ms on a loaded machine
    // would mark a replica down, and the sticky-session searches below would find nothing.
    replicaSetOptions: { pollIntervalMs: 0, checkTimeoutMs: 2000 },
  });
  pool.on('route', (event: PoolRouteEvent) => events.push(event));
  const created = await pool.replicaSet.writePosition();
  await reached('fast', created);
  await reached('slow', created);
}, 120_000);

afterAll(async () => {
  await pool?.end();
  await direct?.end();
  await Promise.allSettled([fast?.stop(), slow?.stop()]);
  await primary?.stop();
});

async function reached(node: string, position: Position | undefined): Promise<void> {
  expect(position).toBeDefined();
  expect(await pool.replicaSet.waitFor(node, position!, 20_000)).toBe(true);
}

/** A monotonic session whose sticky replica is `node` right now. */
function sessionOn(node: string, prefix: string): SessionContext {
  for (let i = 0; i < 1000; i++) {
    const candidate = new SessionContext({ id: `${prefix}-${i}` }, 'monotonic');
    if (pool.router.decide(candidate).node === node) return candidate;
  }
  const health = pool.replicaSet.snapshot().replicas.map((r) => `${r.name}: ${r.healthy}`);
  throw new Error(`no session is routed to ${node} (${health.join(', ')})`);
}

/** Polls `check` until it holds (fails the test after 10 s). */
async function until(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const readValue = async () =>
  (await pool.query('SELECT v FROM route_m WHERE id = 1')).rows[0]?.v as number;

describe('monotonic reads across a replica failure (private cluster)', () => {
  it('never reads an older value after its sticky replica stops', async () => {
    // v = 2 reaches the fast replica at once; the slow one keeps v = 1 while its replay is
    // paused (not merely delayed: stopping a server can take longer than any delay on a loaded
    // machine, and the stale read below must stay stale until the test resumes replay).
    const slowAdmin = new pg.Client({ connectionString: slow.url });
    await slowAdmin.connect();
    await slowAdmin.query('SELECT pg_wal_replay_pause()');
    await direct.query('UPDATE route_m SET v = 2 WHERE id = 1');
    const v2 = await pool.replicaSet.writePosition();
    await reached('fast', v2);
    await pool.replicaSet.refresh();
    expect((await slowAdmin.query('SELECT v FROM route_m WHERE id = 1')).rows[0].v).toBe(1);

    // A session whose sticky replica is the fast one.
    const session = sessionOn('fast', 'm');

    await withSession(session, async () => {
      expect(await readValue()).toBe(2);
      expect(events.at(-1)).toMatchObject({ target: 'replica', node: 'fast', reason: 'sticky' });
      expect(session.readFloor!.lsn >= v2!.lsn).toBe(true);

      await fast.stop();
      // The router still believes in the fast replica: each read fails there (a refused
      // connection) and is retried on the leader; the third loss within the window (the default
      // failureThreshold) takes the replica out of routing.
      const fastHealthy = () =>
        pool.replicaSet.snapshot().replicas.find((r) => r.name === 'fast')?.healthy;
      for (let failure = 1; failure <= 3; failure++) {
        expect(fastHealthy()).toBe(true);
        expect(await readValue()).toBe(2);
        expect(events.slice(-2)).toMatchObject([
          { target: 'replica', node: 'fast' },
          { target: 'leader', reason: 'replica-error' },
        ]);
      }
      expect(fastHealthy()).toBe(false);

      // The slow replica is healthy but behind the read floor: the leader again, never v = 1.
      expect(await readValue()).toBe(2);
      expect(events.at(-1)).toMatchObject({
        target: 'leader',
        reason: 'read-floor-not-replicated',
      });
    });

    // Without a floor, the same topology serves the stale value: the floor is what protects.
    const fresh = new SessionContext({ id: 'no-floor' }, 'monotonic');
    expect(await withSession(fresh, readValue)).toBe(1);
    expect(events.at(-1)).toMatchObject({ target: 'replica', node: 'slow' });

    // Once the slow replica has the floor, the session reads there, and sees v = 2.
    await slowAdmin.query('SELECT pg_wal_replay_resume()');
    await slowAdmin.end();
    await reached('slow', session.readFloor);
    expect(await withSession(session, readValue)).toBe(2);
    expect(events.at(-1)).toMatchObject({ target: 'replica', node: 'slow' });
  });
});

describe('PgReplicaSet against a private cluster', () => {
  it('reports stream, timeline, positions, lag and health', async () => {
    await fast.start();
    const set = new PgReplicaSet({
      primary: primary.url,
      replicas: [
        { name: 'fast', config: fast.url },
        { name: 'slow', config: slow.url },
      ],
      pollIntervalMs: 0,
      checkTimeoutMs: 2000,
    });
    try {
      await set.refresh();
      const { rows } = await direct.query(
        'SELECT system_identifier::text AS id FROM pg_control_system()',
      );
      const { leader, replicas } = set.snapshot();
      expect(leader.position).toMatchObject({ stream: rows[0].id, epoch: 1 });
      for (const replica of replicas) {
        expect(replica.healthy).toBe(true);
        expect(replica.position).toMatchObject({ stream: rows[0].id, epoch: 1 });
      }

      // A write: the fast replica has it almost at once, the slow one DELAY_MS later.
      await direct.query('UPDATE route_m SET v = v + 1 WHERE id = 1');
      const written = await set.writePosition();
      expect(await set.waitFor('fast', written!, 5000)).toBe(true);
      expect(await set.waitFor('slow', written!, 100)).toBe(false);
      expect(await set.waitFor('slow', { ...written!, epoch: 2 }, 5000)).toBe(false);
      // Once the slow replica has received the WAL it has not applied, it lags in time too.
      const slowStatus = () => set.snapshot().replicas.find((r) => r.name === 'slow')!;
      await until(async () => {
        await set.refresh();
        return (slowStatus().lagMs ?? 0) > 0;
      });
      expect(slowStatus().lagBytes! > 0n).toBe(true);
      expect(slowStatus().healthy).toBe(true); // within the default limits

      // With no lag allowed at all, the slow replica is unhealthy while WAL is pending.
      const strict = new PgReplicaSet({
        primary: primary.url,
        replicas: [{ name: 'slow', config: slow.url }],
        pollIntervalMs: 0,
        maxLagMs: 0,
        maxLagBytes: 0,
      });
      await direct.query('UPDATE route_m SET v = v + 1 WHERE id = 1');
      await until(async () => {
        await strict.refresh();
        return !strict.snapshot().replicas[0]!.healthy;
      });
      await strict.close();

      // A stopped replica is unhealthy after the next check, and healthy again after restart.
      await fast.stop();
      await set.refresh();
      expect(set.snapshot().replicas.find((r) => r.name === 'fast')!.healthy).toBe(false);
      // A restarted replica counts once it replays again (its first check may come too early).
      await fast.start();
      await until(async () => {
        await set.refresh();
        return set.snapshot().replicas.find((r) => r.name === 'fast')!.healthy;
      });
    } finally {
      await set.close();
    }
  });

  it('refuses a node of another cluster or one that is not a replica', async () => {
    const env = testEnv();
    const set = new PgReplicaSet({
      primary: primary.url,
      replicas: [
        { name: 'foreign', config: env.replicaUrl },
        { name: 'not-a-replica', config: env.primary2Url },
      ],
      pollIntervalMs: 0,
      checkTimeoutMs: 2000,
    });
    try {
      await set.refresh();
      expect(set.snapshot().replicas.map((r) => [r.name, r.healthy])).toEqual([
        ['foreign', false],
        ['not-a-replica', false],
      ]);
    } finally {
      await set.close();
    }
  });
});

describe('a sticky replica that falls behind (private cluster)', () => {
  it('is skipped while it is behind the read floor', async () => {
    // The fast replica is back since the test above.
    await until(async () => {
      await pool.replicaSet.refresh();
      return pool.replicaSet.snapshot().replicas.every((replica) => replica.healthy);
    });
    const session = sessionOn('slow', 'behind');
    await direct.query('UPDATE route_m SET v = 100 WHERE id = 1');
    const written = await pool.replicaSet.writePosition();
    await reached('fast', written);
    // The session has seen v = 100 (say, in an earlier request): its floor says so.
    session.noteRead(written!);
    expect(await withSession(session, readValue)).toBe(100);
    expect(events.at(-1)).toMatchObject({ target: 'replica', node: 'fast', reason: 'caught-up' });
  });
});
