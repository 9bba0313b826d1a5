/**
 * `npm run demo`: starts the editorial site on 127.0.0.1, walks through it over HTTP with and
 * without Causeway, prints what happened, and keeps serving until Ctrl-C.
 *
 *   npm run demo                        memory adapters (no server needed)
 *   npm run demo -- --postgres          real PostgreSQL replication and Redis
 *   npm run demo -- --once              walk through and exit (exit code 1 if Causeway failed)
 *   npm run demo:serve                  serve only, no walk-through
 *
 * Options: --port N (default 3000, or a free one if taken; 0 for any), --lag-ms N (how late the
 * slower replica applies writes: memory default 1000, PostgreSQL default 1500), --trace console
 * (print every span; default: kept in memory, summarised).
 *
 * With --postgres, set all of CAUSEWAY_DEMO_PRIMARY_URL, CAUSEWAY_DEMO_REPLICA_URLS (comma-
 * separated, fastest first), CAUSEWAY_DEMO_PERMISSIONS_URL and CAUSEWAY_DEMO_REDIS_URL to use
 * servers of your own; with none set, it starts throwaway ones (PostgreSQL server binaries and
 * redis-server must be installed) and stops them on exit.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import express from 'express';
import { createEditorialApp, type EditorialApp } from './app.js';
import { createMemoryStore } from './memory-store.js';
import type { EditorialStore } from './store.js';
import { setupTracing, type TraceSummary, type Tracing } from './tracing.js';
import { causewayHeld, formatReport, runWalkthrough } from './walkthrough.js';

const DEFAULT_PORT = 3000;

/** A mistake in the command line or the environment: reported in one line, without a stack. */
class UsageError extends Error {}
const PUBLISH_EVERY_MS = 5_000;

interface Options {
  postgres: boolean;
  once: boolean;
  serveOnly: boolean;
  port: number | undefined;
  lagMs: number | undefined;
  trace: 'memory' | 'console';
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      postgres: { type: 'boolean', default: false },
      once: { type: 'boolean', default: false },
      'serve-only': { type: 'boolean', default: false },
      port: { type: 'string' },
      'lag-ms': { type: 'string' },
      trace: { type: 'string', default: 'memory' },
    },
  });
  const integer = (name: string, text: string | undefined, max: number) => {
    if (text === undefined) return undefined;
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < 0 || value > max) {
      throw new UsageError(`--${name} must be an integer from 0 to ${max}`);
    }
    return value;
  };
  if (values.trace !== 'memory' && values.trace !== 'console') {
    throw new UsageError('--trace must be memory or console');
  }
  if (values.once && values['serve-only'])
    throw new UsageError('--once and --serve-only exclude each other');
  return {
    postgres: values.postgres,
    once: values.once,
    serveOnly: values['serve-only'],
    port: integer('port', values.port, 65_535),
    lagMs: integer('lag-ms', values['lag-ms'], 60_000),
    trace: values.trace,
  };
}

/** The PostgreSQL store on the servers named in the environment, or on servers started here. */
async function postgresStore(
  lagMs: number | undefined,
): Promise<{ store: EditorialStore; stopServers?: () => Promise<void> }> {
  const { createPostgresStore, DEMO_ENV } = await import('./postgres-store.js');
  const names = Object.values(DEMO_ENV);
  const set = names.filter((name) => process.env[name]);
  if (set.length > 0) {
    const missing = names.filter((name) => !process.env[name]);
    if (missing.length > 0)
      throw new UsageError(`set all of ${names.join(', ')}; missing: ${missing.join(', ')}`);
    const env = (name: string) => process.env[name] as string;
    try {
      const store = await createPostgresStore({
        primaryUrl: env(DEMO_ENV.primaryUrl),
        replicaUrls: env(DEMO_ENV.replicaUrls)
          .split(',')
          .map((url) => url.trim()),
        permissionsUrl: env(DEMO_ENV.permissionsUrl),
        redisUrl: env(DEMO_ENV.redisUrl),
      });
      return { store };
    } catch (error) {
      // The URLs may hold passwords: name the variables, not their values.
      const reason = error instanceof Error ? error.message : String(error);
      throw new UsageError(
        `--postgres: setting up the servers in ${names.join(', ')} failed: ${reason}`,
      );
    }
  }
  console.log(
    'Starting PostgreSQL (a primary, a streaming replica, one applying commits ' +
      `${lagMs ?? 1500} ms late, a second database) and Redis in a temporary directory...`,
  );
  const { startCluster } = await import('../../test/harness/cluster.js');
  const cluster = await startCluster(lagMs === undefined ? {} : { replicaDelayMs: lagMs });
  try {
    const store = await createPostgresStore({
      primaryUrl: cluster.primary.url,
      replicaUrls: [cluster.replica.url, cluster.laggingReplica.url],
      permissionsUrl: cluster.primary2.url,
      redisUrl: cluster.redis.url,
    });
    return { store, stopServers: () => cluster.stop() };
  } catch (error) {
    await cluster.stop();
    throw error;
  }
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function indexPage(origin: string, store: EditorialStore): string {
  const links = (base: string) =>
    ['/articles', '/front-page', '/admin/replication']
      .map((path) => `<li><a href="${base}${path}">${base}${path}</a></li>`)
      .join('');
  return `<!doctype html><meta charset="utf-8"><title>Causeway editorial demo</title>
<h1>Causeway editorial demo</h1><p>${store.description}.</p>
<h2>With Causeway</h2><ul>${links('')}</ul>
<h2>Without Causeway</h2><ul>${links('/off')}</ul>
<p>Save an article: <code>curl -X PUT ${origin}/articles/hello -H 'x-user: ann'
-H 'content-type: application/json' -d '{"title":"Hello","body":"First post"}' -i</code>,
then open <code>/articles/hello/preview</code> with the same <code>x-user</code>.</p>`;
}

function describeTraces(summary: TraceSummary, exporter: string): string {
  const causeway = Object.entries(summary.byName)
    .filter(([name]) => name.startsWith('causeway.'))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, count]) => `${name} ${count}`)
    .join(', ');
  const requests = Object.entries(summary.byName)
    .filter(([name]) => !name.startsWith('causeway.'))
    .reduce((total, [, count]) => total + count, 0);
  const events = Object.entries(summary.routeEvents)
    .map(([target, count]) => `${target} ${count}`)
    .join(', ');
  return (
    `Traced with the OpenTelemetry SDK (${exporter} exporter): ${summary.spans} spans, ` +
    `${requests} of them HTTP requests; ${causeway}; causeway.route events: ${events || 'none'}.`
  );
}

async function main(): Promise<void> {
  let options: Options;
  try {
    options = parseOptions();
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n`);
    console.error(
      'usage: npm run demo -- [--postgres] [--once | --serve-only] [--port N] [--lag-ms N] [--trace memory|console]',
    );
    process.exitCode = 2;
    return;
  }
  const tracing: Tracing = setupTracing(options.trace);
  const { store, stopServers } = options.postgres
    ? await postgresStore(options.lagMs)
    : { store: createMemoryStore(options.lagMs === undefined ? {} : { lagMs: options.lagMs }) };
  const secret = process.env['CAUSEWAY_DEMO_SECRET'] ?? randomBytes(32).toString('base64url');
  const apps: EditorialApp[] = [];
  const offApp = createEditorialApp({ store, causeway: false });
  const onApp = createEditorialApp({ store, causeway: true, secret });
  apps.push(offApp, onApp);

  const root = express();
  root.disable('x-powered-by');
  root.use(tracing.requestSpans);
  let origin = '';
  root.get('/', (_req, res) => {
    res.type('html').send(indexPage(origin, store));
  });
  root.get('/admin/traces', (_req, res) => {
    const recent = tracing.recent(20).map((span) => ({
      name: span.name,
      attributes: span.attributes,
      events: span.events.map((event) => ({ name: event.name, attributes: event.attributes })),
    }));
    res.json({ summary: tracing.summary(), recent });
  });
  root.use('/off', offApp.app);
  root.use(onApp.app);
  const server = createServer(root);

  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      // If something still holds the event loop after this, say so rather than hang.
      setTimeout(() => {
        console.error('still shutting down after 10 s; forcing exit');
        process.exit(1);
      }, 10_000).unref();
      await Promise.all(apps.map((app) => app.close()));
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await store.close();
      await stopServers?.();
      await tracing.shutdown();
    })();
    return stopping;
  };
  const onSignal = () => {
    if (stopping === undefined) console.log('\nStopping...');
    void shutdown().then(() => console.log('Stopped.'));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let port: number;
  try {
    port = await listen(server, options.port ?? DEFAULT_PORT);
  } catch (error) {
    const taken = (error as { code?: string }).code === 'EADDRINUSE';
    if (options.port !== undefined || !taken) {
      await shutdown();
      throw taken ? new UsageError(`port ${options.port} is taken; try another --port`) : error;
    }
    port = await listen(server, 0);
    console.log(`Port ${DEFAULT_PORT} is taken; using ${port}.`);
  }
  origin = `http://127.0.0.1:${port}`;

  if (!options.serveOnly) {
    console.log(`Causeway editorial demo on ${store.description}.`);
    console.log(
      `Walking through the same requests against ${origin}/off (without Causeway) and ${origin}/ (with it)...\n`,
    );
    try {
      const report = await runWalkthrough(origin, randomBytes(3).toString('hex'));
      console.log(formatReport(report));
      console.log(`\n${describeTraces(tracing.summary(), options.trace)}`);
      if (!causewayHeld(report)) {
        console.log('\nUNEXPECTED: with Causeway on the walk-through saw an anomaly (see above).');
        process.exitCode = 1;
      }
    } catch (error) {
      if (stopping !== undefined) return; // interrupted by Ctrl-C
      await shutdown();
      throw error;
    }
  }
  if (options.once) {
    await shutdown();
    return;
  }
  for (const publisher of onApp.publishers) {
    publisher.schedule(PUBLISH_EVERY_MS, (error) =>
      console.error(
        `${publisher.worker}: ${error instanceof Error ? error.message : String(error)}`,
      ),
    );
  }
  console.log(`\nThe site is running: ${origin}/ (with Causeway) and ${origin}/off/ (without).`);
  console.log(
    `Try: curl -i -X PUT ${origin}/articles/hello -H 'x-user: ann' -H 'content-type: application/json' -d '{"title":"Hello","body":"First post"}'`,
  );
  console.log(`     curl -i ${origin}/articles/hello/preview -H 'x-user: ann'`);
  console.log('Ctrl-C stops it.');
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) console.error(error.message);
  else console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
