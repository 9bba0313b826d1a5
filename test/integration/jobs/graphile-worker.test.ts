// graphile-worker on the harness primary (its own schema), the task's reads through a routed pool
// over the primary and the replica 1.5 s behind: the enqueuing session travels with the job.
import { randomBytes } from 'node:crypto';
import {
  type JobHelpers,
  makeWorkerUtils,
  type Runner,
  run,
  type WorkerUtils,
} from 'graphile-worker';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createReplicatedPool,
  type PoolRouteEvent,
  type ReplicatedPool,
} from '../../../adapters/pg/replicated-pool.js';
import {
  type DataConsistency,
  graphileWorkerConsistency,
} from '../../../src/jobs/graphile-worker.js';
import { withSession } from '../../../src/session/context.js';
import { consistency } from '../../../src/session/express.js';
import { testEnv } from '../../harness/env.js';

const env = testEnv();
const suffix = randomBytes(4).toString('hex');
const TABLE = `gw_rows_${suffix}`;
const SCHEMA = `gw_${suffix}`;

interface Seen {
  found: boolean;
  targets: string[];
  delays: number;
}

let direct: pg.Pool;
let pool: ReplicatedPool;
let runner: Runner;
let utils: WorkerUtils;
const routes: PoolRouteEvent[] = [];
const finished = new Map<string, (seen: Seen) => void>();
const c = consistency({ secret: 'graphile-test-secret-of-32-characters' });
const jobs = () =>
  graphileWorkerConsistency({ consistency: c, router: pool.router, delayMs: 300, maxDelays: 20 });

beforeAll(async () => {
  direct = new pg.Pool({ connectionString: env.primaryUrl, max: 2 });
  await direct.query(`CREATE TABLE ${TABLE} (id text PRIMARY KEY)`);
  pool = createReplicatedPool({
    primary: { config: { connectionString: env.primaryUrl, max: 4 } },
    replicas: [{ name: 'lagging', config: { connectionString: env.laggingReplicaUrl, max: 4 } }],
    replicaSetOptions: { checkTimeoutMs: 2000, connectTimeoutMs: 10_000 },
  });
  pool.on('error', () => {});
  pool.on('route', (event: PoolRouteEvent) => routes.push(event));
  const created = await pool.replicaSet.writePosition();
  expect(await pool.replicaSet.waitFor('lagging', created!, 15_000)).toBe(true);

  type Payload = { id: string; causewayDelays?: number };
  runner = await run({
    connectionString: env.primaryUrl,
    schema: SCHEMA,
    concurrency: 2,
    pollInterval: 200,
    noHandleSignals: true,
    logger: undefined,
    taskList: {
      read: jobs().task<Payload, JobHelpers>(async (payload) => {
        const before = routes.length;
        const { rows } = await pool.query(`SELECT 1 FROM ${TABLE} WHERE id = $1`, [payload.id]);
        finished.get(payload.id)?.({
          found: rows.length === 1,
          targets: routes.slice(before).map((event) => event.target),
          delays: payload.causewayDelays ?? 0,
        });
      }),
    },
  });
  utils = await makeWorkerUtils({ connectionString: env.primaryUrl, schema: SCHEMA });
});

afterAll(async () => {
  await runner?.stop();
  await utils?.release();
  await pool?.end();
  await direct?.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await direct?.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await direct?.end();
});

function enqueue(policy: DataConsistency): Promise<{ seen: Seen; ms: number }> {
  return withSession(undefined, async () => {
    const id = randomBytes(6).toString('hex');
    await pool.query(`INSERT INTO ${TABLE} VALUES ($1)`, [id]);
    const started = performance.now();
    const done = new Promise<Seen>((resolve) => finished.set(id, resolve));
    await utils.addJob('read', jobs().payload({ id }, policy));
    const seen = await done;
    return { seen, ms: performance.now() - started };
  });
}

describe('graphileWorkerConsistency', () => {
  it("'sticky': the task reads the enqueuing session's write", async () => {
    expect((await enqueue('sticky')).seen.found).toBe(true);
  });

  it("'always': on the primary", async () => {
    expect((await enqueue('always')).seen).toMatchObject({ found: true, targets: ['leader'] });
  });

  it("'delayed': added again until the replica applied the write, then read there", async () => {
    const { seen, ms } = await enqueue('delayed');
    expect(seen.found).toBe(true);
    if (ms < env.replicaDelayMs) return;
    expect(seen.delays).toBeGreaterThan(0);
    expect(seen.targets).toEqual(['replica']);
  });
});
