/**
 * Each framework adapter against its bare framework, in one run: the same one-route JSON app per
 * framework (Express, Fastify, Koa, Hono, a Fetch API handler, NestJS on Express and on
 * Fastify), without and with Causeway, a returning client sending its token back on every
 * request (verified, then cached), driven by autocannon on 127.0.0.1 in alternating rounds
 * (bench/http-load.ts). Each app runs in its own child process (the bare app never has
 * AsyncLocalStorage's hooks on); a third app per framework, bare with an AsyncLocalStorage
 * entered (as OpenTelemetry's context manager does), separates the cost of the hooks Causeway's
 * sessions turn on (on Node 20, paid by every promise) from Causeway's own. Hono and the Fetch
 * handler are served through one small Node-to-Fetch bridge, the same for every case.
 * Run: npm run bench -- frameworks   (BENCH_SECONDS=3 per round, BENCH_ROUNDS=3;
 * BENCH_FRAMEWORKS=Koa,NestJS for some only)
 */
import 'reflect-metadata';
import { AsyncLocalStorage } from 'node:async_hooks';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
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
import { type LoadCase, runLoad, serveChild, startServer } from './http-load.js';
import { markdownTable, writeResults } from './util.js';

const SECRET = 'bench-secret-that-is-at-least-32-chars';
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 3);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const FRAMEWORKS = [
  'Express',
  'Fastify',
  'Koa',
  'Hono',
  'Fetch API',
  'NestJS',
  'NestJS on Fastify',
] as const;
type Framework = (typeof FRAMEWORKS)[number];
/** The bare app, the bare app with AsyncLocalStorage's hooks on (a reference), with Causeway. */
const MODES = ['bare', 'bare-als', 'causeway'] as const;
type Mode = (typeof MODES)[number];
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
    case 'NestJS':
    case 'NestJS on Fastify': {
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
      const app =
        framework === 'NestJS'
          ? await NestFactory.create(AppModule, { logger: false })
          : await NestFactory.create(AppModule, new FastifyAdapter(), { logger: false });
      await app.listen(0, '127.0.0.1');
      return app.getHttpServer() as Server;
    }
  }
}

const role = process.env['BENCH_APP'];
if (role !== undefined) {
  const [framework, mode] = role.split('|') as [Framework, Mode];
  const db = new MemoryReplicaSet({ replicas: 2 });
  // As OpenTelemetry's context manager or any AsyncLocalStorage would: the hooks Causeway's
  // sessions also turn on, which every promise then pays for.
  if (mode === 'bare-als') new AsyncLocalStorage().enterWith({});
  const server = await startApp(framework, mode === 'causeway', db);
  // A returning client's token: both floors set.
  const floor = db.write('k', 'v');
  const token = expressConsistency({ secret: SECRET }).issue({
    id: 'bench-session-01',
    writeFloor: floor,
    readFloor: floor,
  });
  const announce = () => serveChild({ port: (server.address() as AddressInfo).port, token });
  if (server.listening) announce();
  else server.once('listening', announce);
} else {
  const wanted = (process.env['BENCH_FRAMEWORKS'] ?? '').split(',').filter((f) => f !== '');
  const frameworks = FRAMEWORKS.filter((f) => wanted.length === 0 || wanted.includes(f));
  const cases: LoadCase[] = [];
  for (const framework of frameworks) {
    for (const mode of MODES) {
      const name = `${framework}|${mode}`;
      const server = await startServer(import.meta.filename, { BENCH_APP: name });
      // The same header in every case: the bare apps ignore it.
      cases.push({ name, server, headers: { 'causeway-session': server.token } });
    }
  }
  const load = await runLoad(cases, ROUNDS, SECONDS);
  for (const c of cases) c.server.child.kill();

  const { rate, cpuPerRequest } = load;
  const rows = frameworks.map((framework) => {
    const bare = `${framework}|bare`;
    const als = `${framework}|bare-als`;
    const withIt = `${framework}|causeway`;
    return [
      framework,
      Math.round(rate(bare)),
      Math.round(rate(withIt)),
      rate(withIt) / rate(bare),
      rate(als) / rate(bare),
      cpuPerRequest(bare),
      cpuPerRequest(als),
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
        'bare with AsyncLocalStorage on, ratio (reference)',
        'bare CPU µs/req',
        'bare with AsyncLocalStorage on, CPU µs/req',
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
    requestsPerSecondByRound: Object.fromEntries(load.rates),
    serverCpuMicrosPerRequestByRound: Object.fromEntries(load.cpu),
    rows: rows.map(
      ([framework, bare, withIt, ratio, alsRatio, bareCpu, alsCpu, withCpu, cpuRatio]) => ({
        framework,
        bareRequestsPerSecond: bare,
        withCausewayRequestsPerSecond: withIt,
        ratio,
        bareWithAsyncLocalStorageRatio: alsRatio,
        bareCpuMicrosPerRequest: bareCpu,
        bareWithAsyncLocalStorageCpuMicrosPerRequest: alsCpu,
        withCausewayCpuMicrosPerRequest: withCpu,
        cpuRatio,
      }),
    ),
  });
}
