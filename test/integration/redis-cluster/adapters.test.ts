import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisFenceGuard, RedisLeaseManager } from '../../../adapters/redis/fencing.js';
import { RedisSessionStore } from '../../../adapters/redis/session-store.js';
import { RedisVersionedStore } from '../../../adapters/redis/versioned-store.js';
import { failoverTrial } from '../../../bench/redis-failover.js';
import { ErrorCode } from '../../../src/errors.js';
import { type RedisClusterHandle, startRedisCluster } from '../../harness/redis-cluster.js';

// A real Redis Cluster (three masters, one replica each) started for this file only.
let cluster: RedisClusterHandle;
let redis: Cluster;

beforeAll(async () => {
  cluster = await startRedisCluster();
  redis = new Cluster([...cluster.seeds]);
}, 60_000);

afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop();
});

/** How many keys each master holds: a spread over several shows the slots were really used. */
async function keysPerMaster(): Promise<number[]> {
  return Promise.all(redis.nodes('master').map((node) => node.dbsize()));
}

describe('Redis adapters on a Redis Cluster', () => {
  it('session store, versioned store, leases and fences work across the slots of three masters', async () => {
    const sessions = new RedisSessionStore({ redis, timeoutMs: 2000 });
    const versions = new RedisVersionedStore<number>({ redis, handler: 'siblings' });
    const leases = new RedisLeaseManager({ redis });
    const guard = new RedisFenceGuard({ redis });
    for (let i = 0; i < 24; i++) {
      const stream = (n: number) => ({ stream: `cluster-${n}`, epoch: 1, lsn: BigInt(i + n) });
      await sessions.set(`user-${i}`, { id: `s${i}`, writeFloor: stream(0) });
      await sessions.set(`user-${i}`, { id: `s${i}`, readFloor: stream(1) });
      expect(await sessions.get(`user-${i}`)).toEqual({
        id: `s${i}`,
        readFloor: stream(1),
        otherStreams: [{ writeFloor: stream(0) }],
      });

      await versions.put(`doc-${i}`, i, { actor: 'a' });
      const { context } = await versions.get(`doc-${i}`);
      expect((await versions.put(`doc-${i}`, i + 1, { actor: 'a', context })).values).toEqual([
        i + 1,
      ]);

      const resource = `job-${i}`;
      const first = await leases.acquire(resource, { ttlMs: 10_000 });
      await guard.setIfCurrent(resource, first.token, `{${resource}}:output`, 'first');
      await first.release();
      const second = await leases.acquire(resource, { ttlMs: 10_000 });
      expect(second.token).toBeGreaterThan(first.token);
      await guard.setIfCurrent(resource, second.token, `{${resource}}:output`, 'second');
      await expect(guard.check(resource, first.token)).rejects.toMatchObject({
        code: ErrorCode.STALE_FENCING_TOKEN,
      });
      expect(await redis.get(`{${resource}}:output`)).toBe('second');
    }
    const spread = await keysPerMaster();
    expect(spread.filter((count) => count > 0).length).toBe(3);
  }, 60_000);

  it('a graceful CLUSTER FAILOVER during a fencing workload: tokens never go backwards', async () => {
    const trial = await failoverTrial(cluster, redis, 'failover-graceful', 'graceful');
    expect(trial.back).toBe(0);
    expect(trial.errors).toBe(0);
  }, 60_000);

  it('CLUSTER FAILOVER TAKEOVER with waitForReplicas: no token granted twice', async () => {
    for (let i = 0; i < 3; i++) {
      const trial = await failoverTrial(cluster, redis, `failover-takeover-${i}`, 'takeover', {
        replicas: 1,
        timeoutMs: 100,
      });
      expect(trial.back).toBe(0);
    }
  }, 120_000);

  it('waitForReplicas refuses a token no replica acknowledged, and releases its lease', async () => {
    const leases = new RedisLeaseManager({
      redis,
      waitForReplicas: { replicas: 2, timeoutMs: 50 },
    });
    await expect(leases.acquire('wait-too-many', { ttlMs: 5000 })).rejects.toMatchObject({
      code: ErrorCode.LEASE_NOT_HELD,
      details: { reason: 'not-replicated' },
    });
    // Released: a manager asking for the one replica there is gets the lease at once.
    const one = new RedisLeaseManager({ redis, waitForReplicas: { replicas: 1, timeoutMs: 2000 } });
    expect((await one.acquire('wait-too-many', { ttlMs: 5000 })).token).toBeGreaterThan(0n);
    expect(
      () => new RedisLeaseManager({ redis, waitForReplicas: { replicas: 0, timeoutMs: 1 } }),
    ).toThrow(expect.objectContaining({ code: ErrorCode.CONFIG }));
  });
});
