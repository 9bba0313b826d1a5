/**
 * Starts real, throwaway servers for the integration tests: PostgreSQL primaries, streaming
 * replicas (one of them delayed so that tests see real lag) and Redis, on free ports on
 * 127.0.0.1 in a temporary directory. Everything started here is stopped by `stop()`, and at
 * the latest when this process exits.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { appendFile, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** A server the harness started; `stop()` and `start()` keep its port and data. */
export interface ServerHandle {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export interface PgServer extends ServerHandle {
  readonly dataDir: string;
  /** Stops the server the way a crash would (`pg_ctl -m immediate`). */
  crash(): Promise<void>;
}

export interface RedisServer extends ServerHandle {
  readonly dataDir: string;
}

export interface Cluster {
  readonly primary: PgServer;
  /** A streaming replica with no delay. */
  readonly replica: PgServer;
  /** A streaming replica that applies commits `replicaDelayMs` late. */
  readonly laggingReplica: PgServer;
  readonly replicaDelayMs: number;
  /** A second, independent primary (for transactions across two databases). */
  readonly primary2: PgServer;
  readonly redis: RedisServer;
  stop(): Promise<void>;
}

export interface PrimaryOptions {
  name?: string;
  /** Extra `postgresql.conf` settings, e.g. `{ max_prepared_transactions: 0 }`. */
  settings?: Record<string, string | number>;
}

export interface ReplicaOptions {
  name?: string;
  /** `recovery_min_apply_delay` in milliseconds; default 0 (no delay). */
  delayMs?: number;
}

export interface RedisOptions {
  name?: string;
  /** Keep data across restarts with an append-only file (`appendfsync always`); default false. */
  appendOnly?: boolean;
}

/** Default delay of the lagging replica: long enough to observe, short enough for fast tests. */
export const DEFAULT_REPLICA_DELAY_MS = 1500;

const PG_SETTINGS: Record<string, string | number> = {
  listen_addresses: "'127.0.0.1'",
  max_connections: 200,
  max_prepared_transactions: 20,
  wal_level: 'replica',
  max_wal_senders: 10,
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

let root: string | undefined;
const running = new Set<{ kill(): void }>();

process.once('exit', () => {
  for (const server of running) server.kill();
  if (root) rmSync(root, { recursive: true, force: true });
});

function harnessRoot(): string {
  root ??= mkdtempSync(join(tmpdir(), 'causeway-test-'));
  return root;
}

let pgBinDir: string | undefined;

/** Finds the PostgreSQL server binaries or fails with what to install. */
export function findPgBinDir(): string {
  if (pgBinDir) return pgBinDir;
  const candidates: string[] = [];
  if (process.env['CAUSEWAY_PG_BINDIR']) candidates.push(process.env['CAUSEWAY_PG_BINDIR']);
  try {
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim());
  } catch {
    // pg_config is optional; fall through to the usual Debian location.
  }
  if (existsSync('/usr/lib/postgresql')) {
    const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(`/usr/lib/postgresql/${v}/bin`);
  }
  const found = candidates.find((dir) =>
    ['initdb', 'pg_ctl', 'pg_basebackup', 'postgres'].every((b) => existsSync(join(dir, b))),
  );
  if (!found) {
    throw new Error(
      'PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) not found. Install them ' +
        '(Debian/Ubuntu: `apt-get install postgresql`), set CAUSEWAY_PG_BINDIR, or point the ' +
        'tests at running servers with the CAUSEWAY_TEST_* variables (see README).',
    );
  }
  pgBinDir = found;
  return found;
}

function findRedisServer(): string {
  const result = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (result.error || result.status !== 0) {
    throw new Error(
      'redis-server not found. Install it (Debian/Ubuntu: `apt-get install redis-server`) or ' +
        'set CAUSEWAY_TEST_REDIS_URL to a running Redis.',
    );
  }
  return 'redis-server';
}

const isRoot = process.getuid?.() === 0;

/** Owner for PostgreSQL files: the `postgres` user when we are root (initdb refuses root). */
function pgOwner(): { uid: number; gid: number } | undefined {
  if (!isRoot) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  if (!Number.isInteger(uid)) throw new Error('running as root needs a `postgres` user');
  return { uid, gid };
}

function runPg(binary: string, args: string[]): Promise<string> {
  const path = join(findPgBinDir(), binary);
  const [command, argv] = isRoot
    ? ['runuser', ['-u', 'postgres', '--', path, ...args]]
    : [path, args];
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(output);
      else reject(new Error(`${binary} ${args.join(' ')} exited with ${code}:\n${output}`));
    });
  });
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

async function makeDir(name: string): Promise<string> {
  const dir = join(harnessRoot(), `${name}-${Math.random().toString(36).slice(2, 8)}`);
  await mkdir(dir, { mode: 0o700 });
  const owner = pgOwner();
  if (owner) {
    chownSync(harnessRoot(), owner.uid, owner.gid);
    chownSync(dir, owner.uid, owner.gid);
  }
  return dir;
}

function confLines(settings: Record<string, string | number>): string {
  return `${Object.entries(settings)
    .map(([k, v]) => `${k} = ${v}`)
    .join('\n')}\n`;
}

async function waitForPg(url: string, timeoutMs = 30_000): Promise<void> {
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

function pgHandle(name: string, dataDir: string, port: number): PgServer {
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
  return {
    name,
    url,
    port,
    dataDir,
    async start() {
      await runPg('pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start']);
      running.add(entry);
      await waitForPg(url);
    },
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
): Promise<PgServer> {
  const name = options.name ?? 'replica';
  const dataDir = await makeDir(name);
  const port = await freePort();
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
  const server = pgHandle(name, dataDir, port);
  await server.start();
  await waitForStreaming(server.url);
  return server;
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

/** Starts a Redis server on a free port; without `appendOnly` it keeps nothing across restarts. */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const binary = findRedisServer();
  const name = options.name ?? 'redis';
  const dataDir = await makeDir(name);
  const port = await freePort();
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dataDir,
    '--save',
    '',
    '--daemonize',
    'no',
    ...(options.appendOnly
      ? ['--appendonly', 'yes', '--appendfsync', 'always']
      : ['--appendonly', 'no']),
  ];
  let child: ChildProcess | undefined;
  const entry = { kill: () => child?.kill('SIGKILL') };
  const url = `redis://127.0.0.1:${port}`;
  const server: RedisServer = {
    name,
    url,
    port,
    dataDir,
    async start() {
      child = spawn(binary, args, { stdio: 'ignore' });
      running.add(entry);
      await waitForRedis(port);
    },
    async stop() {
      const current = child;
      if (!current || current.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        current.once('exit', () => resolve());
        current.kill('SIGTERM');
      });
      running.delete(entry);
    },
  };
  await server.start();
  return server;
}

async function waitForRedis(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      import('node:net').then(({ connect }) => {
        const socket = connect(port, '127.0.0.1');
        socket.once('connect', () => socket.write('PING\r\n'));
        socket.once('data', (d) => {
          socket.destroy();
          resolve(d.toString().startsWith('+PONG'));
        });
        socket.once('error', () => resolve(false));
      });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis on port ${port} did not start`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts the whole test cluster: primary, two replicas (one lagging), a second primary, Redis. */
export async function startCluster(options: { replicaDelayMs?: number } = {}): Promise<Cluster> {
  const replicaDelayMs = options.replicaDelayMs ?? DEFAULT_REPLICA_DELAY_MS;
  const [primary, primary2, redis] = await Promise.all([
    startPostgresPrimary({ name: 'primary' }),
    startPostgresPrimary({ name: 'primary2' }),
    startRedis(),
  ]);
  const [replica, laggingReplica] = await Promise.all([
    startReplica(primary, { name: 'replica1' }),
    startReplica(primary, { name: 'replica2', delayMs: replicaDelayMs }),
  ]);
  return {
    primary,
    replica,
    laggingReplica,
    replicaDelayMs,
    primary2,
    redis,
    async stop() {
      await Promise.allSettled([
        replica.stop(),
        laggingReplica.stop(),
        primary.stop(),
        primary2.stop(),
        redis.stop(),
      ]);
      if (root) {
        rmSync(root, { recursive: true, force: true });
        root = undefined;
      }
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
