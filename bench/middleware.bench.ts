/**
 * Overhead of the `consistency()` middleware: the same Express app with one trivial JSON route,
 * without and with the middleware (and with a client that sends a session token back), driven
 * by autocannon on 127.0.0.1 in alternating rounds (bench/http-load.ts). Each app runs in its
 * own child process: the bare app never has AsyncLocalStorage's hooks enabled (the middleware
 * turns them on process-wide; so does OpenTelemetry's context manager, which the third app has
 * on as a reference).
 * Run: npx tsx bench/middleware.bench.ts   (BENCH_SECONDS=5 per round, BENCH_ROUNDS=4)
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Socket } from 'node:net';
import express, { type Request, type Response } from 'express';
import { MemoryReplicaSet } from '../adapters/memory/replica-set.js';
import { type ConsistencyRequest, consistency } from '../src/express.js';
import { type LoadCase, runLoad, serveChild, startServer } from './http-load.js';
import { markdownTable, opsPerSecond, writeResults } from './util.js';

const SECRET = 'bench-secret-that-is-at-least-32-chars';
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 5);
// Rounds alternate the cases; the best round of each counts (this runs on shared machines).
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 4);

type AppKind = 'bare' | 'bare-als' | 'causeway';

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
    serveChild({ port: (server.address() as AddressInfo).port, token });
  });
} else {
  const start = (kind: AppKind) => startServer(import.meta.filename, { BENCH_APP: kind });
  const bare = await start('bare');
  const bareAls = await start('bare-als');
  const causeway = await start('causeway');
  const children = [bare.child, bareAls.child, causeway.child];
  const withToken = { 'causeway-session': causeway.token };

  const cases: LoadCase[] = [
    // Every request carries a header of the token's size (ignored where it means nothing), so
    // the cases differ only in what the server does with it.
    { name: 'bare Express', server: bare, headers: withToken },
    {
      name: 'bare Express, AsyncLocalStorage on (reference)',
      server: bareAls,
      headers: withToken,
    },
    {
      name: 'with consistency(), no token',
      server: causeway,
      headers: { 'x-same-size-header': causeway.token },
    },
    { name: 'with consistency(), token sent back', server: causeway, headers: withToken },
  ];
  const load = await runLoad(cases, ROUNDS, SECONDS);
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

  const { rate, cpuPerRequest } = load;
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
    requestsPerSecondByRound: Object.fromEntries(load.rates),
    serverCpuMicrosPerRequestByRound: Object.fromEntries(load.cpu),
    rows: rows.map(([name, rate, ratio, cpuMicros, cpuRatio]) => ({
      name,
      requestsPerSecond: rate,
      ratio,
      serverCpuMicrosPerRequest: cpuMicros,
      cpuRatio,
    })),
  });
}
