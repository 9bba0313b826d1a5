import { afterAll, describe, expect, it } from 'vitest';
import { isCausewayError } from '../../../src/errors.js';
import type { Lease } from '../../../src/fencing/token.js';
import { codeOf } from '../../support/errors.js';
import {
  type LeaseFixture,
  memoryFixture,
  pgFixture,
  redisFixture,
  sleep,
  suffix,
} from './fixtures.js';

const fixtures: LeaseFixture[] = [memoryFixture(), pgFixture(), redisFixture()];
afterAll(async () => {
  await Promise.all(fixtures.map((fixture) => fixture.cleanup()));
});

describe.each(fixtures)('$name LeaseManager', ({ manager }) => {
  const SHORT_TTL = 150;

  it('grants a lease with a token and an expiry by the store clock', async () => {
    const before = Date.now();
    const lease = await manager.acquire(`res-${suffix()}`, { ttlMs: 60_000 });
    expect(typeof lease.token).toBe('bigint');
    expect(lease.token).toBeGreaterThan(0n);
    // Same machine, so the store clock is close to ours: the expiry is about a minute away.
    expect(lease.expiresAt.getTime()).toBeGreaterThan(before + 50_000);
    expect(lease.expiresAt.getTime()).toBeLessThan(Date.now() + 70_000);
  });

  it('refuses a second holder while the lease is live, with LEASE_NOT_HELD', async () => {
    const resource = `res-${suffix()}`;
    await manager.acquire(resource, { ttlMs: 60_000, holder: 'a' });
    expect(await codeOf(manager.acquire(resource, { ttlMs: 60_000, holder: 'b' }))).toBe(
      'LEASE_NOT_HELD',
    );
  });

  it('lets another holder take over after expiry, with a larger token; the old lease is lost', async () => {
    const resource = `res-${suffix()}`;
    const old = await manager.acquire(resource, { ttlMs: SHORT_TTL, holder: 'a' });
    await sleep(SHORT_TTL + 100);
    const next = await manager.acquire(resource, { ttlMs: 60_000, holder: 'b' });
    expect(next.token).toBeGreaterThan(old.token);
    expect(await codeOf(old.renew())).toBe('LEASE_NOT_HELD');
    // Releasing the lost lease does not free the new holder's.
    await old.release();
    expect(await codeOf(manager.acquire(resource, { ttlMs: 60_000, holder: 'c' }))).toBe(
      'LEASE_NOT_HELD',
    );
  });

  it('renews: the lease outlives its first ttl and keeps its token', async () => {
    const resource = `res-${suffix()}`;
    let lease = await manager.acquire(resource, { ttlMs: 600, holder: 'a' });
    const first = lease;
    for (let i = 0; i < 3; i++) {
      await sleep(250);
      lease = await lease.renew();
      expect(lease.token).toBe(first.token);
    }
    // 750 ms after acquiring with a 600 ms ttl, the lease still excludes others.
    expect(await codeOf(manager.acquire(resource, { ttlMs: 1000, holder: 'b' }))).toBe(
      'LEASE_NOT_HELD',
    );
    expect(lease.expiresAt.getTime()).toBeGreaterThan(first.expiresAt.getTime());
  });

  it('renew fails with LEASE_NOT_HELD once the lease expired', async () => {
    const lease = await manager.acquire(`res-${suffix()}`, { ttlMs: 100 });
    await sleep(200);
    expect(await codeOf(lease.renew())).toBe('LEASE_NOT_HELD');
  });

  it('release frees the resource at once; the next token is still larger', async () => {
    const resource = `res-${suffix()}`;
    const lease = await manager.acquire(resource, { ttlMs: 60_000, holder: 'a' });
    await lease.release();
    await lease.release(); // a no-op the second time
    expect(await codeOf(lease.renew())).toBe('LEASE_NOT_HELD');
    const next = await manager.acquire(resource, { ttlMs: 60_000, holder: 'b' });
    expect(next.token).toBeGreaterThan(lease.token);
  });

  it('lets the same holder acquire again while it holds the lease, with a larger token', async () => {
    const resource = `res-${suffix()}`;
    const first = await manager.acquire(resource, { ttlMs: 60_000, holder: 'a' });
    const again = await manager.acquire(resource, { ttlMs: 60_000, holder: 'a' });
    expect(again.token).toBeGreaterThan(first.token);
    expect(await codeOf(first.renew())).toBe('LEASE_NOT_HELD');
    await again.renew();
  });

  it('tokens strictly increase across many holders; at most one wins each race', async () => {
    const resource = `res-${suffix()}`;
    const tokens: bigint[] = [];
    for (let round = 0; round < 8; round++) {
      const attempts = await Promise.allSettled(
        ['a', 'b', 'c', 'd'].map((holder) => manager.acquire(resource, { ttlMs: 60_000, holder })),
      );
      const winners = attempts.filter(
        (a): a is PromiseFulfilledResult<Lease> => a.status === 'fulfilled',
      );
      expect(winners).toHaveLength(1);
      for (const attempt of attempts) {
        if (attempt.status === 'rejected') {
          expect(isCausewayError(attempt.reason, 'LEASE_NOT_HELD')).toBe(true);
        }
      }
      const winner = winners[0]!.value;
      tokens.push(winner.token);
      await winner.release();
    }
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]!).toBeGreaterThan(tokens[i - 1]!);
  });

  it('keeps resources apart', async () => {
    const a = await manager.acquire(`res-${suffix()}`, { ttlMs: 60_000, holder: 'x' });
    const b = await manager.acquire(`res-${suffix()}`, { ttlMs: 60_000, holder: 'y' });
    expect(a.resource).not.toBe(b.resource);
  });

  it('refuses bad arguments with INVALID_INPUT before touching the store', async () => {
    expect(await codeOf(manager.acquire('r'.repeat(257), { ttlMs: 1000 }))).toBe('INVALID_INPUT');
    expect(await codeOf(manager.acquire('ok', { ttlMs: -5 }))).toBe('INVALID_INPUT');
    expect(await codeOf(manager.acquire('ok', { ttlMs: 1000, holder: '' }))).toBe('INVALID_INPUT');
  });
});
