/** Throwaway Redis servers for the tests. */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { findRedisServer } from './binaries.js';
import { freePort, makeDir, running } from './lifetime.js';
import type { RedisOptions, RedisServer } from './types.js';

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
    ...(options.args ?? []),
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
