/**
 * Starts real, throwaway servers for the integration tests: PostgreSQL primaries, streaming
 * replicas (one of them delayed so that tests see real lag) and Redis, on free ports on
 * 127.0.0.1 in a temporary directory. Everything started here is stopped by `stop()`, and at
 * the latest when this process exits.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, writeFileSync } from 'node:fs';
import { appendFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { findPgBinDir, isRoot, pgOwner, runPg } from './binaries.js';
import { freePort, makeDir, removeHarnessRoot, running } from './lifetime.js';
import { startRedis } from './redis.js';
import type {
  Cluster,
  PgServer,
  PrimaryOptions,
  RedisOptions,
  ReplicaOptions,
  ReplicaServer,
} from './types.js';

export { findPgBinDir, findRedisServer, pickPgBinDir } from './binaries.js';
export { freePort } from './lifetime.js';
export { startRedis } from './redis.js';
export type {
  Cluster,
  PgServer,
  PrimaryOptions,
  RedisOptions,
  RedisServer,
  ReplicaOptions,
  ReplicaServer,
  ServerHandle,
} from './types.js';

/** Default delay of the lagging replica: long enough to observe, short enough for fast tests. */
export const DEFAULT_REPLICA_DELAY_MS = 1500;

const PG_SETTINGS: Record<string, string | number> = {
  listen_addresses: "'127.0.0.1'",
  max_connections: 200,
  max_prepared_transactions: 20,
  // Logical, for the near cache's replication slots (streaming replicas work the same).
  wal_level: 'logical',
  max_wal_senders: 20,
  max_replication_slots: 20,
  wal_keep_size: '256MB',
  hot_standby: 'on',
  hot_standby_feedback: 'on',
  // Throwaway servers: durability against OS crashes is not needed (a killed process is fine).
  fsync: 'off',
  full_page_writes: 'off',
  shared_buffers: '32MB',
  wal_receiver_status_interval: '1s',
  logging_collector: 'off',
};

function confLines(settings: Record<string, string | number>): string {
  return `${Object.entries(settings)
    .map(([k, v]) => `${k} = ${v}`)
    .join('\n')}\n`;
}

async function waitForPg(url: string): Promise<void> {
  const timeoutMs = 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await client.end().catch(() => {});
    }
  }
}

/** `ready` runs after every start: replicas wait there until they stream again. */
function pgHandle(
  name: string,
  dataDir: string,
  port: number,
  ready: (url: string) => Promise<void> = waitForPg,
): PgServer & { startUntil(until: (url: string) => Promise<void>): Promise<void> } {
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const logFile = join(dataDir, 'server.log');
  const entry = {
    kill: () => {
      const path = join(findPgBinDir(), 'pg_ctl');
      const args = ['-D', dataDir, '-m', 'immediate', '-w', 'stop'];
      if (isRoot) spawnSync('runuser', ['-u', 'postgres', '--', path, ...args]);
      else spawnSync(path, args);
    },
  };
  const stopWith = async (mode: 'fast' | 'immediate') => {
    await runPg('pg_ctl', ['-D', dataDir, '-m', mode, '-w', 'stop']);
    running.delete(entry);
  };
  const startUntil = async (until: (url: string) => Promise<void>) => {
    await runPg('pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start']);
    running.add(entry);
    await until(url);
  };
  return {
    name,
    url,
    port,
    dataDir,
    start: () => startUntil(ready),
    startUntil,
    stop: () => stopWith('fast'),
    crash: () => stopWith('immediate'),
  };
}

/** Starts a new PostgreSQL primary (initdb, trust auth on 127.0.0.1, replication allowed). */
export async function startPostgresPrimary(options: PrimaryOptions = {}): Promise<PgServer> {
  const name = options.name ?? 'primary';
  const dataDir = await makeDir(name);
  const port = await freePort();
  await runPg('initdb', [
    '-D',
    dataDir,
    '-U',
    'postgres',
    '--auth=trust',
    '--encoding=UTF8',
    '--locale=C',
    '--no-sync',
  ]);
  await appendFile(
    join(dataDir, 'postgresql.conf'),
    confLines({
      ...PG_SETTINGS,
      port,
      unix_socket_directories: `'${dataDir}'`,
      ...options.settings,
    }),
  );
  const server = pgHandle(name, dataDir, port);
  await server.start();
  return server;
}

/** Makes a streaming replica of `primary` with `pg_basebackup -R` and starts it. */
export async function startReplica(
  primary: PgServer,
  options: ReplicaOptions = {},
): Promise<ReplicaServer> {
  const name = options.name ?? 'replica';
  const dataDir = await makeDir(name);
  const port = await freePort();
  const baseBackup = async () => {
    await runPg('pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(primary.port),
      '-U',
      'postgres',
      '-D',
      dataDir,
      '-R',
      '-X',
      'stream',
      '-c',
      'fast',
      '--no-sync',
    ]);
    // postgresql.auto.conf wins over the postgresql.conf copied from the primary.
    await appendFile(
      join(dataDir, 'postgresql.auto.conf'),
      confLines({
        port,
        unix_socket_directories: `'${dataDir}'`,
        recovery_min_apply_delay: `'${options.delayMs ?? 0}ms'`,
        primary_conninfo: `'host=127.0.0.1 port=${primary.port} user=postgres application_name=${name}'`,
      }),
    );
  };
  await baseBackup();
  const server = pgHandle(name, dataDir, port, async (url) => {
    await waitForPg(url);
    await waitForStreaming(url);
  });
  await server.start();
  const { startUntil, ...handle } = server;
  return {
    ...handle,
    startAcceptingConnections: () => startUntil(waitForPg),
    promote: async () => {
      await runPg('pg_ctl', ['-D', dataDir, '-w', '-t', '60', 'promote']);
    },
    async rebuild() {
      // Stopped already (a fault may have left it down) is fine: the directory goes anyway.
      await server.crash().catch(() => {});
      await rm(dataDir, { recursive: true, force: true });
      await mkdir(dataDir, { mode: 0o700 });
      const owner = pgOwner();
      if (owner) chownSync(dataDir, owner.uid, owner.gid);
      await baseBackup();
      await server.start();
    },
  };
}

async function waitForStreaming(url: string, timeoutMs = 30_000): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await client.query<{ status: string }>(
        'SELECT status FROM pg_stat_wal_receiver',
      );
      if (rows[0]?.status === 'streaming') return;
      if (Date.now() > deadline) throw new Error(`replica at ${url} is not streaming`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await client.end();
  }
}

/**
 * Starts the whole test cluster: primary, two replicas (one lagging), a second primary with a
 * lagging replica, Redis
 * (`redis` options for it, e.g. `{ appendOnly: true }`; default: no persistence).
 */
export async function startCluster(
  options: { replicaDelayMs?: number; redis?: RedisOptions } = {},
): Promise<Cluster> {
  const replicaDelayMs = options.replicaDelayMs ?? DEFAULT_REPLICA_DELAY_MS;
  const [primary, primary2, redis] = await Promise.all([
    startPostgresPrimary({ name: 'primary' }),
    startPostgresPrimary({ name: 'primary2' }),
    startRedis(options.redis),
  ]);
  const [replica, laggingReplica, primary2Replica] = await Promise.all([
    startReplica(primary, { name: 'replica1' }),
    startReplica(primary, { name: 'replica2', delayMs: replicaDelayMs }),
    startReplica(primary2, { name: 'primary2-replica', delayMs: replicaDelayMs }),
  ]);
  return {
    primary,
    replica,
    laggingReplica,
    replicaDelayMs,
    primary2,
    primary2Replica,
    redis,
    async stop() {
      await Promise.allSettled([
        replica.stop(),
        laggingReplica.stop(),
        primary2Replica.stop(),
        primary.stop(),
        primary2.stop(),
        redis.stop(),
      ]);
      removeHarnessRoot();
    },
  };
}

/** The environment variables that hand a cluster to the tests (see `test/harness/env.ts`). */
export function clusterEnv(cluster: Cluster): Record<string, string> {
  return {
    CAUSEWAY_TEST_PRIMARY_URL: cluster.primary.url,
    CAUSEWAY_TEST_REPLICA_URL: cluster.replica.url,
    CAUSEWAY_TEST_LAGGING_REPLICA_URL: cluster.laggingReplica.url,
    CAUSEWAY_TEST_REPLICA_DELAY_MS: String(cluster.replicaDelayMs),
    CAUSEWAY_TEST_PRIMARY2_URL: cluster.primary2.url,
    CAUSEWAY_TEST_PRIMARY2_REPLICA_URL: cluster.primary2Replica.url,
    CAUSEWAY_TEST_REDIS_URL: cluster.redis.url,
  };
}

/** Writes `KEY=value` lines that `set -a; . file; set +a` loads into a shell. */
export function writeEnvFile(path: string, env: Record<string, string>): void {
  writeFileSync(
    path,
    Object.entries(env)
      .map(([k, v]) => `${k}=${v}\n`)
      .join(''),
  );
}
