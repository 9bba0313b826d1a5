/**
 * A master failover during a fencing workload on a real Redis Cluster, shared by
 * bench/clusters.bench.ts and test/integration/redis-cluster: one loop acquires, checks and
 * releases a lease on one resource while the replica of the resource's master takes over, and
 * every token granted is kept in order, so that a token not above all before it is counted.
 */
import type { Cluster } from 'ioredis';
import {
  RedisFenceGuard,
  RedisLeaseManager,
  type RedisReplicaWait,
} from '../adapters/redis/fencing.js';
import { sleep } from '../src/util/timers.js';
import type { RedisClusterHandle } from '../test/harness/redis-cluster.js';

/**
 * `'graceful'`: `CLUSTER FAILOVER` (the replica catches up with its master first);
 * `'takeover'`: `CLUSTER FAILOVER TAKEOVER` (at once, without the master's agreement);
 * `'lagging-takeover'`: the same, sent to a replica that is behind: its replication link is cut
 * (`CLIENT KILL TYPE master` on the replica; it reconnects within about a second) and 200 ms
 * later, while the master goes on granting tokens the replica does not receive, it takes over.
 */
export type FailoverKind = 'graceful' | 'takeover' | 'lagging-takeover';

export interface FailoverTrial {
  /** Tokens granted, in the order `acquire` returned them. */
  readonly granted: number;
  /** Tokens granted that were not above every token granted before them. */
  readonly back: number;
  /** Calls that failed (during the switch, or `waitForReplicas` refusing). */
  readonly errors: number;
  /** The messages of the failed calls, each once. */
  readonly errorMessages: readonly string[];
}

/** Runs the workload on `resource`, fails its master over once it is going, and stops after. */
export async function failoverTrial(
  cluster: RedisClusterHandle,
  redis: Cluster,
  resource: string,
  kind: FailoverKind,
  waitForReplicas?: RedisReplicaWait,
): Promise<FailoverTrial> {
  const leases = new RedisLeaseManager(
    waitForReplicas === undefined ? { redis } : { redis, waitForReplicas },
  );
  const guard = new RedisFenceGuard({ redis });
  const tokens: bigint[] = [];
  let errors = 0;
  const errorMessages = new Set<string>();
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const lease = await leases.acquire(resource, { ttlMs: 5000 });
        tokens.push(lease.token);
        await guard.check(resource, lease.token);
        await lease.release();
      } catch (error) {
        errors++;
        errorMessages.add(String(error).slice(0, 200));
        await sleep(5);
      }
    }
  })();
  const until = async (check: () => boolean | Promise<boolean>) => {
    const deadline = Date.now() + 20_000;
    while (!(await check())) {
      if (Date.now() > deadline) {
        throw new Error(`failover trial: condition not reached (${[...errorMessages].join('; ')})`);
      }
      await sleep(20);
    }
  };
  try {
    await until(() => tokens.length >= 50);
    const before = await cluster.ownersOf(`{${resource}}`);
    if (before.replica === undefined) throw new Error(`${resource}: its master has no replica`);
    const args =
      kind === 'graceful' ? ['CLUSTER', 'FAILOVER'] : ['CLUSTER', 'FAILOVER', 'TAKEOVER'];
    if (kind === 'lagging-takeover') {
      await cluster.cli(before.replica, 'CLIENT', 'KILL', 'TYPE', 'master');
      await sleep(200);
      await cluster.cli(before.replica, ...args);
    } else {
      await cluster.cli(before.replica, ...args);
    }
    await until(async () => (await cluster.ownersOf(`{${resource}}`)).master === before.replica);
    const switchedAt = tokens.length;
    await until(() => tokens.length >= switchedAt + 50);
  } finally {
    running = false;
    await loop;
  }
  await cluster.waitUntilStable();
  let newest = -1n;
  let back = 0;
  for (const token of tokens) {
    if (token <= newest) back++;
    else newest = token;
  }
  return { granted: tokens.length, back, errors, errorMessages: [...errorMessages] };
}
