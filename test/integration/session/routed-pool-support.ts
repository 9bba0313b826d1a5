// Shared by the routed pool's integration tests: a pool over the test cluster that records its
// route events and is ended after the file, a table every replica has, and the lag helpers.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect } from 'vitest';
import { SqlClassifier } from '../../../adapters/pg/classify/index.js';
import {
  createReplicatedPool,
  type PoolRouteEvent,
  type ReplicatedPool,
} from '../../../adapters/pg/replicated-pool.js';
import type { Position } from '../../../src/session/position.js';
import { testEnv } from '../../harness/env.js';

const env = testEnv();
const pools: ReplicatedPool[] = [];
let catalog: pg.Pool | undefined;
/**
 * One classifier for every pool of a file, its catalog loaded before the first test (see
 * `classifierReady`): a new pool's own would send calls and operators to the primary until its
 * catalog has loaded.
 */
const classifier = new SqlClassifier();

/** Loads the shared classifier's catalog; call it in `beforeAll`. */
export async function classifierReady(): Promise<void> {
  catalog ??= new pg.Pool({ connectionString: env.primaryUrl, max: 1 });
  const from = catalog;
  classifier.useCatalog((sql) => from.query(sql));
  await classifier.ready();
}

/** A routed pool over the primary and the given replicas, recording its route events. */
export function routedPool(
  replicas: Record<string, string>,
  extra: Partial<Parameters<typeof createReplicatedPool>[0]> = {},
  primaryConfig: Record<string, unknown> = {},
) {
  const pool = createReplicatedPool({
    primary: { config: { connectionString: env.primaryUrl, max: 4, ...primaryConfig } },
    replicas: Object.entries(replicas).map(([name, url]) => ({
      name,
      config: { connectionString: url, max: 4 },
    })),
    // A check slower than the default 100 ms would mark a replica down for a second; on a
    // loaded CI machine that happens, and tests asserting a replica target would flake.
    replicaSetOptions: { checkTimeoutMs: 2000, connectTimeoutMs: 10_000 },
    classifier,
    ...extra,
  });
  pool.on('error', () => {});
  const events: PoolRouteEvent[] = [];
  pool.on('route', (event: PoolRouteEvent) => events.push(event));
  pools.push(pool);
  return { pool, events };
}

/** Ends every pool `routedPool` made that is not ended yet. */
export async function endRoutedPools(): Promise<void> {
  await Promise.all(
    pools
      .splice(0)
      .filter((pool) => !pool.ending)
      .map((pool) => pool.end()),
  );
}

/** Waits until `node` has applied `position` (the lagging replica needs about its delay). */
export async function caughtUp(
  pool: ReplicatedPool,
  node: string,
  position: Position | undefined,
): Promise<void> {
  expect(position).toBeDefined();
  expect(await pool.replicaSet.waitFor(node, position!, 15_000)).toBe(true);
}

/**
 * Runs `attempt` (a write, then what must hold while the lagging replica has not applied it)
 * until a run ends within the replica's apply delay of its start: such a run proves the replica
 * could not have applied the write (the delay counts from the commit, after the start). A loaded
 * machine can stall a run past the delay, after which the replica may have caught up: a failure
 * in such a late run says nothing, so it is retried (at most 5 runs); a failure on time is real.
 */
export async function beforeLaggingApplies<T>(attempt: () => Promise<T>): Promise<T> {
  for (let run = 1; ; run++) {
    const started = performance.now();
    try {
      return await attempt();
    } catch (error) {
      if (performance.now() - started < env.replicaDelayMs || run === 5) throw error;
    }
  }
}

/**
 * A file's table `<prefix>_<random>` (id int PRIMARY KEY, v text NOT NULL): created before the
 * file's tests, which start once every one of `replicas` has it, and dropped after them, when
 * the pools `routedPool` made are ended. `direct` is a plain pool on the primary (setup and
 * checks); `newId()` gives the file's next unused id.
 */
export function tableForFile(prefix: string, replicas: Record<string, string>) {
  const table = `${prefix}_${randomBytes(4).toString('hex')}`;
  const direct = new pg.Pool({ connectionString: env.primaryUrl, max: 2 });
  let nextId = 1;
  beforeAll(async () => {
    await classifierReady();
    await direct.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text NOT NULL)`);
    const { pool } = routedPool(replicas);
    const created = await pool.replicaSet.writePosition();
    for (const name of Object.keys(replicas)) await caughtUp(pool, name, created);
  });
  afterAll(async () => {
    await endRoutedPools();
    await direct.query(`DROP TABLE IF EXISTS ${table}`);
    await direct.end();
  });
  return { table, direct, newId: () => nextId++ };
}
