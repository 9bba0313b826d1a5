/**
 * Overhead of the `consistency()` middleware: the same Express app with one trivial JSON route,
 * without and with the middleware (and with a client that sends a session token back), driven
 * by autocannon on 127.0.0.1 in alternating rounds. Each app runs in its own child process, so
 * the load generator does not share its event loop and the bare app never has
 * AsyncLocalStorage's hooks enabled (the middleware turns them on process-wide; so does
 * OpenTelemetry's context manager, which the third app has on as a reference).
 * Run: npx tsx bench/middleware.bench.ts   (BENCH_SECONDS=5 per round, BENCH_ROUNDS=4)
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { type ChildProcess, fork } from 'node:child_process';
import { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { Socket } from 'node:net';
import express, { type Request, type Response } from 'express';
import { MemoryReplicaSet } from '../adapters/memory/replica-set.js';
import { type ConsistencyRequest, consistency } from '../src/express.js';
import { markdownTable, opsPerSecond, writeResults } from './util.js';

/** The part of autocannon's programmatic API used here (the package ships no types). */
type Autocannon = (options: {
  url: string;
  connections: number;
  duration: number;
  headers: Record<string, string>;
}) => Promise<{ requests: { average: number; total: number }; non2xx: number; errors: number }>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const SECRET = 'bench-secret-that-is-at-least-32-chars';
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 5);
// Rounds alternate the cases; the best round of each counts (this runs on shared machines).
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 4);

type AppKind = 'bare' | 'bare-als' | 'causeway';
interface Ready {
  port: number;
  token: string;
}

const role = process.env['BENCH_APP'] as AppKind | undefined;
if (role !== undefined) {
  const app = express();
  const db = new MemoryReplicaSet({ replicas: 2 });
  const c = consistency({ secret: SECRET, replicaSet: db });
  if (role === 'causeway') app.use(c);
  if (role === 'bare-als') new AsyncLocalStorage().enterWith({}); // hooks on, as with OTel
  app.get('/', (_req: Request, res: Response) => {
    res.json({ hello: 'world' });
  });
  // A returning client's token: both floors set, verified (HMAC) on every request.
  const floor = db.write('k', 'v');
  const token = c.issue({ id: 'bench-session-01', writeFloor: floor, readFloor: floor });
  const server = app.listen(0, '127.0.0.1', () => {
    process.send?.({ port: (server.address() as AddressInfo).port, token } satisfies Ready);
  });
  // The parent asks for this process's CPU time around each run: CPU per request is the
  // overhead measure that does not depend on how fast the machine's loopback is.
  process.on('message', () => {
    const { user, system } = process.cpuUsage();
    process.send?.({ cpuMicros: user + system });
  });
} else {
  const start = async (kind: AppKind) => {
    const child = fork(import.meta.filename, { env: { ...process.env, BENCH_APP: kind } });
    const ready = await new Promise<Ready>((resolve) =>
      child.once('message', (m) => resolve(m as Ready)),
    );
    return { child, ...ready };
  };
  const bare = await start('bare');
  const bareAls = await start('bare-als');
  const causeway = await start('causeway');
  const children = [bare.child, bareAls.child, causeway.child];
  const withToken = { 'causeway-session': causeway.token };

  const cases: {
    name: string;
    child: ChildProcess;
    port: number;
    headers: Record<string, string>;
  }[] = [
    // Every request carries a header of the token's size (ignored where it means nothing), so
    // the cases differ only in what the server does with it.
    { name: 'bare Express', child: bare.child, port: bare.port, headers: withToken },
    {
      name: 'bare Express, AsyncLocalStorage on (reference)',
      child: bareAls.child,
      port: bareAls.port,
      headers: withToken,
    },
    {
      name: 'with consistency(), no token',
      child: causeway.child,
      port: causeway.port,
      headers: { 'x-same-size-header': causeway.token },
    },
    {
      name: 'with consistency(), token sent back',
      child: causeway.child,
      port: causeway.port,
      headers: withToken,
    },
  ];
  const serverCpuMicros = (child: ChildProcess) =>
    new Promise<number>((resolve) => {
      child.once('message', (m) => resolve((m as { cpuMicros: number }).cpuMicros));
      child.send('cpu');
    });
  const rates = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  const cpu = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of cases) {
      const cpuBefore = await serverCpuMicros(c.child);
      const result = await autocannon({
        url: `http://127.0.0.1:${c.port}/`,
        connections: 10,
        duration: SECONDS,
        headers: c.headers,
      });
      const used = (await serverCpuMicros(c.child)) - cpuBefore;
      if (result.non2xx > 0 || result.errors > 0) throw new Error(`${c.name}: failed requests`);
      rates.get(c.name)!.push(result.requests.average);
      cpu.get(c.name)!.push(used / result.requests.total);
    }
  }
  for (const child of children) child.kill();

  // The middleware's own CPU per request, in-process on real Node request/response objects (no
  // network): each case minus the same loop without the middleware, best of 5 alternating rounds.
  const db = new MemoryReplicaSet({ replicas: 2 });
  const c = consistency({ secret: SECRET, replicaSet: db });
  const floor = db.write('k', 'v');
  const token = c.issue({ id: 'bench-session-01', writeFloor: floor, readFloor: floor });
  const socket = new Socket();
  // More distinct tokens than the verified-token cache holds: every use is an HMAC check.
  const uncached = Array.from({ length: 8192 }, (_, i) => ({
    'causeway-session': c.issue({ id: `bench-session-${i}`, writeFloor: floor, readFloor: floor }),
  }));
  type Headers = Record<string, string> | ((i: number) => Record<string, string>);
  const oneRequest = (headers: Headers, mode: 'bare' | 'read' | 'write') => () =>
    opsPerSecond((i) => {
      const req: ConsistencyRequest = new IncomingMessage(socket);
      req.headers = typeof headers === 'function' ? headers(i) : headers;
      const res = new ServerResponse(req);
      if (mode !== 'bare') {
        c(req, res, () => {
          if (mode === 'write')
            req.consistency?.session.noteWrite({ ...floor, lsn: floor.lsn + 1n });
        });
      }
      res.writeHead(200); // where the token is written back
      return res;
    }, 300);
  const inProcess: Record<string, () => number> = {
    bare: oneRequest({}, 'bare'),
    'no token, no write': oneRequest({}, 'read'),
    'token sent back (verified once, then cached), no write': oneRequest(
      { 'causeway-session': token },
      'read',
    ),
    'token not cached (HMAC check), no write': oneRequest((i) => uncached[i & 8191]!, 'read'),
    'token sent back, write, token re-issued': oneRequest({ 'causeway-session': token }, 'write'),
  };
  const best: Record<string, number> = {};
  for (let round = 0; round < 5; round++) {
    for (const [name, run] of Object.entries(inProcess))
      best[name] = Math.max(best[name] ?? 0, run());
  }
  await db.close();
  const microRows = Object.keys(inProcess)
    .filter((name) => name !== 'bare')
    .map((name) => [name, (1e6 / best[name]! - 1e6 / best['bare']!).toFixed(2)]);

  const rate = (name: string) => Math.max(...rates.get(name)!);
  const cpuPerRequest = (name: string) => Math.min(...cpu.get(name)!);
  const rows = cases.map((c) => [
    c.name,
    Math.round(rate(c.name)),
    rate(c.name) / rate('bare Express'),
    cpuPerRequest(c.name),
    cpuPerRequest('bare Express') / cpuPerRequest(c.name),
  ]);
  console.log(
    `## consistency() overhead (best of ${ROUNDS} alternating rounds of ${SECONDS} s per case, 10 connections)\n`,
  );
  console.log(
    markdownTable(
      ['case', 'requests/s', 'ratio to bare', 'server CPU µs/request', 'CPU ratio (bare/case)'],
      rows,
    ),
  );
  console.log('\n## The middleware alone, in-process (no network)\n');
  console.log(markdownTable(['case', 'µs added per request'], microRows));
  writeResults('middleware', {
    inProcessMicrosAdded: Object.fromEntries(microRows),
    seconds: SECONDS,
    rounds: ROUNDS,
    connections: 10,
    requestsPerSecondByRound: Object.fromEntries(rates),
    serverCpuMicrosPerRequestByRound: Object.fromEntries(cpu),
    rows: rows.map(([name, rate, ratio, cpuMicros, cpuRatio]) => ({
      name,
      requestsPerSecond: rate,
      ratio,
      serverCpuMicrosPerRequest: cpuMicros,
      cpuRatio,
    })),
  });
}
