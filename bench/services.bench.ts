/**
 * Read-your-writes across two services: service A (Express, behind its own `consistency()`)
 * writes a row through its routed pool and calls service B (Fastify, its own `consistency()`,
 * its own routed pool over the same primary and a replica BENCH_REPLICA_DELAY_MS behind), which
 * reads rows. Clients that keep no cookies (`causeway/client`'s `sessionFetch`, one per client
 * session) each own a few rows; per request a client either writes one of its rows (A then asks
 * B for it) or asks A for one of its rows (A asks B). A calls B with `forwardingFetch` (the
 * session propagated) for one set of clients and with plain `fetch` for another, both at once
 * (each on its own table). Every write and every read B served is recorded in A and checked
 * with the history checker (src/testing); B's reads are counted by the node that served them
 * (the routed pool's 'route' events).
 *
 * Run: npm run bench -- services   (starts its own primary and replica; BENCH_SECONDS, default
 * 10; BENCH_SESSIONS clients per set, default 8; BENCH_WRITE_SHARE, default 0.1;
 * BENCH_THINK_MS, mean pause between a client's requests, default 50; BENCH_REPLICA_DELAY_MS,
 * default 200)
 */
import type { AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import express from 'express';
import Fastify from 'fastify';
import pg from 'pg';
import { createReplicatedPool, type PoolRouteEvent } from '../adapters/pg/replicated-pool.js';
import { sessionFetch } from '../src/client/index.js';
import { consistency as fastifyConsistency } from '../src/frameworks/fastify.js';
import { forwardingFetch } from '../src/propagation/index.js';
import type { SessionContext } from '../src/session/context.js';
import { currentSession } from '../src/session/context.js';
import { consistency } from '../src/session/express.js';
import { GUARANTEES, HistoryRecorder } from '../src/testing/index.js';
import { startPostgresPrimary, startReplica } from '../test/harness/cluster.js';
import { markdownTable, percentile, writeResults } from './util.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 10);
const SESSIONS = Number(process.env['BENCH_SESSIONS'] ?? 8);
const WRITE_SHARE = Number(process.env['BENCH_WRITE_SHARE'] ?? 0.1);
const THINK_MS = Number(process.env['BENCH_THINK_MS'] ?? 50);
const DELAY_MS = Number(process.env['BENCH_REPLICA_DELAY_MS'] ?? 200);
/** Rows each client session owns (and writes and reads). */
const ROWS_PER_SESSION = 8;
const SECRET = 'bench-two-services-share-this-secret';
if (!(SECONDS > 0) || !(SESSIONS > 0) || !(WRITE_SHARE >= 0 && WRITE_SHARE <= 1)) {
  throw new Error('BENCH_SECONDS and BENCH_SESSIONS must be > 0, BENCH_WRITE_SHARE in [0, 1]');
}
if (!(THINK_MS >= 0) || !(DELAY_MS >= 0)) {
  throw new Error('BENCH_THINK_MS and BENCH_REPLICA_DELAY_MS must be >= 0');
}

const MODES = [
  { name: 'propagation on (forwardingFetch)', table: 'items_on', forward: true },
  { name: 'propagation off (plain fetch)', table: 'items_off', forward: false },
] as const;
type Table = (typeof MODES)[number]['table'];

const primary = await startPostgresPrimary({ name: 'bench-s2s-primary' });
const replica = await startReplica(primary, { name: 'bench-s2s-replica', delayMs: DELAY_MS });
const direct = new pg.Pool({ connectionString: primary.url, max: 2 });
const routedPool = () => {
  const pool = createReplicatedPool({
    primary: { config: { connectionString: primary.url, max: 2 * SESSIONS } },
    replicas: [{ name: 'lagging', config: { connectionString: replica.url, max: 2 * SESSIONS } }],
    replicaSetOptions: { checkTimeoutMs: 2000 },
  });
  pool.on('error', () => {});
  return pool;
};
const poolA = routedPool();
const poolB = routedPool();
for (const { table } of MODES) {
  await direct.query(`CREATE TABLE ${table} (id int PRIMARY KEY, version int NOT NULL)`);
  await direct.query(`INSERT INTO ${table} SELECT i, 0 FROM generate_series(0, $1) AS i`, [
    SESSIONS * ROWS_PER_SESSION - 1,
  ]);
}
const created = await poolB.replicaSet.writePosition();
if (!(await poolB.replicaSet.waitFor('lagging', created!, 30_000))) {
  throw new Error('the replica did not replay the tables');
}

// Which node served each of B's reads: the pool emits 'route' in the async context of the
// statement, i.e. inside the request's session.
const lastRoute = new WeakMap<SessionContext, PoolRouteEvent>();
poolB.on('route', (event) => {
  const session = currentSession();
  if (session !== undefined) lastRoute.set(session, event);
});

// Service B: reads one row.
const serviceB = Fastify();
await serviceB.register(fastifyConsistency({ secret: SECRET, router: poolB.router }));
serviceB.get<{ Params: { table: Table; id: string } }>('/:table/:id', async (request) => {
  const { table, id } = request.params;
  const { rows } = await poolB.query(`SELECT version FROM ${table} WHERE id = $1`, [Number(id)]);
  const route = lastRoute.get(request.consistency!.session);
  return { version: rows[0].version as number, target: route?.target ?? 'unknown' };
});
await serviceB.listen({ port: 0, host: '127.0.0.1' });
const serviceBUrl = `http://127.0.0.1:${(serviceB.server.address() as AddressInfo).port}`;

interface Stats {
  requests: number;
  reads: number;
  replicaReads: number;
  readsAfterWrite: number;
  replicaReadsAfterWrite: number;
  latenciesMs: number[];
}
const recorders = new Map<Table, HistoryRecorder>(
  MODES.map((m) => [m.table, new HistoryRecorder()]),
);
const stats = new Map<Table, Stats>(
  MODES.map((m) => [
    m.table,
    {
      requests: 0,
      reads: 0,
      replicaReads: 0,
      readsAfterWrite: 0,
      replicaReadsAfterWrite: 0,
      latenciesMs: [],
    },
  ]),
);
let writeIds = 0;

// Service A: optionally writes the row, then asks B for it; records both in the history.
const c = consistency({ secret: SECRET, router: poolA.router });
const forward = forwardingFetch(c);
const appA = express();
appA.use(c);
appA.all('/:table/:id', async (req, res) => {
  const table = req.params['table'] as Table;
  const id = Number(req.params['id']);
  const mode = MODES.find((m) => m.table === table)!;
  const recorder = recorders.get(table)!;
  const stat = stats.get(table)!;
  const session = String(req.headers['x-bench-client']);
  const write = req.method === 'POST';
  if (write) {
    const startedAt = recorder.now();
    const { rows } = await poolA.query(
      `UPDATE ${table} SET version = version + 1 WHERE id = $1 RETURNING version`,
      [id],
    );
    recorder.write({
      session,
      key: String(id),
      id: `w${writeIds++}`,
      version: rows[0].version,
      node: 'primary',
      startedAt,
      endedAt: recorder.now(),
      acknowledged: true,
    });
  }
  const call = mode.forward ? forward : fetch;
  const startedAt = recorder.now();
  const answer = (await (await call(`${serviceBUrl}/${table}/${id}`)).json()) as {
    version: number;
    target: string;
  };
  const endedAt = recorder.now();
  recorder.read({
    session,
    observed: { [id]: answer.version },
    node: answer.target,
    startedAt,
    endedAt,
  });
  stat.requests++;
  stat.reads++;
  stat.latenciesMs.push(endedAt - startedAt);
  const onReplica = answer.target === 'replica' ? 1 : 0;
  stat.replicaReads += onReplica;
  if (write) {
    stat.readsAfterWrite++;
    stat.replicaReadsAfterWrite += onReplica;
  }
  res.json({ ok: true });
});
const serverA = appA.listen(0, '127.0.0.1');
await new Promise((resolve) => serverA.once('listening', resolve));
const serviceAUrl = `http://127.0.0.1:${(serverA.address() as AddressInfo).port}`;

/** One client session: a cookie-less client sending A's token back, one request at a time. */
async function client(index: number, table: Table, deadline: number): Promise<void> {
  const api = sessionFetch();
  let seed = 7 + index;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const headers = { 'x-bench-client': `client-${index}` };
  while (performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, random() * 2 * THINK_MS));
    const id = index * ROWS_PER_SESSION + Math.floor(random() * ROWS_PER_SESSION);
    const method = random() < WRITE_SHARE ? 'POST' : 'GET';
    const response = await api(`${serviceAUrl}/${table}/${id}`, { method, headers });
    if (!response.ok) throw new Error(`${method} ${table}/${id}: ${response.status}`);
    await response.arrayBuffer();
  }
}

// Both runs at once, so that they share the machine's load alike (it is shared).
const loadBefore = loadavg();
const deadline = performance.now() + SECONDS * 1000;
await Promise.all(
  MODES.flatMap(({ table }) =>
    Array.from({ length: SESSIONS }, (_, i) => client(i, table, deadline)),
  ),
);
const loadAfter = loadavg();

const rows = MODES.map(({ name, table }) => {
  const stat = stats.get(table)!;
  const history = recorders.get(table)!.check();
  return {
    name,
    stat,
    counts: history.counts,
    row: [
      name,
      stat.reads,
      stat.replicaReads / stat.reads,
      stat.readsAfterWrite === 0 ? 'n/a' : stat.replicaReadsAfterWrite / stat.readsAfterWrite,
      percentile(stat.latenciesMs, 50),
      history.counts['read-your-writes'],
      history.counts['monotonic-reads'],
    ],
  };
});
console.log(
  `## Two services, read-your-writes (${SECONDS} s, ${SESSIONS} cookie-less clients per row, both rows at once, write share ${WRITE_SHARE}, mean think time ${THINK_MS} ms, replica ${DELAY_MS} ms behind; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} before, ${loadAfter.map((l) => l.toFixed(2)).join(' ')} after)\n`,
);
console.log(
  markdownTable(
    [
      'A calls B with',
      'B reads',
      'share on the replica',
      'share on the replica, right after the write',
      'B read p50 ms (from A)',
      'read-your-writes violations',
      'monotonic-reads violations',
    ],
    rows.map((r) => r.row),
  ),
);
writeResults('services', {
  seconds: SECONDS,
  sessions: SESSIONS,
  writeShare: WRITE_SHARE,
  thinkMs: THINK_MS,
  replicaDelayMs: DELAY_MS,
  loadBefore,
  loadAfter,
  runs: rows.map(({ name, stat: { latenciesMs, ...stat }, counts }) => ({
    name,
    ...stat,
    p50Ms: percentile(latenciesMs, 50),
    violations: Object.fromEntries(GUARANTEES.map((g) => [g, counts[g]])),
  })),
});

await new Promise((resolve) => serverA.close(resolve));
await serviceB.close();
await poolA.end();
await poolB.end();
await direct.end();
await replica.stop();
await primary.stop();
const on = rows[0]!.counts['read-your-writes'];
process.exit(on === 0 ? 0 : 1);
