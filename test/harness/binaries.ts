/** Finding and running the server binaries: PostgreSQL's and redis-server. */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

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

export const isRoot = process.getuid?.() === 0;

/** Owner for PostgreSQL files: the `postgres` user when we are root (initdb refuses root). */
export function pgOwner(): { uid: number; gid: number } | undefined {
  if (!isRoot) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  if (!Number.isInteger(uid)) throw new Error('running as root needs a `postgres` user');
  return { uid, gid };
}

/** Runs a PostgreSQL binary (as `postgres` when we are root) and resolves to its output. */
export function runPg(binary: string, args: string[]): Promise<string> {
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
