// BullMQ on the harness's Redis, the worker's reads through a routed pool over the primary and
// the replica 1.5 s behind: the enqueuing session travels with the job, under its policy.
import { randomBytes } from 'node:crypto';
import { type Job, Queue, QueueEvents, Worker } from 'bullmq';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createReplicatedPool,
  type PoolRouteEvent,
  type ReplicatedPool,
} from '../../../adapters/pg/replicated-pool.js';
import { bullmqConsistency, type DataConsistency } from '../../../src/jobs/bullmq.js';
import { withSession } from '../../../src/session/context.js';
import { consistency } from '../../../src/session/express.js';
import { testEnv } from '../../harness/env.js';

const env = testEnv();
const TABLE = `jobs_${randomBytes(4).toString('hex')}`;
const QUEUE = `causeway-jobs-${randomBytes(4).toString('hex')}`;
const redisUrl = new URL(env.redisUrl);
const connection = {
  host: redisUrl.hostname,
  port: Number(redisUrl.port),
  maxRetriesPerRequest: null,
};

interface Seen {
  found: boolean;
  targets: string[];
  delays: number;
}

let direct: pg.Pool;
let pool: ReplicatedPool;
let queue: Queue;
let events: QueueEvents;
let worker: Worker;
const routes: PoolRouteEvent[] = [];
const c = consistency({ secret: 'jobs-test-secret-of-at-least-32-chars' });

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

  const jobs = bullmqConsistency({
    consistency: c,
    router: pool.router,
    delayMs: 300,
    maxDelays: 20,
  });
  const impatient = bullmqConsistency({
    consistency: c,
    router: pool.router,
    delayMs: 50,
    maxDelays: 1,
  });
  queue = new Queue(QUEUE, { connection });
  events = new QueueEvents(QUEUE, { connection });
  await events.waitUntilReady();
  type Data = { id: string; impatient?: boolean };
  const read = async (job: { data: Data }): Promise<Seen> => {
    const before = routes.length;
    const { rows } = await pool.query(`SELECT 1 FROM ${TABLE} WHERE id = $1`, [job.data.id]);
    return {
      found: rows.length === 1,
      targets: routes.slice(before).map((event) => event.target),
      delays: (job.data as { causewayDelays?: number }).causewayDelays ?? 0,
    };
  };
  const patientProcessor = jobs.processor<Data, Seen>(read);
  const impatientProcessor = impatient.processor<Data, Seen>(read);
  worker = new Worker<Data, Seen>(
    QUEUE,
    (job: Job<Data, Seen>, token?: string) =>
      job.data.impatient ? impatientProcessor(job, token) : patientProcessor(job, token),
    { connection, concurrency: 4 },
  );
  await worker.waitUntilReady();

  // Enqueues from inside a session that just wrote the row, as a request would.
  enqueue = async (policy, extra = {}) =>
    withSession(undefined, async () => {
      const id = randomBytes(6).toString('hex');
      await pool.query(`INSERT INTO ${TABLE} VALUES ($1)`, [id]);
      const started = performance.now();
      const job = await queue.add('read', jobs.data({ id, ...extra }, policy));
      const seen = (await job.waitUntilFinished(events, 30_000)) as Seen;
      return { seen, ms: performance.now() - started };
    });
});

let enqueue: (
  policy: DataConsistency | undefined,
  extra?: Record<string, unknown>,
) => Promise<{ seen: Seen; ms: number }>;

afterAll(async () => {
  await worker?.close();
  await events?.close();
  await queue?.obliterate({ force: true }).catch(() => {});
  await queue?.close();
  await pool?.end();
  await direct?.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await direct?.end();
});

describe('bullmqConsistency', () => {
  it("'sticky': the worker reads the enqueuing request's write (on the primary while the replica lags)", async () => {
    const { seen } = await enqueue('sticky');
    expect(seen.found).toBe(true);
  });

  it("'always': every read on the primary", async () => {
    const { seen } = await enqueue('always');
    expect(seen).toMatchObject({ found: true, targets: ['leader'] });
  });

  it("'delayed': re-queued until the replica applied the write, then read there", async () => {
    const { seen, ms } = await enqueue('delayed');
    expect(seen.found).toBe(true);
    if (ms < env.replicaDelayMs) return; // the replica was already there: nothing to delay
    expect(seen.delays).toBeGreaterThan(0);
    expect(seen.targets).toEqual(['replica']);
  });

  it("'delayed' after maxDelays: runs on the primary", async () => {
    const { seen, ms } = await enqueue('delayed', { impatient: true });
    expect(seen.found).toBe(true);
    if (ms > env.replicaDelayMs) return; // a slow machine: the replica may have caught up
    expect(seen).toMatchObject({ delays: 1, targets: ['leader'] });
  });

  it('a job without a session, or with a forged one, runs in a fresh session', async () => {
    const id = randomBytes(6).toString('hex');
    for (const data of [{ id }, { id, causewaySession: 'forged', causewayPolicy: 'delayed' }]) {
      const job = await queue.add('read', data);
      const seen = (await job.waitUntilFinished(events, 30_000)) as Seen;
      expect(seen.found).toBe(false);
    }
  });
});
