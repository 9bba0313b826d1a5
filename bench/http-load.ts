/**
 * HTTP load for the benchmarks that compare servers (bench/middleware.bench.ts,
 * bench/frameworks.bench.ts): each server runs in a child process (so that the load generator
 * does not share its event loop, and a bare server never has AsyncLocalStorage's hooks on),
 * autocannon drives the cases in alternating rounds, and each child reports its own CPU time
 * around each run.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { createRequire } from 'node:module';

/** The part of autocannon's programmatic API used here (the package ships no types). */
type Autocannon = (options: {
  url: string;
  connections: number;
  duration: number;
  headers: Record<string, string>;
}) => Promise<{ requests: { average: number; total: number }; non2xx: number; errors: number }>;

/** What a server child announces once it listens. */
export interface Ready {
  port: number;
  token: string;
}

/** A server child, started by `startServer`. */
export interface ServerChild extends Ready {
  readonly child: ChildProcess;
}

/**
 * In a server child: announces `ready` to the parent, then answers each of its messages with
 * this process's CPU time (CPU per request is the overhead measure that does not depend on how
 * fast the machine's loopback is).
 */
export function serveChild(ready: Ready): void {
  process.send?.(ready);
  process.on('message', () => {
    const { user, system } = process.cpuUsage();
    process.send?.({ cpuMicros: user + system });
  });
}

/** Forks `file` (a benchmark) with `env` added; resolves once it announced its port. */
export async function startServer(file: string, env: Record<string, string>): Promise<ServerChild> {
  const child = fork(file, { env: { ...process.env, ...env } });
  const ready = await new Promise<Ready>((resolve) =>
    child.once('message', (m) => resolve(m as Ready)),
  );
  return { child, ...ready };
}

/** One case of a load run: a server and the headers every request carries. */
export interface LoadCase {
  readonly name: string;
  readonly server: ServerChild;
  readonly headers: Record<string, string>;
}

/** Per case, the requests per second and the server's CPU µs per request of each round. */
export interface LoadResults {
  readonly rates: Map<string, number[]>;
  readonly cpu: Map<string, number[]>;
  /** Best rate over the rounds (the machine is shared: the best round is the least disturbed). */
  rate(name: string): number;
  /** Least CPU per request over the rounds. */
  cpuPerRequest(name: string): number;
}

/** Drives every case for `seconds` with 10 connections, `rounds` times in alternation. */
export async function runLoad(
  cases: readonly LoadCase[],
  rounds: number,
  seconds: number,
): Promise<LoadResults> {
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
  const serverCpuMicros = (child: ChildProcess) =>
    new Promise<number>((resolve) => {
      child.once('message', (m) => resolve((m as { cpuMicros: number }).cpuMicros));
      child.send('cpu');
    });
  const rates = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  const cpu = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const c of cases) {
      const cpuBefore = await serverCpuMicros(c.server.child);
      const result = await autocannon({
        url: `http://127.0.0.1:${c.server.port}/`,
        connections: 10,
        duration: seconds,
        headers: c.headers,
      });
      const used = (await serverCpuMicros(c.server.child)) - cpuBefore;
      if (result.non2xx > 0 || result.errors > 0) throw new Error(`${c.name}: failed requests`);
      rates.get(c.name)!.push(result.requests.average);
      cpu.get(c.name)!.push(used / result.requests.total);
    }
  }
  return {
    rates,
    cpu,
    rate: (name) => Math.max(...rates.get(name)!),
    cpuPerRequest: (name) => Math.min(...cpu.get(name)!),
  };
}
