/**
 * Child processes of the chaos workloads: a TypeScript script run with `node --import tsx`,
 * JSON events one per line on its stdout, JSON commands one per line on its stdin. A child
 * exits when its stdin closes (its parent is gone, however it ended), and every child still
 * running is SIGKILLed when this process exits.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** How a child ended. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface ChildHandle<Command> {
  readonly pid: number;
  /** Settles once the process has exited. */
  readonly exited: Promise<ChildExit>;
  /** True once the child reported `{ t: 'ready' }`; false if it exited first. */
  readonly ready: Promise<boolean>;
  /** True until the process has exited. */
  readonly alive: boolean;
  /** Writes one command line; ignored once the child is gone. */
  send(command: Command): void;
  kill(signal?: NodeJS.Signals): void;
  /** The last few kilobytes the child wrote to stderr (for a failed run's history). */
  stderrTail(): string;
}

const STDERR_TAIL_CHARS = 4_000;
const live = new Set<ChildProcess>();

process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/**
 * Starts `script` with `args`; `onEvent` gets each stdout line parsed as JSON (a line that is
 * not JSON is passed as `{ t: 'output', line }`). The child announces that it runs with
 * `{ t: 'ready' }`.
 */
export function spawnChild<Command>(
  script: string,
  args: readonly string[],
  onEvent: (event: unknown) => void,
): ChildHandle<Command> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  live.add(child);
  let alive = true;
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-STDERR_TAIL_CHARS);
  });
  // A write to a child that just died must not crash the parent.
  child.stdin!.on('error', () => {});
  let markReady!: (ran: boolean) => void;
  const ready = new Promise<boolean>((resolve) => {
    markReady = resolve;
  });
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (line) => {
    let event: unknown;
    try {
      event = JSON.parse(line);
    } catch {
      event = { t: 'output', line };
    }
    if ((event as { t?: unknown }).t === 'ready') markReady(true);
    onEvent(event);
  });
  // Resolves after the last stdout line was delivered: the exit event can come before it.
  const stdoutClosed = new Promise<void>((resolve) => lines.once('close', resolve));
  const exited = new Promise<ChildExit>((resolve) => {
    child.once('exit', (code, signal) => {
      alive = false;
      live.delete(child);
      void stdoutClosed.then(() => resolve({ code, signal }));
    });
    child.once('error', () => {
      alive = false;
      live.delete(child);
      resolve({ code: null, signal: null });
    });
  });
  void exited.then(() => markReady(false));
  return {
    pid: child.pid ?? -1,
    exited,
    ready,
    get alive() {
      return alive;
    },
    send(command) {
      if (alive && child.stdin!.writable) child.stdin!.write(`${JSON.stringify(command)}\n`);
    },
    kill(signal = 'SIGKILL') {
      if (alive) child.kill(signal);
    },
    stderrTail: () => stderr,
  };
}

/**
 * Pauses process `pid` for `ms` milliseconds with SIGSTOP, then SIGCONT, and resolves after.
 * The resume is done by a detached shell, so the child is resumed even if this process dies
 * during the pause (a stopped child whose parent is gone would otherwise stay stopped).
 */
export function pauseProcess(pid: number, ms: number): Promise<void> {
  const seconds = (ms / 1000).toFixed(3);
  const pauser = spawn('sh', ['-c', `kill -STOP ${pid} && sleep ${seconds}; kill -CONT ${pid}`], {
    detached: true,
    stdio: 'ignore',
  });
  return new Promise((resolve) => {
    pauser.once('exit', () => resolve());
    pauser.once('error', () => resolve());
  });
}
