/**
 * Where the harness keeps its servers and how they end: one temporary root directory, the set of
 * running servers, stopping them when this process exits, and a detached reaper that cleans up
 * when it is killed.
 */
import { spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pgOwner } from './binaries.js';

let root: string | undefined;
export const running = new Set<{ kill(): void }>();

/** Stops every server still running, synchronously, and removes the harness root. */
function stopEverythingNow(): void {
  for (const server of running) server.kill();
  running.clear();
  removeHarnessRoot();
}

/** Removes the harness root and everything in it (its servers must be stopped). */
export function removeHarnessRoot(): void {
  if (root) rmSync(root, { recursive: true, force: true });
  root = undefined;
}

process.once('exit', stopEverythingNow);
// A vitest worker loses its IPC channel when the main process dies (an interrupted run) but
// may go on with its current test for a while: stop its servers at once.
process.once('disconnect', stopEverythingNow);

export function harnessRoot(): string {
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

/** A fresh directory under the harness root (owned by `postgres` when we are root). */
export async function makeDir(name: string): Promise<string> {
  const dir = join(harnessRoot(), `${name}-${Math.random().toString(36).slice(2, 8)}`);
  await mkdir(dir, { mode: 0o700 });
  const owner = pgOwner();
  if (owner) {
    chownSync(harnessRoot(), owner.uid, owner.gid);
    chownSync(dir, owner.uid, owner.gid);
  }
  return dir;
}
