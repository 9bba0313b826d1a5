/**
 * Starts real, throwaway servers for the integration tests: PostgreSQL primaries, streaming
 * replicas (one of them delayed so that tests see real lag) and Redis, on free ports on
 * 127.0.0.1 in a temporary directory. Everything started here is stopped by `stop()`, and at
 * the latest when this process exits.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { appendFile, mkdir, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
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

/** A streaming replica the harness made; it can also leave and rejoin the primary's stream. */
export interface ReplicaServer extends PgServer {
  /** Ends recovery (`pg_ctl promote`): the node stops replaying the primary and starts a new timeline. */
  promote(): Promise<void>;
  /**
   * Starts the server and returns once it accepts connections, without waiting for it to stream
   * (`start()` waits): a replica whose apply delay holds back its local WAL streams only later.
   */
  startAcceptingConnections(): Promise<void>;
  /**
   * Replaces the data directory with a new `pg_basebackup` of the primary (same port, name and
   * apply delay) and starts it streaming: a promoted node comes back on the primary's timeline.
   */
  rebuild(): Promise<void>;
}

export interface RedisServer extends ServerHandle {
  readonly dataDir: string;
}

export interface Cluster {
  readonly primary: PgServer;
  /** A streaming replica with no delay. */
  readonly replica: ReplicaServer;
  /** A streaming replica that applies commits `replicaDelayMs` late. */
  readonly laggingReplica: ReplicaServer;
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

let root: string | undefined;
const running = new Set<{ kill(): void }>();

/** Stops every server still running, synchronously, and removes the harness root. */
function stopEverythingNow(): void {
  for (const server of running) server.kill();
  running.clear();
  if (root) rmSync(root, { recursive: true, force: true });
  root = undefined;
}

process.once('exit', stopEverythingNow);
// A vitest worker loses its IPC channel when the main process dies (an interrupted run) but
// may go on with its current test for a while: stop its servers at once.
process.once('disconnect', stopEverythingNow);

function harnessRoot(): string {
  if (!root) {
    root = mkdtempSync(join(tmpdir(), 'causeway-test-'));
    startReaper(root);
  }
  return root;
}

/**
 * The reaper (plain CommonJS for `node -e`): once its stdin closes, because the process that
 * started it is gone however it went, it stops every server whose pid file lies under the
 * harness root (PostgreSQL: SIGQUIT, an immediate shutdown; Redis: SIGKILL), waits up to 10 s
 * for them to exit and removes the root. A pid counts only if its working directory is inside
 * the root, so a recycled pid is never signalled.
 */
const REAPER_SCRIPT = `
const fs = require('node:fs');
const path = require('node:path');
const root = fs.realpathSync(process.argv[1]);
const SIGNALS = { 'postmaster.pid': 'SIGQUIT', 'redis.pid': 'SIGKILL' };
function ours(pid) {
  if (!fs.existsSync('/proc/self')) return true;
  try { return fs.readlinkSync('/proc/' + pid + '/cwd').startsWith(root + path.sep); }
  catch { return false; }
}
function alive(pid) {
  try { process.kill(pid, 0); return true; } catch (e) { return e.code === 'EPERM'; }
}
let reaped = false;
function reap() {
  if (reaped) return;
  reaped = true;
  const pids = [];
  let dirs = [];
  try { dirs = fs.readdirSync(root); } catch { process.exit(0); }
  for (const dir of dirs) {
    for (const [file, signal] of Object.entries(SIGNALS)) {
      let pid;
      try { pid = Number(fs.readFileSync(path.join(root, dir, file), 'utf8').split('\\n')[0]); }
      catch { continue; }
      if (!Number.isInteger(pid) || pid <= 0 || !ours(pid)) continue;
      try { process.kill(pid, signal); pids.push(pid); } catch {}
    }
  }
  const deadline = Date.now() + 10000;
  const finish = () => {
    if (pids.some(alive) && Date.now() < deadline) return setTimeout(finish, 100);
    fs.rmSync(root, { recursive: true, force: true, maxRetries: 5 });
    process.exit(0);
  };
  finish();
}
process.stdin.on('end', reap);
process.stdin.on('error', reap);
process.stdin.on('close', reap);
process.stdin.resume();
`;

/**
 * Starts a detached reaper that cleans up \`dir\` after this process ends. \`process.on('exit')\`
 * above covers a normal exit, but not a process killed by a signal: vitest ends its workers
 * that way, and an interrupted run may kill the main process too. The reaper holds the read end
 * of a pipe whose write end only this process has, so the pipe closes whenever we die.
 */
function startReaper(dir: string): void {
  const reaper = spawn(process.execPath, ['-e', REAPER_SCRIPT, dir], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
    env: { PATH: process.env['PATH'] ?? '' },
  });
  reaper.on('error', () => {});
  reaper.unref();
  // Keep the pipe open without keeping this process alive.
  (reaper.stdin as Socket | null)?.unref();
}

let pgBinDir: string | undefined;

/**
 * Finds the PostgreSQL server binaries: `CAUSEWAY_PG_BINDIR`, then `pg_config --bindir`, then
 * `/usr/lib/postgresql/<newest>/bin`; fails with what to install.
 */
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
  pgBinDir = pickPgBinDir(candidates);
  return pgBinDir;
}

const PG_BINARIES = ['initdb', 'pg_ctl', 'pg_basebackup', 'postgres'];

/** The first directory holding every server binary the harness runs, or an error naming them. */
export function pickPgBinDir(candidates: readonly string[]): string {
  const found = candidates.find((dir) => PG_BINARIES.every((b) => existsSync(join(dir, b))));
  if (!found) {
    throw new Error(
      `PostgreSQL server binaries (${PG_BINARIES.join(', ')}) not found in ` +
        `${candidates.length > 0 ? candidates.join(', ') : 'pg_config --bindir or /usr/lib/postgresql/*/bin'}. ` +
        'Install them (Debian/Ubuntu: `apt-get install postgresql`; macOS: `brew install postgresql`), ' +
        'set CAUSEWAY_PG_BINDIR, or point the tests at running servers with the CAUSEWAY_TEST_* ' +
        'variables (see README).',
    );
  }
  return found;
}

/** Checks that `command` runs; fails with what to install. */
export function findRedisServer(command = 'redis-server'): string {
  const result = spawnSync(command, ['--version'], { encoding: 'utf8' });
  if (result.error || result.status !== 0) {
    throw new Error(
      `${command} not found. Install it (Debian/Ubuntu: \`apt-get install redis-server\`; ` +
        'macOS: `brew install redis`) or set CAUSEWAY_TEST_REDIS_URL (with the other ' +
        'CAUSEWAY_TEST_* variables) to use running servers.',
    );
  }
  return command;
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
    // Lets the reaper find the server if this process dies without stopping it.
    '--pidfile',
    join(dataDir, 'redis.pid'),
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

/**
 * Starts the whole test cluster: primary, two replicas (one lagging), a second primary, Redis
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
