/**
 * What the workload tests share: private servers (the tests stop and restart them, which the
 * shared integration cluster must never see) and a `ChaosContext` like the driver's.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from '../../../src/util/timers.js';
import {
  type Cluster,
  type PgServer,
  type RedisServer,
  startPostgresPrimary,
  startRedis,
} from '../../harness/cluster.js';
import { createRng } from '../rng.js';
import type { ChaosContext } from '../types.js';

export interface PrivateServers {
  /**
   * The servers as the driver's `Cluster`; only `primary`, `primary2` and `redis` exist (the
   * workloads use nothing else), the replicas throw when touched.
   */
  readonly cluster: Cluster;
  stop(): Promise<void>;
}

/** Starts the servers a workload uses: a primary, and `primary2` and Redis if asked. */
export async function privateServers(
  name: string,
  want: { primary2?: boolean; redis?: boolean },
): Promise<PrivateServers> {
  const [primary, primary2, redis] = await Promise.all([
    startPostgresPrimary({ name: `${name}-primary` }),
    want.primary2 ? startPostgresPrimary({ name: `${name}-primary2` }) : undefined,
    want.redis ? startRedis({ name: `${name}-redis` }) : undefined,
  ]);
  const missing = (what: string) => () => {
    throw new Error(`${what} is not started for this test`);
  };
  const cluster = Object.defineProperties(
    { primary, replicaDelayMs: 0, stop: () => stopAll() },
    {
      primary2: { get: primary2 ? () => primary2 : missing('primary2') },
      redis: { get: redis ? () => redis : missing('redis') },
      replica: { get: missing('replica') },
      laggingReplica: { get: missing('laggingReplica') },
    },
  ) as unknown as Cluster;
  const servers: (PgServer | RedisServer | undefined)[] = [primary, primary2, redis];
  const stopAll = async () => {
    await Promise.allSettled(servers.map((server) => server?.stop()));
  };
  return { cluster, stop: stopAll };
}

/** A context like the driver's, with the events kept in `events` (printed when a test fails). */
export function chaosContext(cluster: Cluster, seed: number): ChaosContext & { events: string[] } {
  const events: string[] = [];
  return {
    cluster,
    rng: createRng(seed),
    log: (event) => events.push(event),
    outDir: mkdtempSync(join(tmpdir(), 'causeway-chaos-test-')),
    events,
  };
}

/** The same context, with a generator whose `pick` chooses `choice` (to aim a fault). */
export function aimed<T>(ctx: ChaosContext, choice: T): ChaosContext {
  const rng = ctx.rng.fork();
  return {
    ...ctx,
    rng: {
      ...rng,
      pick: <U>(items: readonly U[]) =>
        items.includes(choice as unknown as U) ? (choice as unknown as U) : rng.pick(items),
    },
  };
}

/** Resolves once `condition()` holds (checked every 50 ms); rejects after `timeoutMs`. */
export async function until(condition: () => boolean, what: string, timeoutMs = 30_000) {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
