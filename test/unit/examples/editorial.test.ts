import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { expectCausewayHeld, MAIN, ROOT, runDemo } from './report.js';

/** Resolves with the connection error on 127.0.0.1:`port`, or undefined if something answers. */
function connectError(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code));
  });
}

/** True while any process of group `pgid` is alive. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

// `npm run demo` is the README's quick start: it must keep working and keep telling the truth.
describe('the editorial demo on the memory adapters', () => {
  it('walks through with --once: anomalies without Causeway, none with it, then exits by itself', async () => {
    // A shorter lag than the default keeps the test quick; the scenes wait for replica states.
    const run = await runDemo(['--once', '--port', '0', '--lag-ms', '800']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('replica-2 800 ms late');
    expectCausewayHeld(run.stdout);
  }, 60_000);

  it('npm run demo: walks through, keeps serving, and Ctrl-C stops every process it started', async () => {
    // Its own process group, as a terminal starts it: Ctrl-C signals the whole group.
    const child = spawn('npm', ['run', 'demo', '--', '--port', '0'], { cwd: ROOT, detached: true });
    const output = collect(child);
    const pgid = child.pid!;
    try {
      await output.waitFor('Ctrl-C stops it.');
      const port = portOf(output.stdout);
      expect((await fetch(`http://127.0.0.1:${port}/articles`)).status).toBe(200);
      expectCausewayHeld(output.stdout);

      process.kill(-pgid, 'SIGINT');
      // npm itself ends by the signal, as it does for every script; `close` waits for the
      // demo too, which holds the same stdout.
      await output.closed;
      expect(output.stdout).toMatch(/Stopping\.\.\.\nStopped\.\n$/);
      expect(output.stderr).toBe('');
      expect(groupAlive(pgid)).toBe(false);
      expect(await connectError(port)).toBe('ECONNREFUSED');
    } finally {
      if (groupAlive(pgid)) process.kill(-pgid, 'SIGKILL');
    }
  }, 60_000);

  it('exits with code 0 on SIGINT after serving requests, closing everything it opened', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', MAIN, '--serve-only', '--port', '0'],
      {
        cwd: ROOT,
      },
    );
    const output = collect(child);
    try {
      await output.waitFor('Ctrl-C stops it.');
      const origin = `http://127.0.0.1:${portOf(output.stdout)}`;
      const headers = { 'x-user': 'ann', 'content-type': 'application/json' };
      const body = JSON.stringify({ title: 'Hello', body: 'First post' });
      const saved = await fetch(`${origin}/articles/hello`, { method: 'PUT', headers, body });
      expect(saved.status).toBe(200);
      const preview = await fetch(`${origin}/articles/hello/preview`, { headers });
      expect(await preview.json()).toMatchObject({ article: { version: 1 } });

      child.kill('SIGINT');
      const [code, signal] = await output.closed;
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      expect(output.stderr).toBe('');
      expect(await connectError(portOf(output.stdout))).toBe('ECONNREFUSED');
    } finally {
      child.kill('SIGKILL');
    }
  }, 30_000);
});

/** Collects a child's output; `waitFor(text)` resolves once stdout contains it. */
function collect(child: ChildProcessWithoutNullStreams) {
  const output = {
    stdout: '',
    stderr: '',
    closed: new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.on('close', (code, signal) => resolve([code, signal])),
    ),
    waitFor(text: string): Promise<void> {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (output.stdout.includes(text)) resolve();
        };
        child.stdout.on('data', check);
        check();
        output.closed.then(() =>
          reject(new Error(`exited before "${text}":\n${output.stdout}\n${output.stderr}`)),
        );
      });
    },
  };
  child.stdout.on('data', (chunk) => {
    output.stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    output.stderr += chunk;
  });
  return output;
}

function portOf(stdout: string): number {
  const port = /The site is running: http:\/\/127\.0\.0\.1:(\d+)\//.exec(stdout)?.[1];
  if (port === undefined) throw new Error(`no URL in:\n${stdout}`);
  return Number(port);
}
