// pg-boss on the harness primary (its own schema), the worker's reads through a routed pool over
// the primary and the replica 1.5 s behind: the enqueuing session travels with the job.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createReplicatedPool,
  type PoolRouteEvent,
  type ReplicatedPool,
} from '../../../adapters/pg/replicated-pool.js';
import type { DataConsistency } from '../../../src/jobs/pg-boss.js';
import { pgBossConsistency } from '../../../src/jobs/pg-boss.js';
import { withSession } from '../../../src/session/context.js';
import { consistency } from '../../../src/session/express.js';
import { testEnv } from '../../harness/env.js';

const env = testEnv();
const suffix = randomBytes(4).toString('hex');
const TABLE = `boss_rows_${suffix}`;
const SCHEMA = `boss_${suffix}`;
const QUEUE = 'reads';

interface Seen {
  found: boolean;
  targets: string[];
  delays: number;
}

let direct: pg.Pool;
let pool: ReplicatedPool;
let boss: PgBoss;
const routes: PoolRouteEvent[] = [];
const finished = new Map<string, (seen: Seen) => void>();
const c = consistency({ secret: 'pg-boss-test-secret-of-32-characters' });
let jobs: ReturnType<typeof pgBossConsistency>;

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

  boss = new PgBoss({ connectionString: env.primaryUrl, schema: SCHEMA, max: 3 });
  boss.on('error', () => {});
  await boss.start();
  await boss.createQueue(QUEUE);
  jobs = pgBossConsistency({ consistency: c, router: pool.router, delayMs: 300, maxDelays: 20 });
  type Data = { id: string; causewayDelays?: number };
  await boss.work<Data>(
    QUEUE,
    { pollingIntervalSeconds: 0.5 },
    jobs.handler<Data, void>(boss, async (job) => {
      const before = routes.length;
      const { rows } = await pool.query(`SELECT 1 FROM ${TABLE} WHERE id = $1`, [job.data.id]);
      finished.get(job.data.id)?.({
        found: rows.length === 1,
        targets: routes.slice(before).map((event) => event.target),
        delays: job.data.causewayDelays ?? 0,
      });
    }),
  );
});

afterAll(async () => {
  await boss?.stop({ graceful: false }).catch(() => {});
  await pool?.end();
  await direct?.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await direct?.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await direct?.end();
});

/** Writes a row in a session and enqueues a job about it from there, as a request would. */
function enqueue(policy: DataConsistency): Promise<{ seen: Seen; ms: number }> {
  return withSession(undefined, async () => {
    const id = randomBytes(6).toString('hex');
    await pool.query(`INSERT INTO ${TABLE} VALUES ($1)`, [id]);
    const started = performance.now();
    const done = new Promise<Seen>((resolve) => finished.set(id, resolve));
    await boss.send(QUEUE, jobs.data({ id }, policy));
    const seen = await done;
    return { seen, ms: performance.now() - started };
  });
}

describe('pgBossConsistency', () => {
  it("'sticky': the worker reads the enqueuing session's write", async () => {
    const { seen } = await enqueue('sticky');
    expect(seen.found).toBe(true);
  });

  it("'always': on the primary", async () => {
    const { seen } = await enqueue('always');
    expect(seen).toMatchObject({ found: true, targets: ['leader'] });
  });

  it("'delayed': sent again until the replica applied the write, then read there", async () => {
    const { seen, ms } = await enqueue('delayed');
    expect(seen.found).toBe(true);
    if (ms < env.replicaDelayMs) return; // the replica was already there
    expect(seen.delays).toBeGreaterThan(0);
    expect(seen.targets).toEqual(['replica']);
  });
});
