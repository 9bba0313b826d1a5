/**
 * Each framework adapter against its bare framework, in one run: the same one-route JSON app per
 * framework (Express, Fastify, Koa, Hono, a Fetch API handler, NestJS), without and with
 * Causeway, a returning client sending its token back on every request (verified, then cached),
 * driven by autocannon on 127.0.0.1 in alternating rounds. Each app runs in its own child
 * process (the bare app never has AsyncLocalStorage's hooks on). Hono and the Fetch handler are
 * served through one small Node-to-Fetch bridge, the same for the bare and the Causeway case.
 * Run: npm run bench -- frameworks   (BENCH_SECONDS=3 per round, BENCH_ROUNDS=3)
 */
import 'reflect-metadata';
import { type ChildProcess, fork } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { MemoryReplicaSet } from '../adapters/memory/replica-set.js';
import { consistency as expressConsistency } from '../src/express.js';
import { consistency as fastifyConsistency } from '../src/frameworks/fastify.js';
import { consistency as fetchConsistency } from '../src/frameworks/fetch.js';
import { consistency as honoConsistency } from '../src/frameworks/hono.js';
import { consistency as koaConsistency } from '../src/frameworks/koa.js';
import { ConsistencyModule } from '../src/frameworks/nest.js';
import { markdownTable, writeResults } from './util.js';

/** The part of autocannon's programmatic API used here (the package ships no types). */
type Autocannon = (options: {
  url: string;
  connections: number;
  duration: number;
  headers: Record<string, string>;
}) => Promise<{ requests: { average: number; total: number }; non2xx: number; errors: number }>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const SECRET = 'bench-secret-that-is-at-least-32-chars';
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 3);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const FRAMEWORKS = ['Express', 'Fastify', 'Koa', 'Hono', 'Fetch API', 'NestJS'] as const;
type Framework = (typeof FRAMEWORKS)[number];
const BODY = { hello: 'world' };

/** Serves a Fetch API handler over Node's HTTP server. */
function serveFetch(handler: (request: Request) => Response | Promise<Response>): Server {
  return createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === 'string') headers.set(name, value);
    }
    const response = await handler(
      new Request(`http://127.0.0.1${req.url}`, { method: req.method, headers }),
    );
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(Buffer.from(await response.arrayBuffer()));
  });
}

/** The app of `framework`, with Causeway or not, listening on 127.0.0.1: its server. */
async function startApp(framework: Framework, withCauseway: boolean, db: MemoryReplicaSet) {
  const options = { secret: SECRET, replicaSet: db };
  switch (framework) {
    case 'Express': {
      const app = express();
      if (withCauseway) app.use(expressConsistency(options));
      app.get('/', (_req, res) => {
        res.json(BODY);
      });
      return app.listen(0, '127.0.0.1');
    }
    case 'Fastify': {
      const app = Fastify();
      if (withCauseway) await app.register(fastifyConsistency(options));
      app.get('/', async () => BODY);
      await app.listen({ port: 0, host: '127.0.0.1' });
      return app.server;
    }
    case 'Koa': {
      const app = new Koa();
      if (withCauseway) app.use(koaConsistency(options));
      app.use((ctx) => {
        ctx.body = BODY;
      });
      return app.listen(0, '127.0.0.1');
    }
    case 'Hono': {
      const app = new Hono();
      if (withCauseway) app.use(honoConsistency(options));
      app.get('/', (c) => c.json(BODY));
      return serveFetch((request) => app.fetch(request)).listen(0, '127.0.0.1');
    }
    case 'Fetch API': {
      const handler = async () => Response.json(BODY);
      const served = withCauseway ? fetchConsistency(options).withConsistency(handler) : handler;
      return serveFetch(served).listen(0, '127.0.0.1');
    }
    case 'NestJS': {
      class HelloController {
        hello() {
          return BODY;
        }
      }
      Controller()(HelloController);
      const method = Object.getOwnPropertyDescriptor(HelloController.prototype, 'hello')!;
      Get()(HelloController.prototype, 'hello', method);
      class AppModule {}
      Module({
        imports: withCauseway ? [ConsistencyModule.forRoot(options)] : [],
        controllers: [HelloController],
      })(AppModule);
      const app = await NestFactory.create(AppModule, { logger: false });
      await app.listen(0, '127.0.0.1');
      return app.getHttpServer() as Server;
    }
  }
}

interface Ready {
  port: number;
  token: string;
}

const role = process.env['BENCH_APP'];
if (role !== undefined) {
  const [framework, mode] = role.split('|') as [Framework, 'bare' | 'causeway'];
  const db = new MemoryReplicaSet({ replicas: 2 });
  const server = await startApp(framework, mode === 'causeway', db);
  // A returning client's token: both floors set.
  const floor = db.write('k', 'v');
  const token = expressConsistency({ secret: SECRET }).issue({
    id: 'bench-session-01',
    writeFloor: floor,
    readFloor: floor,
  });
  const announce = () =>
    process.send?.({ port: (server.address() as AddressInfo).port, token } satisfies Ready);
  if (server.listening) announce();
  else server.once('listening', announce);
  process.on('message', () => {
    const { user, system } = process.cpuUsage();
    process.send?.({ cpuMicros: user + system });
  });
} else {
  const start = async (framework: Framework, mode: 'bare' | 'causeway') => {
    const child = fork(import.meta.filename, {
      env: { ...process.env, BENCH_APP: `${framework}|${mode}` },
    });
    const ready = await new Promise<Ready>((resolve) =>
      child.once('message', (m) => resolve(m as Ready)),
    );
    return { name: `${framework}|${mode}`, child, ...ready };
  };
  const cases: { name: string; child: ChildProcess; port: number; token: string }[] = [];
  for (const framework of FRAMEWORKS) {
    cases.push(await start(framework, 'bare'), await start(framework, 'causeway'));
  }
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
        // The same header in both cases: the bare app ignores it.
        headers: { 'causeway-session': c.token },
      });
      const used = (await serverCpuMicros(c.child)) - cpuBefore;
      if (result.non2xx > 0 || result.errors > 0) throw new Error(`${c.name}: failed requests`);
      rates.get(c.name)!.push(result.requests.average);
      cpu.get(c.name)!.push(used / result.requests.total);
    }
  }
  for (const c of cases) c.child.kill();

  const rate = (name: string) => Math.max(...rates.get(name)!);
  const cpuPerRequest = (name: string) => Math.min(...cpu.get(name)!);
  const rows = FRAMEWORKS.map((framework) => {
    const bare = `${framework}|bare`;
    const withIt = `${framework}|causeway`;
    return [
      framework,
      Math.round(rate(bare)),
      Math.round(rate(withIt)),
      rate(withIt) / rate(bare),
      cpuPerRequest(bare),
      cpuPerRequest(withIt),
      cpuPerRequest(bare) / cpuPerRequest(withIt),
    ];
  });
  console.log(
    `## Adapters against their bare framework (best of ${ROUNDS} alternating rounds of ${SECONDS} s per case, 10 connections, token sent back)\n`,
  );
  console.log(
    markdownTable(
      [
        'framework',
        'bare req/s',
        'with Causeway req/s',
        'ratio',
        'bare CPU µs/req',
        'with Causeway CPU µs/req',
        'CPU ratio (bare/with)',
      ],
      rows,
    ),
  );
  writeResults('frameworks', {
    seconds: SECONDS,
    rounds: ROUNDS,
    connections: 10,
    requestsPerSecondByRound: Object.fromEntries(rates),
    serverCpuMicrosPerRequestByRound: Object.fromEntries(cpu),
    rows: rows.map(([framework, bare, withIt, ratio, bareCpu, withCpu, cpuRatio]) => ({
      framework,
      bareRequestsPerSecond: bare,
      withCausewayRequestsPerSecond: withIt,
      ratio,
      bareCpuMicrosPerRequest: bareCpu,
      withCausewayCpuMicrosPerRequest: withCpu,
      cpuRatio,
    })),
  });
}
