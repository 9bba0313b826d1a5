import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemoryFenceGuard, MemoryLeaseManager } from '../../../adapters/memory/index.js';
import { codeOf } from '../../support/errors.js';
import { installTelemetry, type Telemetry } from '../../support/otel.js';

function fakeClock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('MemoryLeaseManager', () => {
  it('follows a model of leases under any sequence of operations', async () => {
    const holders = ['a', 'b', 'c'];
    const op = fc.oneof(
      fc.record({ kind: fc.constant('acquire' as const), holder: fc.constantFrom(...holders) }),
      fc.record({ kind: fc.constant('renew' as const), holder: fc.constantFrom(...holders) }),
      fc.record({ kind: fc.constant('release' as const), holder: fc.constantFrom(...holders) }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 150 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
        const clock = fakeClock();
        const manager = new MemoryLeaseManager({ now: clock.now });
        const ttlMs = 100;
        const leases = new Map<string, Awaited<ReturnType<MemoryLeaseManager['acquire']>>>();
        // The model: who holds the lease until when, and the last token granted.
        let model: { holder: string; until: number; token: bigint } | undefined;
        let lastToken = 0n;
        for (const step of ops) {
          if (step.kind === 'advance') {
            clock.advance(step.ms);
            continue;
          }
          const live = model !== undefined && model.until > clock.now() ? model : undefined;
          if (step.kind === 'acquire') {
            const result = manager.acquire('job', { ttlMs, holder: step.holder });
            if (live && live.holder !== step.holder) {
              expect(await codeOf(result)).toBe('LEASE_NOT_HELD');
            } else {
              const lease = await result;
              expect(lease.token).toBeGreaterThan(lastToken);
              lastToken = lease.token;
              expect(lease.expiresAt.getTime()).toBe(clock.now() + ttlMs);
              model = { holder: step.holder, until: clock.now() + ttlMs, token: lease.token };
              leases.set(step.holder, lease);
            }
            continue;
          }
          const lease = leases.get(step.holder);
          if (lease === undefined) continue;
          const current = live?.holder === step.holder && live.token === lease.token;
          if (step.kind === 'renew') {
            if (current && model) {
              const renewed = await lease.renew();
              expect(renewed.token).toBe(lease.token);
              model.until = clock.now() + ttlMs;
            } else {
              expect(await codeOf(lease.renew())).toBe('LEASE_NOT_HELD');
            }
          } else {
            await lease.release();
            if (current && model) model.until = clock.now();
          }
        }
      }),
    );
  });

  it('lets another holder take over once the lease is released, with a larger token', async () => {
    const manager = new MemoryLeaseManager();
    const first = await manager.acquire('job', { ttlMs: 60_000, holder: 'a' });
    expect(await codeOf(manager.acquire('job', { ttlMs: 60_000, holder: 'b' }))).toBe(
      'LEASE_NOT_HELD',
    );
    await first.release();
    const second = await manager.acquire('job', { ttlMs: 60_000, holder: 'b' });
    expect(second.token).toBeGreaterThan(first.token);
    expect(await codeOf(first.renew())).toBe('LEASE_NOT_HELD');
    // Releasing a lease that was taken over leaves the new holder's lease alone.
    await first.release();
    expect(await codeOf(manager.acquire('job', { ttlMs: 60_000, holder: 'c' }))).toBe(
      'LEASE_NOT_HELD',
    );
  });

  it('refuses bad arguments with INVALID_INPUT and bad options with CONFIG', async () => {
    const manager = new MemoryLeaseManager();
    expect(await codeOf(manager.acquire('', { ttlMs: 10 }))).toBe('INVALID_INPUT');
    expect(await codeOf(manager.acquire('x'.repeat(257), { ttlMs: 10 }))).toBe('INVALID_INPUT');
    expect(await codeOf(manager.acquire('job', { ttlMs: 0 }))).toBe('INVALID_INPUT');
    expect(() => new MemoryLeaseManager({ now: 5 as unknown as () => number })).toThrow(
      expect.objectContaining({ code: 'CONFIG' }),
    );
  });
});

describe('MemoryFenceGuard', () => {
  it('passes a token iff it is at least every token passed before', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.bigInt({ min: 0n, max: 20n }), { maxLength: 30 }),
        async (tokens) => {
          const guard = new MemoryFenceGuard();
          let newest: bigint | undefined;
          for (const token of tokens) {
            const code = await codeOf(guard.check('res', token));
            if (newest === undefined || token >= newest) {
              expect(code).toBeUndefined();
              newest = token;
            } else {
              expect(code).toBe('STALE_FENCING_TOKEN');
            }
          }
        },
      ),
    );
  });

  it('keeps resources apart', async () => {
    const guard = new MemoryFenceGuard();
    await guard.check('a', 10n);
    await guard.check('b', 1n);
    expect(await codeOf(guard.check('a', 9n))).toBe('STALE_FENCING_TOKEN');
  });

  it('runs a guarded write only for a current token, and records it only if the write succeeds', async () => {
    const guard = new MemoryFenceGuard();
    let value = 'initial';
    await expect(
      guard.write('res', 5n, () => {
        throw new Error('write failed');
      }),
    ).rejects.toThrow('write failed');
    await guard.write('res', 3n, () => {
      value = 'by 3';
    });
    expect(await codeOf(guard.write('res', 2n, () => (value = 'by 2')))).toBe(
      'STALE_FENCING_TOKEN',
    );
    expect(value).toBe('by 3');
  });

  it('does not let a check interleave with a slow guarded write', async () => {
    const guard = new MemoryFenceGuard();
    let release: () => void = () => {};
    const slow = guard.write(
      'res',
      1n,
      () => new Promise<string>((r) => (release = () => r('old'))),
    );
    const newer = guard.check('res', 2n);
    await new Promise((r) => setTimeout(r, 10));
    release();
    expect(await slow).toBe('old');
    await newer;
    expect(await codeOf(guard.check('res', 1n))).toBe('STALE_FENCING_TOKEN');
  });

  it('refuses malformed tokens and resources with INVALID_INPUT', async () => {
    const guard = new MemoryFenceGuard();
    expect(await codeOf(guard.check('res', 1 as unknown as bigint))).toBe('INVALID_INPUT');
    expect(await codeOf(guard.check('res', -1n))).toBe('INVALID_INPUT');
    expect(await codeOf(guard.check('', 1n))).toBe('INVALID_INPUT');
  });
});

describe('fencing telemetry', () => {
  let telemetry: Telemetry;
  beforeAll(() => {
    telemetry = installTelemetry();
  });
  afterAll(() => telemetry.stop());
  beforeEach(() => telemetry.spans.reset());

  it('traces acquisitions with resource, token and outcome', async () => {
    const manager = new MemoryLeaseManager();
    await manager.acquire('job', { ttlMs: 1000, holder: 'a' });
    await codeOf(manager.acquire('job', { ttlMs: 1000, holder: 'b' }));
    const [granted, refused] = telemetry.spans.getFinishedSpans();
    expect(granted?.name).toBe('causeway.lease.acquire');
    expect(granted?.attributes).toMatchObject({
      'causeway.resource': 'job',
      'causeway.token': '1',
      'causeway.outcome': 'acquired',
    });
    expect(refused?.attributes).toMatchObject({ 'causeway.outcome': 'held' });
  });

  it('traces checks and counts rejections by resource', async () => {
    const guard = new MemoryFenceGuard();
    await guard.check('orders', 7n);
    await codeOf(guard.check('orders', 6n));
    const [passed, stale] = telemetry.spans.getFinishedSpans();
    expect(passed?.name).toBe('causeway.fence.check');
    expect(passed?.attributes).toMatchObject({
      'causeway.token': '7',
      'causeway.outcome': 'passed',
    });
    expect(stale?.attributes).toMatchObject({ 'causeway.token': '6', 'causeway.outcome': 'stale' });
    const points = await telemetry.points('causeway.fence.rejections');
    const orders = points.find((p) => p.attributes['causeway.resource'] === 'orders');
    expect(orders?.value).toBe(1);
  });
});
