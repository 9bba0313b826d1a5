/**
 * Faults on the run's own cluster (test/harness/cluster.ts), and the heal that puts it back:
 *
 * - `replica-lag`: a replica's `recovery_min_apply_delay` set to 0 (one time in three) or 0.1-5 s
 *   with a reload (it stays until the next change: lag comes and goes under everything else);
 * - `replica-restart`: a replica stopped (`fast`, or `immediate` like a crash), down 0.2-3 s,
 *   started again;
 * - `replica-promote`: a replica promoted (it leaves the primary's stream, new timeline), written
 *   to as a client that failed over to it would (every register moves `DIVERGENT_VERSION_OFFSET`
 *   ahead), then rebuilt with `pg_basebackup` after 0.5-3 s (back on the primary's timeline);
 * - `redis-restart`: Redis stopped and started again after 0.2-3 s;
 * - `participant-restart`: the second primary (a 2PC participant) stopped fast or immediate,
 *   down 0.2-3 s, started again (its prepared transactions survive).
 *
 * Every parameter is drawn from the fault's generator before the first await, so a seed replays
 * the same choices. Faults on one server never overlap (a lock per server).
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { sleep } from '../../src/util/timers.js';
import type { Cluster, PgServer, ReplicaServer } from '../harness/cluster.js';
import type { Fault } from './types.js';

/** The registers the sessions workload keeps; a promoted replica's divergent write bumps them. */
export const REGISTERS_TABLE = 'chaos_registers';
/** How far the promote fault moves every register on the promoted node: unmistakable in a read. */
export const DIVERGENT_VERSION_OFFSET = 1_000_000;

const locks = new Map<string, Promise<unknown>>();

/** Runs `fn` once no other fault holds `server` (by data directory: unique per server). */
function exclusive<T>(server: { dataDir: string }, fn: () => Promise<T>): Promise<T> {
  const previous = locks.get(server.dataDir) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  locks.set(
    server.dataDir,
    run.catch(() => {}),
  );
  return run;
}

function replicas(cluster: Cluster): readonly ReplicaServer[] {
  return [cluster.replica, cluster.laggingReplica];
}

async function query<R>(url: string, sql: string, values: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query(sql, values)).rows as R[];
  } finally {
    await client.end().catch(() => {});
  }
}

/** Sets a replica's apply delay and reloads its configuration. */
async function setApplyDelay(replica: PgServer, delayMs: number): Promise<void> {
  await query(
    replica.url,
    `ALTER SYSTEM SET recovery_min_apply_delay = '${Math.round(delayMs)}ms'`,
  );
  await query(replica.url, 'SELECT pg_reload_conf()');
}

function stopWith(server: PgServer, mode: 'fast' | 'immediate'): Promise<void> {
  return mode === 'fast' ? server.stop() : server.crash();
}

const replicaLag: Fault = {
  kind: 'replica-lag',
  async inject({ cluster, rng, log }) {
    const replica = rng.pick(replicas(cluster));
    const delayMs = rng.chance(1 / 3) ? 0 : rng.int(100, 5000);
    await exclusive(replica, () => setApplyDelay(replica, delayMs));
    log(`${replica.name}: recovery_min_apply_delay = ${delayMs} ms`);
  },
};

const replicaRestart: Fault = {
  kind: 'replica-restart',
  async inject({ cluster, rng, log }) {
    const replica = rng.pick(replicas(cluster));
    const mode = rng.pick(['fast', 'immediate'] as const);
    const downMs = rng.int(200, 3000);
    await exclusive(replica, async () => {
      log(`${replica.name}: stop (${mode}), down ${downMs} ms`);
      await stopWith(replica, mode);
      await sleep(downMs);
      await replica.start();
      log(`${replica.name}: streaming again`);
    });
  },
};

const replicaPromote: Fault = {
  kind: 'replica-promote',
  async inject({ cluster, rng, log }) {
    const replica = rng.pick(replicas(cluster));
    const holdMs = rng.int(500, 3000);
    await exclusive(replica, async () => {
      await replica.promote();
      // A client that failed over to the promoted node writes there: any read the library
      // still sends to it now shows versions the primary never made.
      const [diverged] = await query<{ rows: number }>(
        replica.url,
        `WITH bumped AS (UPDATE ${REGISTERS_TABLE} SET version = version + ${DIVERGENT_VERSION_OFFSET}
           RETURNING 1) SELECT count(*)::int AS rows FROM bumped`,
      ).catch(() => [{ rows: 0 }]); // no table yet: nothing to diverge
      log(
        `${replica.name}: promoted, ${diverged?.rows ?? 0} registers written there; rebuild in ${holdMs} ms`,
      );
      await sleep(holdMs);
      await replica.rebuild();
      log(`${replica.name}: rebuilt from the primary, streaming`);
    });
  },
};

const redisRestart: Fault = {
  kind: 'redis-restart',
  async inject({ cluster, rng, log }) {
    const downMs = rng.int(200, 3000);
    await exclusive(cluster.redis, async () => {
      log(`redis: stop, down ${downMs} ms`);
      await cluster.redis.stop();
      await sleep(downMs);
      await cluster.redis.start();
      log('redis: up');
    });
  },
};

const participantRestart: Fault = {
  kind: 'participant-restart',
  async inject({ cluster, rng, log }) {
    const mode = rng.pick(['fast', 'immediate'] as const);
    const downMs = rng.int(200, 3000);
    const participant = cluster.primary2;
    await exclusive(participant, async () => {
      log(`${participant.name}: stop (${mode}), down ${downMs} ms`);
      await stopWith(participant, mode);
      await sleep(downMs);
      await participant.start();
      log(`${participant.name}: up`);
    });
  },
};

/** The cluster faults, in a fixed order (the driver forks one generator per kind in order). */
export function clusterFaults(): Fault[] {
  return [replicaLag, replicaRestart, replicaPromote, redisRestart, participantRestart];
}

async function accepts(url: string): Promise<boolean> {
  try {
    await query(url, 'SELECT 1');
    return true;
  } catch {
    return false;
  }
}

/**
 * Puts the cluster back: every server running, no replica promoted, apply delays 0, replicas
 * streaming and caught up with the primary, Redis up. Waits for faults still holding a server.
 */
export async function healCluster(cluster: Cluster, log: (line: string) => void): Promise<void> {
  await Promise.all(locks.values());
  for (const server of [cluster.primary, cluster.primary2, ...replicas(cluster)]) {
    await exclusive(server, async () => {
      if (!(await accepts(server.url))) {
        log(`heal: ${server.name} was down, starting it`);
        await server.start();
      }
    });
  }
  for (const replica of replicas(cluster)) {
    await exclusive(replica, async () => {
      const [state] = await query<{ recovering: boolean }>(
        replica.url,
        'SELECT pg_is_in_recovery() AS recovering',
      );
      if (state?.recovering !== true) {
        log(`heal: ${replica.name} was promoted, rebuilding it`);
        await replica.rebuild();
      }
      await setApplyDelay(replica, 0);
    });
  }
  await exclusive(cluster.redis, async () => {
    if (!(await redisAnswers(cluster.redis.url))) {
      log('heal: redis was down, starting it');
      await cluster.redis.start();
    }
  });
  await waitForReplicas(cluster, 60_000);
  log('heal: every server up, apply delays 0, replicas caught up');
}

async function redisAnswers(url: string): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 2000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** Waits until every replica streams and has replayed the primary's WAL up to now. */
export async function waitForReplicas(cluster: Cluster, timeoutMs: number): Promise<void> {
  const [target] = await query<{ lsn: string }>(
    cluster.primary.url,
    'SELECT pg_current_wal_lsn()::text AS lsn',
  );
  const deadline = Date.now() + timeoutMs;
  for (const replica of replicas(cluster)) {
    for (;;) {
      const [state] = await query<{ reached: boolean; streaming: boolean }>(
        replica.url,
        `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS reached,
           coalesce((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false) AS streaming`,
        [target?.lsn],
      );
      if (state?.reached && state.streaming) break;
      if (Date.now() > deadline) {
        throw new Error(
          `${replica.name} did not stream and replay up to ${target?.lsn} within ${timeoutMs} ms`,
        );
      }
      await sleep(50);
    }
  }
}
