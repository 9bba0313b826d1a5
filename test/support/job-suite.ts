// One behaviour suite for every job adapter (BullMQ, pg-boss, graphile-worker) on the harness's
// cluster: a session writes a row and enqueues a job about it, and the worker reads the row
// through a routed pool over the primary and the replica 1.5 s behind. Each adapter's test starts
// its queue and worker (`StartQueue`); these cases check what every adapter must keep.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createReplicatedPool,
  type PoolRouteEvent,
  type ReplicatedPool,
} from '../../adapters/pg/replicated-pool.js';
import type { DataConsistency, JobConsistencyOptions } from '../../src/jobs/policy.js';
import { withSession } from '../../src/session/context.js';
import { consistency } from '../../src/session/express.js';
import { testEnv } from '../harness/env.js';

/** A job's payload: the row to read; `impatient` jobs run under `QueueSetup.impatient`. */
export interface JobPayload {
  readonly id: string;
  readonly impatient?: boolean;
  readonly causewayDelays?: number;
}

/** What the adapter's queue and worker must offer the suite. */
export interface QueueSetup {
  /** The adapter options for most jobs: up to 20 delays of 300 ms. */
  readonly patient: JobConsistencyOptions;
  /** The adapter options for `impatient` jobs: one delay of 50 ms, then the primary. */
  readonly impatient: JobConsistencyOptions;
  /** Unique per run: for queue, schema and table names. */
  readonly suffix: string;
  /** The worker's body (run inside the adapter's wrapper): reads the row, reports it. */
  work(payload: JobPayload): Promise<void>;
}

/** A started queue: `payload` adds the session fields (the adapter's `data()`/`payload()`). */
export interface StartedQueue {
  payload(data: JobPayload, policy: DataConsistency): object;
  add(payload: object): Promise<void>;
  close(): Promise<void>;
}

export type StartQueue = (setup: QueueSetup) => Promise<StartedQueue>;

/** What the worker saw: whether the row was there, where its reads went, how often delayed. */
interface Seen {
  found: boolean;
  targets: string[];
  delays: number;
}

/** The suite: `describeJobAdapter('bullmqConsistency', start)`. */
export function describeJobAdapter(name: string, start: StartQueue): void {
  const env = testEnv();
  const suffix = randomBytes(4).toString('hex');
  const table = `job_rows_${suffix}`;
  const routes: PoolRouteEvent[] = [];
  const finished = new Map<string, (seen: Seen) => void>();
  let direct: pg.Pool;
  let pool: ReplicatedPool;
  let queue: StartedQueue;

  beforeAll(async () => {
    direct = new pg.Pool({ connectionString: env.primaryUrl, max: 2 });
    await direct.query(`CREATE TABLE ${table} (id text PRIMARY KEY)`);
    pool = createReplicatedPool({
      primary: { config: { connectionString: env.primaryUrl, max: 4 } },
      replicas: [{ name: 'lagging', config: { connectionString: env.laggingReplicaUrl, max: 4 } }],
      replicaSetOptions: { checkTimeoutMs: 2000, connectTimeoutMs: 10_000 },
    });
    pool.on('error', () => {});
    pool.on('route', (event: PoolRouteEvent) => routes.push(event));
    const created = await pool.replicaSet.writePosition();
    expect(await pool.replicaSet.waitFor('lagging', created!, 15_000)).toBe(true);
    const c = consistency({ secret: `job-suite-secret-of-32-characters-${suffix}` });
    queue = await start({
      patient: { consistency: c, router: pool.router, delayMs: 300, maxDelays: 20 },
      impatient: { consistency: c, router: pool.router, delayMs: 50, maxDelays: 1 },
      suffix,
      async work(payload) {
        const before = routes.length;
        const { rows } = await pool.query(`SELECT 1 FROM ${table} WHERE id = $1`, [payload.id]);
        finished.get(payload.id)?.({
          found: rows.length === 1,
          targets: routes.slice(before).map((event) => event.target),
          delays: payload.causewayDelays ?? 0,
        });
      },
    });
  });

  afterAll(async () => {
    await queue?.close();
    await pool?.end();
    await direct?.query(`DROP TABLE IF EXISTS ${table}`);
    await direct?.end();
  });

  /** Runs `payload`'s job (added by `add`) and waits for what its worker saw. */
  async function run(id: string, add: () => Promise<void>): Promise<Seen> {
    const done = new Promise<Seen>((resolve) => finished.set(id, resolve));
    await add();
    return done;
  }

  /** Writes a row in a session and enqueues a job about it from there, as a request would. */
  function enqueue(policy: DataConsistency, impatient = false) {
    return withSession(undefined, async () => {
      const id = randomBytes(6).toString('hex');
      await pool.query(`INSERT INTO ${table} VALUES ($1)`, [id]);
      const started = performance.now();
      const seen = await run(id, () => queue.add(queue.payload({ id, impatient }, policy)));
      return { seen, ms: performance.now() - started };
    });
  }

  describe(name, () => {
    it("'sticky': the worker reads the enqueuing session's write (on the primary while the replica lags)", async () => {
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
      const { seen, ms } = await enqueue('delayed', true);
      expect(seen.found).toBe(true);
      if (ms > env.replicaDelayMs) return; // a slow machine: the replica may have caught up
      expect(seen).toMatchObject({ delays: 1, targets: ['leader'] });
    });

    it('a job without a session, or with a forged one, runs in a fresh session', async () => {
      const id = randomBytes(6).toString('hex');
      const payloads = [{ id }, { id, causewaySession: 'forged', causewayPolicy: 'delayed' }];
      for (const payload of payloads) {
        const seen = await run(id, () => queue.add(payload));
        expect(seen).toMatchObject({ found: false, delays: 0 });
      }
    });
  });
}
