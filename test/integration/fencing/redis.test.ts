import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisFenceGuard, RedisLeaseManager } from '../../../adapters/redis/index.js';
import { isCausewayError } from '../../../src/errors.js';
import { type RedisServer, startRedis } from '../../harness/cluster.js';
import { testEnv } from '../../harness/env.js';
import { codeOf } from '../../support/errors.js';
import { deleteKeys, suffix } from './fixtures.js';

const redis = new Redis(testEnv().redisUrl);
const keyPrefix = `fence-test:${suffix()}:`;
const guard = new RedisFenceGuard({ redis, keyPrefix });
const manager = new RedisLeaseManager({ redis, keyPrefix });
const key = (resource: string, kind: string) => `${keyPrefix}{${resource}}:${kind}`;

afterAll(async () => {
  await deleteKeys(redis, keyPrefix);
  redis.disconnect();
});

describe('RedisFenceGuard', () => {
  it('eval runs a script with its own KEYS and ARGV only when the token is current', async () => {
    const resource = `r-${suffix()}`;
    const counter = key(resource, 'count');
    const script = `
      local added = redis.call('INCRBY', KEYS[1], ARGV[1])
      return { #KEYS, #ARGV, added }`;
    expect(await guard.eval(resource, 5n, script, [counter], [2])).toEqual([1, 1, 2]);
    expect(await guard.eval(resource, 6n, script, [counter], [3])).toEqual([1, 1, 5]);
    expect(await codeOf(guard.eval(resource, 5n, script, [counter], [100]))).toBe(
      'STALE_FENCING_TOKEN',
    );
    expect(await redis.get(counter)).toBe('5');
  });

  it('setIfCurrent writes with an expiry, and a stale token leaves the value alone', async () => {
    const resource = `r-${suffix()}`;
    const data = key(resource, 'data');
    await guard.setIfCurrent(resource, 10n, data, 'current', { pxMs: 60_000 });
    expect(await redis.pttl(data)).toBeGreaterThan(50_000);
    expect(await codeOf(guard.setIfCurrent(resource, 9n, data, 'stale'))).toBe(
      'STALE_FENCING_TOKEN',
    );
    expect(await redis.get(data)).toBe('current');
  });

  it('compares tokens beyond 2^53 exactly', async () => {
    const resource = `r-${suffix()}`;
    const big = 2n ** 62n + 1n;
    await guard.check(resource, big);
    expect(await codeOf(guard.check(resource, big - 1n))).toBe('STALE_FENCING_TOKEN');
    await guard.check(resource, big);
    await guard.check(resource, 2n ** 63n - 1n);
    expect(await redis.get(key(resource, 'fence'))).toBe((2n ** 63n - 1n).toString());
  });

  it('a script that fails records no token', async () => {
    const resource = `r-${suffix()}`;
    await guard.check(resource, 1n);
    await expect(guard.eval(resource, 9n, "return redis.call('NOSUCHCOMMAND')")).rejects.toThrow();
    await guard.check(resource, 2n); // 9 was not recorded
  });

  it('reloads its scripts after SCRIPT FLUSH', async () => {
    const resource = `r-${suffix()}`;
    await guard.check(resource, 1n);
    await redis.script('FLUSH');
    await guard.check(resource, 2n);
    expect(await codeOf(guard.check(resource, 1n))).toBe('STALE_FENCING_TOKEN');
  });

  it('refuses malformed tokens, resources and options', async () => {
    expect(await codeOf(guard.check('r', -1n))).toBe('INVALID_INPUT');
    expect(await codeOf(guard.check('r', '12' as unknown as bigint))).toBe('INVALID_INPUT');
    expect(await codeOf(guard.check('r'.repeat(257), 1n))).toBe('INVALID_INPUT');
    expect(await codeOf(guard.setIfCurrent('r', 1n, 'k', 'v', { pxMs: 0 }))).toBe('CONFIG');
    expect(await codeOf(guard.setIfCurrent('r', 1n, 'k', 'v', { px: 10 } as never))).toBe('CONFIG');
    expect(await codeOf(guard.eval('r', 1n, ''))).toBe('CONFIG');
    expect(() => new RedisFenceGuard({ redis: {} as Redis })).toThrow(
      expect.objectContaining({ code: 'CONFIG' }),
    );
  });
});

describe('RedisLeaseManager token counter', () => {
  it('starts a new counter at the server clock in microseconds', async () => {
    const before = BigInt(Date.now()) * 1000n;
    const lease = await manager.acquire(`r-${suffix()}`, { ttlMs: 1000 });
    expect(lease.token).toBeGreaterThan(before - 5_000_000n);
    expect(lease.token).toBeLessThan(BigInt(Date.now()) * 1000n + 5_000_000n);
  });

  it('fails closed when the counter is gone but the fence has seen a token at least as new', async () => {
    const resource = `r-${suffix()}`;
    const lease = await manager.acquire(resource, { ttlMs: 60_000 });
    await lease.release();
    // As if the counter were evicted, while the guard saw a token from the far future.
    await redis.del(key(resource, 'token'));
    await guard.check(resource, lease.token * 2n);
    const refusal = await manager.acquire(resource, { ttlMs: 1000 }).catch((e: unknown) => e);
    expect(isCausewayError(refusal, 'LEASE_NOT_HELD')).toBe(true);
    expect((refusal as { details: unknown }).details).toMatchObject({ reason: 'counter-lost' });
    // The operator's fix: set the counter above every token granted.
    await redis.set(key(resource, 'token'), (lease.token * 2n).toString());
    expect((await manager.acquire(resource, { ttlMs: 1000 })).token).toBe(lease.token * 2n + 1n);
  });

  it('fails closed when the counter is gone while its lease is still live', async () => {
    const resource = `r-${suffix()}`;
    await redis.set(key(resource, 'token'), (2n ** 60n).toString());
    await manager.acquire(resource, { ttlMs: 60_000, holder: 'a' });
    await redis.del(key(resource, 'token'));
    // A manager that never saw the token: the live lease alone makes it refuse.
    const other = new RedisLeaseManager({ redis, keyPrefix });
    expect(await codeOf(other.acquire(resource, { ttlMs: 1000, holder: 'a' }))).toBe(
      'LEASE_NOT_HELD',
    );
  });
});

describe('RedisLeaseManager across a restart of Redis', () => {
  const servers: RedisServer[] = [];
  const clients: Redis[] = [];
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await Promise.all(servers.map((server) => server.stop()));
  });

  async function privateRedis(appendOnly: boolean) {
    const server = await startRedis({
      name: `fence-${appendOnly ? 'aof' : 'volatile'}`,
      appendOnly,
    });
    servers.push(server);
    const client = new Redis(server.url, { maxRetriesPerRequest: 20 });
    client.on('error', () => {}); // reconnects on its own while the server restarts
    clients.push(client);
    return { server, client };
  }

  it('with appendfsync always the counter survives: the next token is the next integer', async () => {
    const { server, client } = await privateRedis(true);
    const leases = new RedisLeaseManager({ redis: client });
    const before = await leases.acquire('leader', { ttlMs: 60_000, holder: 'a' });
    await server.stop();
    await server.start();
    // The lease survived too, so a new holder waits; the old holder takes over with a new token.
    expect(await codeOf(leases.acquire('leader', { ttlMs: 1000, holder: 'b' }))).toBe(
      'LEASE_NOT_HELD',
    );
    const after = await new RedisLeaseManager({ redis: client }).acquire('leader', {
      ttlMs: 1000,
      holder: 'a',
    });
    expect(after.token).toBe(before.token + 1n);
  });

  it('without persistence the counter is lost: never a smaller token, and fail closed where it could be', async () => {
    const { server, client } = await privateRedis(false);
    const leases = new RedisLeaseManager({ redis: client });
    const normal = 'leader';
    const ahead = 'ahead';
    const before = await leases.acquire(normal, { ttlMs: 60_000 });
    // A counter far ahead of the clock, as after a failover from a server whose clock ran fast.
    await client.set(`causeway:{${ahead}}:token`, (before.token + 3_600_000_000n).toString());
    const aheadBefore = await leases.acquire(ahead, { ttlMs: 60_000 });
    await server.stop();
    await server.start();
    expect(await client.exists(`causeway:{${normal}}:token`)).toBe(0); // really lost

    // A counter restarted from the server clock is larger than every token granted before.
    const fresh = new RedisLeaseManager({ redis: client });
    expect((await fresh.acquire(normal, { ttlMs: 1000 })).token).toBeGreaterThan(before.token);
    // Where the clock would not exceed a token this manager granted, it refuses instead.
    const refusal = await codeOf(leases.acquire(ahead, { ttlMs: 1000 }));
    expect(refusal).toBe('LEASE_NOT_HELD');
    expect(await client.exists(`causeway:{${ahead}}:token`)).toBe(0); // nothing granted
    expect(aheadBefore.token).toBeGreaterThan(before.token);
  });
});
