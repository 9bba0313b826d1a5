import { spawn } from 'node:child_process';

/** How a child process ended, with what it printed. */
export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunTsxOptions {
  /** Variables added to this process's environment for the child; default: none. */
  readonly env?: NodeJS.ProcessEnv;
  /** The child's working directory; default: this process's. */
  readonly cwd?: string;
  /** Kill the child (SIGKILL) if it has not exited after this many milliseconds; default: never. */
  readonly timeoutMs?: number;
}

/**
 * Runs a TypeScript file in a child Node (through tsx), stdin closed, and resolves once it has
 * exited and its stdout and stderr have ended ('close', not 'exit': output written just before
 * the exit may still be on its way).
 */
export function runTsx(
  file: string,
  args: readonly string[] = [],
  { env = {}, cwd, timeoutMs }: RunTsxOptions = {},
): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const killer =
      timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
