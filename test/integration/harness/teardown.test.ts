import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';

/** True while something accepts connections on the port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('harness teardown', () => {
  it('stops the servers and removes their files when the process that started them is killed', async () => {
    const fixture = join(import.meta.dirname, 'fixtures', 'start-and-hang.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`fixture exited with ${code}`)));
    });
    const { dirs, ports } = JSON.parse(line) as { dirs: string[]; ports: number[] };
    for (const port of ports) expect(await listening(port)).toBe(true);

    // SIGKILL: no exit handler runs, so only the detached reaper can clean up.
    child.kill('SIGKILL');
    for (const port of ports) {
      await expect.poll(() => listening(port), { timeout: 15_000, interval: 100 }).toBe(false);
    }
    const root = dirname(dirs[0]!);
    await expect.poll(() => existsSync(root), { timeout: 15_000, interval: 100 }).toBe(false);
  });
});
