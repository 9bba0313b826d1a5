import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createReplicatedPool,
  type PoolRouteEvent,
  type ReplicatedPool,
} from '../../../adapters/pg/replicated-pool.js';
import { isCausewayError } from '../../../src/errors.js';
import { SessionContext, withSession } from '../../../src/session/context.js';
import {
  freePort,
  type PgServer,
  startPostgresPrimary,
  startReplica,
} from '../../harness/cluster.js';
import { testEnv } from '../../harness/env.js';
import { demote, inRecovery, promote } from '../../harness/failover.js';

// Servers of this file's own (a primary and two streaming replicas): the tests move the primary.
let a: PgServer;
let b: PgServer;
let c: PgServer;
const pools: ReplicatedPool[] = [];
const TABLE = 'failover_registers';

beforeAll(async () => {
  a = await startPostgresPrimary({ name: 'failover-a' });
  [b, c] = await Promise.all([
    startReplica(a, { name: 'failover-b' }),
    startReplica(a, { name: 'failover-c' }),
  ]);
  const admin = new pg.Client({ connectionString: a.url });
  await admin.connect();
  await admin.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v int NOT NULL)`);
  await admin.end();
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(pools.map((pool) => pool.end()));
  await Promise.allSettled([c, b, a].filter(Boolean).map((server) => server.stop()));
});

function pool(options: Partial<Parameters<typeof createReplicatedPool>[0]>) {
  const created = createReplicatedPool({
    primary: [a.url, b.url],
    replicas: [],
    classifier: { readOnlyFunctions: ['inet_server_port', 'pg_sleep'] },
    ...options,
    replicaSetOptions: {
      checkTimeoutMs: 2000,
      connectTimeoutMs: 5000,
      ...options.replicaSetOptions,
    },
  });
  created.on('error', () => {});
  pools.push(created);
  const events: PoolRouteEvent[] = [];
  created.on('route', (event: PoolRouteEvent) => events.push(event));
  return { pool: created, events };
}

/** A write of `v` to row `id`, answering the port of the node that ran it. */
async function write(on: ReplicatedPool, id: number, v: number): Promise<number> {
  const { rows } = await on.query<{ port: number }>(
    `INSERT INTO ${TABLE} (id, v) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v
     RETURNING inet_server_port() AS port`,
    [id, v],
  );
  return rows[0]!.port;
}

async function read(on: ReplicatedPool, id: number): Promise<{ v: number; port: number }> {
  const { rows } = await on.query<{ v: number; port: number }>(
    `SELECT v, inet_server_port() AS port FROM ${TABLE} WHERE id = $1`,
    [id],
  );
  return rows[0]!;
}

describe('replicas from a function', () => {
  it('adds a replica the function lists and drains one it no longer lists', async () => {
    let listed = [{ name: 'b', config: { connectionString: b.url } }];
    const { pool: routed } = pool({
      primary: { config: { connectionString: a.url } },
      replicas: () => listed,
      readOutsideSession: 'replica',
      replicaSetOptions: { pollIntervalMs: 0 },
    });
    await routed.ready();
    expect(routed.replicaSet.nodeNames).toEqual(['primary', 'b']);
    const port = async () =>
      (await routed.query<{ port: number }>('SELECT inet_server_port() AS port')).rows[0]!.port;
    expect(await port()).toBe(b.port);

    listed = [...listed, { name: 'c', config: { connectionString: c.url } }];
    await routed.ready();
    expect(routed.replicaSet.nodeNames).toEqual(['primary', 'b', 'c']);

    // Reads outside a session take the healthy replicas in turn: of two slow reads, one runs
    // on b. The function stops listing b while it runs: it finishes there, then b's pool ends.
    const bPool = routed.replicaSet.pool('b') as pg.Pool;
    const slow = [0, 1].map(() =>
      routed.query<{ port: number }>('SELECT inet_server_port() AS port FROM pg_sleep(0.5)'),
    );
    await expect.poll(() => bPool.totalCount - bPool.idleCount, { interval: 5 }).toBe(1);
    listed = [{ name: 'c', config: { connectionString: c.url } }];
    await routed.replicaSet.refresh();
    expect(routed.replicaSet.nodeNames).toEqual(['primary', 'c']);
    expect(bPool.ending).toBe(true);
    expect(bPool.ended).toBe(false);
    const ports = (await Promise.all(slow)).map((result) => result.rows[0]!.port);
    expect(ports.sort()).toEqual([b.port, c.port].sort());
    await expect.poll(() => bPool.ended, { timeout: 5000 }).toBe(true);
    for (let i = 0; i < 4; i++) expect(await port()).toBe(c.port);
  }, 60_000);
});

describe('following the primary over a list of candidates', () => {
  it('fails writes fast with NO_PRIMARY during a failover, then writes to the promoted node', async () => {
    const { pool: routed, events } = pool({
      primary: [a.url, b.url],
      replicas: [
        { name: 'a', config: { connectionString: a.url } },
        { name: 'b', config: { connectionString: b.url } },
      ],
    });
    await routed.ready();
    const session = new SessionContext({ id: 'failover' });
    await withSession(session, async () => {
      expect(await write(routed, 1, 1)).toBe(a.port);
      const before = session.floorFor('read-your-writes');
      expect(before?.epoch).toBe(1);

      // The primary goes away (a clean stop: every WAL record reached b first).
      await a.stop();
      let refused: unknown;
      await expect
        .poll(
          async () => {
            refused = await write(routed, 2, 2).then(
              () => undefined,
              (error: unknown) => error,
            );
            return isCausewayError(refused, 'NO_PRIMARY');
          },
          { timeout: 15_000, interval: 50 },
        )
        .toBe(true);
      expect((refused as { details: Record<string, unknown> }).details['executed']).toBe(false);

      await promote(b);
      // The first write accepted after the promotion is on the promoted node.
      let port: number | undefined;
      await expect
        .poll(
          async () => {
            port = await write(routed, 3, 3).catch(() => undefined);
            return port;
          },
          { timeout: 15_000, interval: 50 },
        )
        .toBeDefined();
      expect(port).toBe(b.port);

      // The session's floors re-based on the new timeline: read-your-writes holds.
      expect(session.floorFor('read-your-writes')?.epoch).toBe(2);
      expect(await read(routed, 3)).toMatchObject({ v: 3 });
      expect((await read(routed, 1)).v).toBe(1);

      // The old primary comes back as a standby of the new one: a replica again, on timeline 2.
      await demote(a, b);
      expect(await inRecovery(a.url)).toBe(true);
      expect(await write(routed, 4, 4)).toBe(b.port);
      await expect
        .poll(
          async () => {
            await routed.replicaSet.refresh();
            return routed.replicaSet.snapshot().replicas.find((r) => r.name === 'a')?.healthy;
          },
          { timeout: 15_000, interval: 100 },
        )
        .toBe(true);
      await expect.poll(async () => (await read(routed, 4)).port, { timeout: 15_000 }).toBe(a.port);
      expect((await read(routed, 4)).v).toBe(4);
    });
    expect(events.some((event) => event.target === 'replica' && event.node === 'a')).toBe(true);
  }, 120_000);

  it('turns a write refused as read-only by a demoted primary into NO_PRIMARY and does not retry it', async () => {
    // No background checks: only the refused write tells the pool that the primary moved.
    const { pool: routed } = pool({
      primary: [a.url, b.url],
      replicas: [],
      replicaSetOptions: { pollIntervalMs: 0, failoverPollIntervalMs: 0 },
    });
    const primaryNow = (await inRecovery(a.url)) ? b : a;
    const standbyNow = primaryNow === a ? b : a;
    expect(await write(routed, 10, 1)).toBe(primaryNow.port);

    // A switchover the pool does not see: the primary stops (fast), its standby is promoted,
    // and the old primary restarts as a standby of the new one.
    await primaryNow.stop();
    await promote(standbyNow);
    await demote(primaryNow, standbyNow);
    const refused = await write(routed, 11, 1).then(
      () => undefined,
      (error: unknown) => error,
    );
    // The pool's connections to the old primary were cut by its restart; the retry pg-pool
    // makes is a new connection, to the node the pool still believes primary: read-only.
    expect(isCausewayError(refused, 'NO_PRIMARY'), String(refused)).toBe(true);
    const cause = (refused as Error).cause as { code?: string } | undefined;
    expect(cause?.code).toBe('25006');
    // The write did not run, and the next one goes to the new primary, not the read-only node.
    expect(await write(routed, 11, 2)).toBe(standbyNow.port);
    const { rows } = await routed.query(`SELECT v FROM ${TABLE} WHERE id = 11`);
    expect(rows).toEqual([{ v: 2 }]);
  }, 120_000);
});

describe('a read-only refusal on a primary that is fine', () => {
  it('is passed on as it is, and the pool keeps writing to that primary', async () => {
    const { pool: routed } = pool({ primary: [a.url, b.url], replicas: [] });
    const primary = (await inRecovery(a.url)) ? b : a;
    expect(await write(routed, 40, 1)).toBe(primary.port);
    const client = await routed.connect();
    await client.query('BEGIN READ ONLY');
    const refused = await client.query(`INSERT INTO ${TABLE} (id, v) VALUES (41, 1)`).then(
      () => undefined,
      (error: unknown) => error,
    );
    await client.query('ROLLBACK');
    client.release();
    // The check found the primary still primary: the caller sees PostgreSQL's own error.
    expect(isCausewayError(refused), String(refused)).toBe(false);
    expect((refused as { code?: string }).code).toBe('25006');
    expect(await write(routed, 42, 1)).toBe(primary.port);
  }, 30_000);
});

describe('an old primary left behind', () => {
  it('is never written to again once a candidate is primary on a newer timeline', async () => {
    const { pool: routed } = pool({ primary: [a.url, b.url], replicas: [] });
    await routed.ready();
    const old = (await inRecovery(a.url)) ? b : a;
    const next = old === a ? b : a;
    expect(await write(routed, 20, 1)).toBe(old.port);
    const held = await routed.connect();
    // The standby is promoted while the old primary still runs and accepts writes (a partition,
    // or a failover that did not stop it): two primaries, the newer on a later timeline.
    await promote(next);
    await expect
      .poll(() => write(routed, 21, 1).catch(() => undefined), { timeout: 15_000, interval: 50 })
      .toBe(next.port);
    // A client checked out before the move is cut from the old primary, not left writing there.
    await expect(held.query(`UPDATE ${TABLE} SET v = v + 1 WHERE id = 20`)).rejects.toBeDefined();
    held.release(true);
    for (let i = 0; i < 5; i++) expect(await write(routed, 22 + i, 1)).toBe(next.port);
    await routed.replicaSet.refresh();
    expect(await write(routed, 30, 1)).toBe(next.port);
    const direct = new pg.Client({ connectionString: old.url });
    await direct.connect();
    // Until a check saw the promotion, writes (id 21, retried) still went to the old primary;
    // none after.
    const { rows } = await direct.query(
      `SELECT count(*)::int AS n FROM ${TABLE} WHERE id BETWEEN 22 AND 30`,
    );
    await direct.end();
    expect(rows[0]!.n).toBe(0);
  }, 60_000);
});

describe('an unreachable cluster', () => {
  it("affects only the session's reads on that cluster", async () => {
    const env = testEnv();
    const { pool: reachable, events } = pool({
      primary: { config: { connectionString: env.primaryUrl } },
      replicas: [{ name: 'replica', config: { connectionString: env.replicaUrl } }],
      classifier: {},
    });
    const bogus = `postgres://postgres@127.0.0.1:${await freePort()}/postgres`;
    const { pool: unreachable } = pool({
      primary: [bogus],
      replicas: [{ name: 'gone', config: { connectionString: bogus } }],
      classifier: {},
      replicaSetOptions: { connectTimeoutMs: 500 },
    });
    await reachable.ready();
    const admin = new pg.Client({ connectionString: env.primaryUrl });
    await admin.connect();
    await admin.query('CREATE TABLE IF NOT EXISTS failover_reachable (v int)');
    const session = new SessionContext({ id: 'two-clusters' });
    try {
      await withSession(session, async () => {
        await reachable.query('INSERT INTO failover_reachable VALUES (1)');
        const floor = session.floorFor('read-your-writes');
        expect(floor).toBeDefined();
        const stream = floor!.stream;
        const writeFloor = session.writeFloorOn(stream);
        for (let i = 0; i < 3; i++) {
          // Reads and writes on the unreachable cluster fail at once, typed, never sent.
          const failed = await unreachable.query('SELECT 1').then(
            () => undefined,
            (error: unknown) => error,
          );
          expect(isCausewayError(failed, 'NO_PRIMARY'), String(failed)).toBe(true);
          await expect(unreachable.query('INSERT INTO t VALUES (1)')).rejects.toMatchObject({
            code: 'NO_PRIMARY',
          });
          const { rows } = await reachable.query(
            'SELECT count(*)::int AS n FROM failover_reachable',
          );
          expect(rows[0]!.n).toBeGreaterThan(0);
        }
        // The reachable cluster's floors are untouched by the other's failures.
        expect(session.writeFloorOn(stream)).toEqual(writeFloor);
        expect(session.floorsUncertain).toBe(false);
      });
      // Its reads still go to its replica once it has caught up (its cached position moves at
      // the next check, up to pollIntervalMs later), not all to the leader.
      await expect
        .poll(
          async () => {
            await withSession(session, () =>
              reachable.query('SELECT count(*) FROM failover_reachable'),
            );
            return events.at(-1)?.target;
          },
          { timeout: 10_000, interval: 100 },
        )
        .toBe('replica');
    } finally {
      await admin.query('DROP TABLE IF EXISTS failover_reachable');
      await admin.end();
    }
  }, 60_000);
});
