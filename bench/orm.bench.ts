/**
 * Each ORM of the matrix (test/integration/orm/orms) twice in the same run: over a plain
 * `pg.Pool` on the primary, and over the routed pool (the README's recipes) on the primary and a
 * streaming replica. Sessions of 90 % point reads and 10 % inserts through the ORM's own API,
 * one operation at a time per session, 8 sessions at once. Reports the share of reads the
 * replica served (from the pool's 'route' events) and p50/p99 read latency for both.
 * Run: npm run bench -- orm   (uses CAUSEWAY_TEST_* servers if set, else starts a cluster;
 * BENCH_SECONDS=3 per ORM and pool by default)
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { PoolRouteEvent } from '../adapters/pg/index.js';
import { ormPool } from '../examples/orm/pool.js';
import { SessionContext, withSession } from '../src/session/context.js';
import { type Cluster, startCluster } from '../test/harness/cluster.js';
import { hasTestEnv, testEnv } from '../test/harness/env.js';
import { type OrmUnderTest, tableFor } from '../test/integration/orm/scenario.js';
import { markdownTable, percentile, writeResults } from './util.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 3);
const SESSIONS = 8;
const ROWS = 500;
const ORMS = ['pg', 'kysely', 'drizzle', 'knex', 'typeorm', 'sequelize', 'mikro-orm', 'prisma'];

if (
  !existsSync(fileURLToPath(new URL('../examples/orm/prisma/generated/client.ts', import.meta.url)))
) {
  execFileSync('npm', ['run', 'orm:generate'], { stdio: 'ignore' });
}

let cluster: Cluster | undefined;
let primaryUrl: string;
let replicaUrl: string;
if (hasTestEnv()) {
  ({ primaryUrl, replicaUrl } = testEnv());
} else {
  cluster = await startCluster();
  primaryUrl = cluster.primary.url;
  replicaUrl = cluster.replica.url;
}
const admin = new pg.Pool({ connectionString: primaryUrl, max: 2 });

interface Run {
  reads: number;
  replicaReads: number;
  latencies: number[];
  /** Route events by target and reason (why reads went where they went). */
  routes: Record<string, number>;
}

/**
 * SESSIONS sessions at once for SECONDS, each reading an existing row or inserting a new one,
 * after a warm-up of a quarter of that (connections opened, ORM caches filled: Sequelize, for
 * one, reads the server's type OIDs on its first connection).
 */
async function workload(
  orm: OrmUnderTest,
  routeEvents: PoolRouteEvent[],
  firstNewId: number,
): Promise<Run> {
  let nextId = firstNewId;
  const warmUpEnd = performance.now() + SECONDS * 250;
  while (performance.now() < warmUpEnd) {
    await Promise.all(Array.from({ length: SESSIONS }, (_, i) => orm.read(1 + i)));
  }
  const latencies: number[] = [];
  const before = routeEvents.length;
  const end = performance.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: SESSIONS }, (_, s) =>
      withSession(new SessionContext({ id: `orm-bench-${s}` }), async () => {
        while (performance.now() < end) {
          if (Math.random() < 0.1) {
            await orm.insert(nextId++, 'written');
            continue;
          }
          const started = performance.now();
          await orm.read(1 + Math.floor(Math.random() * ROWS));
          latencies.push(performance.now() - started);
        }
      }),
    ),
  );
  const routes: Record<string, number> = {};
  for (const { target, reason } of routeEvents.slice(before)) {
    routes[`${target} ${reason}`] = (routes[`${target} ${reason}`] ?? 0) + 1;
  }
  // Only reads can reach a replica.
  const replicaReads = routeEvents.slice(before).filter((e) => e.target === 'replica').length;
  return { reads: latencies.length, replicaReads, latencies, routes };
}

const rows: (string | number)[][] = [];
const results: Record<string, { plain: Run; routed: Run }> = {};
for (const name of ORMS) {
  const table = tableFor(name);
  await admin.query(`DROP TABLE IF EXISTS ${table}`);
  await admin.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text NOT NULL)`);
  await admin.query(`INSERT INTO ${table} SELECT i, md5(i::text) FROM generate_series(1, $1) i`, [
    ROWS,
  ]);
  const { open } = (await import(
    `../test/integration/orm/orms/${name}.js`
  )) as typeof import('../test/integration/orm/orms/pg.js');

  const plainPool = new pg.Pool({ connectionString: primaryUrl });
  const plainOrm = await open(plainPool);
  const plain = await workload(plainOrm, [], ROWS + 1);
  await plainOrm.close(); // ends the pool, as every adapter's close() does

  const routedPool = ormPool({ primary: primaryUrl, replicas: [replicaUrl] });
  const events: PoolRouteEvent[] = [];
  routedPool.on('route', (event: PoolRouteEvent) => events.push(event));
  const created = await routedPool.replicaSet.writePosition();
  if (!created || !(await routedPool.replicaSet.waitFor('replica-1', created, 15_000))) {
    throw new Error('the replica did not catch up');
  }
  const routedOrm = await open(routedPool);
  const routed = await workload(routedOrm, events, 1_000_000);
  await routedOrm.close();
  results[name] = { plain, routed };
  await admin.query(`DROP TABLE ${table}`);
  rows.push([
    name,
    routed.reads,
    `${((100 * routed.replicaReads) / routed.reads).toFixed(1)} %`,
    `${percentile(plain.latencies, 50).toFixed(2)} / ${percentile(routed.latencies, 50).toFixed(2)}`,
    `${percentile(plain.latencies, 99).toFixed(2)} / ${percentile(routed.latencies, 99).toFixed(2)}`,
  ]);
}
console.log(
  markdownTable(
    [
      'ORM',
      'reads (routed)',
      'served by the replica',
      'p50 ms: pg.Pool / routed',
      'p99 ms: pg.Pool / routed',
    ],
    rows,
  ),
);
writeResults('orm', {
  // Other work on the machine moves these figures: the 1-minute load average at the end.
  loadAverage: loadavg()[0],
  seconds: SECONDS,
  sessions: SESSIONS,
  orms: Object.fromEntries(
    Object.entries(results).map(([name, { plain, routed }]) => [
      name,
      {
        plain: {
          reads: plain.reads,
          p50: percentile(plain.latencies, 50),
          p99: percentile(plain.latencies, 99),
        },
        routed: {
          reads: routed.reads,
          replicaReads: routed.replicaReads,
          p50: percentile(routed.latencies, 50),
          p99: percentile(routed.latencies, 99),
          routes: routed.routes,
        },
      },
    ]),
  ),
});
await admin.end();
await cluster?.stop();
