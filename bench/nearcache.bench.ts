/**
 * The near cache against the database: one session workload (reads by primary key at
 * read-your-writes, a share of writes through the routed pool) run in turn against the near
 * cache, against the replica through the routed pool, and against the primary; p50/p99 read
 * latency, reads per second and per CPU-second of this process; the cache's memory per row for a
 * table of BENCH_ROWS rows; and the time from a commit on the primary to its visibility in the
 * cache. The workload with writes is recorded on all three targets and checked with the history
 * checker (src/testing); the read-only workload is not recorded.
 *
 * Run: npm run bench -- nearcache   (starts its own primary and replica; BENCH_SECONDS per
 * target, default 5; BENCH_ROWS, default 100000; BENCH_SESSIONS, default 16)
 */
import { cpus } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pg from 'pg';
import { NearCache } from '../adapters/pg/near-cache/index.js';
import { createReplicatedPool } from '../adapters/pg/replicated-pool.js';
import { SessionContext, withSession } from '../src/session/context.js';
import { checkHistory, HistoryRecorder } from '../src/testing/index.js';
import { startPostgresPrimary, startReplica } from '../test/harness/cluster.js';
import { markdownTable, percentile, writeResults } from './util.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 5);
const ROWS = Number(process.env['BENCH_ROWS'] ?? 100_000);
const SESSIONS = Number(process.env['BENCH_SESSIONS'] ?? 16);
/** The share of writes in each workload: one with writes (floors move), one of reads only. */
const WRITE_SHARES = [0.05, 0];
const VISIBILITY_SAMPLES = 200;
if (!(SECONDS > 0) || !(ROWS > 0) || !(SESSIONS > 0)) {
  throw new Error('BENCH_SECONDS, BENCH_ROWS and BENCH_SESSIONS must be > 0');
}

// A full collection before and after the load makes the heap difference the cache's own.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const primary = await startPostgresPrimary({ name: 'bench-nc-primary' });
const replica = await startReplica(primary, { name: 'bench-nc-replica' });
const direct = new pg.Pool({ connectionString: primary.url, max: SESSIONS });
const routed = createReplicatedPool({
  primary: { config: { connectionString: primary.url, max: SESSIONS } },
  replicas: [{ name: 'replica-1', config: { connectionString: replica.url, max: SESSIONS } }],
  replicaSetOptions: { checkTimeoutMs: 2000 },
});
routed.on('error', () => {});

await direct.query(`CREATE TABLE articles (id int PRIMARY KEY, slug text NOT NULL,
  title text NOT NULL, body text NOT NULL, version int NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now())`);
await direct.query(
  `INSERT INTO articles (id, slug, title, body)
   SELECT i, 'article-' || i, 'Title of article ' || i, repeat(md5(i::text), 4)
   FROM generate_series(1, $1) AS i`,
  [ROWS],
);
await direct.query('VACUUM ANALYZE articles');
// Wait for the replica to have the table before routing reads to it.
await routed.replicaSet.waitFor('replica-1', (await routed.replicaSet.writePosition())!, 30_000);

gc();
const heapBefore = process.memoryUsage().heapUsed;
const loadStarted = performance.now();
const cache = await NearCache.open({
  primary: primary.url,
  pool: routed,
  tables: [{ name: 'articles', indexes: { bySlug: ['slug'] } }],
});
const loadMs = performance.now() - loadStarted;
gc();
const heapAfter = process.memoryUsage().heapUsed;
const status = cache.status();
const articles = cache.table<{ id: number; version: number }>('articles');

interface TargetRun {
  target: string;
  reads: number;
  writes: number;
  latenciesMs: number[];
  cpuMs: number;
  elapsedMs: number;
  sources: Record<string, number>;
}

/** The session workload against one read path; the same writes (through the routed pool). */
async function runTarget(
  writeShare: number,
  target: string,
  read: (id: number) => Promise<{ version: number; node: string }>,
  recorder?: HistoryRecorder,
): Promise<TargetRun> {
  const run: TargetRun = {
    target,
    reads: 0,
    writes: 0,
    latenciesMs: [],
    cpuMs: 0,
    elapsedMs: 0,
    sources: {},
  };
  let seed = 42;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  let writeId = 0;
  const session = async (index: number) => {
    const context = new SessionContext({ id: `${writeShare}-${target}-${index}` });
    const name = context.id;
    while (performance.now() < deadline) {
      const id = 1 + Math.floor(random() * ROWS);
      const startedAt = performance.now();
      if (random() < writeShare) {
        const { rows } = await withSession(context, () =>
          routed.query(
            'UPDATE articles SET version = version + 1 WHERE id = $1 RETURNING version',
            [id],
          ),
        );
        run.writes++;
        recorder?.write({
          session: name,
          key: String(id),
          id: `${writeShare}-${target}-w${writeId++}`,
          version: rows[0].version,
          node: 'primary',
          startedAt,
          endedAt: performance.now(),
          acknowledged: true,
        });
        continue;
      }
      const answer = await withSession(context, () => read(id));
      const endedAt = performance.now();
      run.latenciesMs.push(endedAt - startedAt);
      run.reads++;
      run.sources[answer.node] = (run.sources[answer.node] ?? 0) + 1;
      recorder?.read({
        session: name,
        observed: { [id]: answer.version },
        node: answer.node,
        startedAt,
        endedAt,
      });
    }
  };
  await Promise.all(Array.from({ length: SESSIONS }, (_, i) => session(i)));
  run.elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuStart);
  run.cpuMs = (cpu.user + cpu.system) / 1000;
  return run;
}

const recorder = new HistoryRecorder();
// Where the routed pool sent the reads (its 'route' events; writes are 'not-read-only').
let routedTo: Record<string, number> = {};
routed.on('route', (event: { node: string; reason: string }) => {
  if (event.reason !== 'not-read-only') routedTo[event.node] = (routedTo[event.node] ?? 0) + 1;
});

async function runWorkload(writeShare: number): Promise<TargetRun[]> {
  // The workload with writes is recorded on every target (recording costs each alike); the
  // read-only one is not recorded, so that it measures the read paths alone.
  const record = writeShare > 0 ? recorder : undefined;
  const runs: TargetRun[] = [];
  runs.push(
    await runTarget(
      writeShare,
      'near cache',
      async (id) => {
        const answer = await articles.get(id);
        return { version: answer.value?.version ?? 0, node: answer.node };
      },
      record,
    ),
  );
  routedTo = {};
  const replicaRun = await runTarget(
    writeShare,
    'replica (routed pool)',
    async (id) => {
      const { rows } = await routed.query('SELECT id, version FROM articles WHERE id = $1', [id]);
      return { version: rows[0]?.version ?? 0, node: 'routed' };
    },
    record,
  );
  replicaRun.sources = routedTo;
  runs.push(replicaRun);
  runs.push(
    await runTarget(
      writeShare,
      'primary',
      async (id) => {
        const { rows } = await direct.query('SELECT id, version FROM articles WHERE id = $1', [id]);
        return { version: rows[0]?.version ?? 0, node: 'primary' };
      },
      record,
    ),
  );
  return runs;
}

const workloads: { writeShare: number; runs: TargetRun[] }[] = [];
for (const writeShare of WRITE_SHARES) {
  workloads.push({ writeShare, runs: await runWorkload(writeShare) });
}
const history = checkHistory(recorder.operations());

// Commit to visibility: one write at a time, the cache polled on every turn of the event loop.
const visibilityMs: number[] = [];
for (let i = 0; i < VISIBILITY_SAMPLES; i++) {
  const id = 1 + i;
  const sent = performance.now();
  const { rows } = await direct.query(
    'UPDATE articles SET version = version + 1 WHERE id = $1 RETURNING version',
    [id],
  );
  const version = rows[0].version as number;
  for (;;) {
    const answer = await withSession(new SessionContext({ id: 'visibility' }, 'eventual'), () =>
      articles.get(id),
    );
    if (answer.value !== undefined && answer.value.version >= version) break;
    await new Promise((resolve) => setImmediate(resolve));
  }
  visibilityMs.push(performance.now() - sent);
}

const perSecond = (run: TargetRun) => run.reads / (run.elapsedMs / 1000);
const perCpuSecond = (run: TargetRun) => run.reads / (run.cpuMs / 1000);
console.log(
  `${SESSIONS} sessions, ${SECONDS} s per target, reads by primary key at read-your-writes, writes through the routed pool; ${cpus().length} CPUs`,
);
for (const { writeShare, runs } of workloads) {
  console.log(`\n### ${(writeShare * 100).toFixed(0)} % writes\n`);
  console.log(
    markdownTable(
      ['target', 'reads', 'reads/s', 'reads per CPU-s (Node)', 'p50 ms', 'p99 ms', 'answered by'],
      runs.map((run) => [
        run.target,
        run.reads,
        perSecond(run),
        perCpuSecond(run),
        percentile(run.latenciesMs, 50),
        percentile(run.latenciesMs, 99),
        Object.entries(run.sources)
          .map(([node, count]) => `${node} ${((100 * count) / run.reads).toFixed(1)} %`)
          .join(', '),
      ]),
    ),
  );
  const [near, viaReplica] = runs as [TargetRun, TargetRun];
  console.log(
    `\nnear cache vs replica: ${(perSecond(near) / perSecond(viaReplica)).toFixed(1)}x reads/s, ` +
      `${(perCpuSecond(near) / perCpuSecond(viaReplica)).toFixed(1)}x reads per CPU-s`,
  );
}
console.log(
  `\nhistory checker on the runs with writes (all three targets): ${history.operations} operations, ${history.violations.length} violations`,
);
const bytesPerRow = (heapAfter - heapBefore) / ROWS;
console.log(
  `\nmemory: ${ROWS.toLocaleString('en-US')} rows loaded in ${loadMs.toFixed(0)} ms; heap after GC ${(bytesPerRow).toFixed(0)} bytes/row ` +
    `(${((heapAfter - heapBefore) / 1024 / 1024).toFixed(1)} MiB); the cache's own measure (no GC) ${status.bytesPerRow?.toFixed(0)} bytes/row`,
);
console.log(
  `commit to visibility in the cache (${VISIBILITY_SAMPLES} single writes, from sending the UPDATE): p50 ${percentile(visibilityMs, 50).toFixed(2)} ms, p99 ${percentile(visibilityMs, 99).toFixed(2)} ms`,
);
writeResults('nearcache', {
  sessions: SESSIONS,
  seconds: SECONDS,
  rows: ROWS,
  workloads: workloads.map(({ writeShare, runs }) => ({
    writeShare,
    runs: runs.map(({ latenciesMs, ...run }) => ({
      ...run,
      p50Ms: percentile(latenciesMs, 50),
      p99Ms: percentile(latenciesMs, 99),
    })),
  })),
  violations: history.violations.length,
  bytesPerRow,
  cacheBytesPerRow: status.bytesPerRow,
  loadMs,
  visibilityP50Ms: percentile(visibilityMs, 50),
  visibilityP99Ms: percentile(visibilityMs, 99),
});

await cache.close();
await routed.end();
await direct.end();
await replica.stop();
await primary.stop();
process.exit(history.violations.length === 0 ? 0 : 1);
