/**
 * Fence guards and lease managers with hostile arguments, shared by the memory runs (unit tests)
 * and the PostgreSQL and Redis runs (integration tests): a model of the newest token per resource
 * that judges every answer of a fence guard, and the property that a junk acquire takes nothing
 * from the holder of a lease.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { type LeaseManager, MAX_FENCING_TOKEN, MAX_RESOURCE_LENGTH } from '../../src/index.js';
import { expectTypedError, junkArb } from './junk.js';

/** A resource every fence guard and lease manager accepts (a model of `assertResource`). */
export function storableResource(resource: unknown): resource is string {
  return (
    typeof resource === 'string' &&
    resource !== '' &&
    resource.length <= MAX_RESOURCE_LENGTH &&
    !resource.includes('\u0000') &&
    !/[\uD800-\uDFFF]/.test(resource.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, ''))
  );
}

/** True for the arguments a fence check accepts: a storable resource and a token in range. */
function acceptedCheck(resource: unknown, token: unknown): boolean {
  return (
    storableResource(resource) &&
    typeof token === 'bigint' &&
    token >= 0n &&
    token <= MAX_FENCING_TOKEN
  );
}

/**
 * The newest token per resource, as a fence guard must keep it. Tell it each answer of the guard:
 * `passed` and `refused` fail unless the answer is the one the model predicts (pass for accepted
 * arguments and a token at least the newest, which it then records; `STALE_FENCING_TOKEN` for an
 * older token; `INVALID_INPUT` for anything else).
 */
export class FenceModel {
  private readonly newest = new Map<string, bigint>();

  passed(resource: unknown, token: unknown): void {
    expect(acceptedCheck(resource, token)).toBe(true);
    const current = this.newest.get(resource as string);
    expect(current === undefined || (token as bigint) >= current).toBe(true);
    this.newest.set(resource as string, token as bigint);
  }

  refused(resource: unknown, token: unknown, error: unknown): void {
    if (!acceptedCheck(resource, token)) {
      expectTypedError(error, ['INVALID_INPUT']);
      return;
    }
    expectTypedError(error, ['STALE_FENCING_TOKEN']);
    expect(token as bigint).toBeLessThan(this.newest.get(resource as string)!);
  }
}

export interface JunkAcquireOptions {
  /** The resources to acquire; 'r1' among them is held by another holder throughout. */
  readonly resourceArb: fc.Arbitrary<unknown>;
  readonly numRuns: number;
  /** Called after every acquire, before the holder renews (to move a test clock on, say). */
  readonly afterAcquire?: () => void;
}

/**
 * Holds 'r1', then acquires any resource with junk or half-junk options: each acquire is refused
 * with `INVALID_INPUT` or `LEASE_NOT_HELD`, or takes another resource (released again), and after
 * every one the holder still renews 'r1' with its token. Releases 'r1' at the end.
 */
export async function assertJunkAcquireKeepsHolder(
  leases: LeaseManager,
  { resourceArb, numRuns, afterAcquire }: JunkAcquireOptions,
): Promise<void> {
  const held = await leases.acquire('r1', { ttlMs: 60_000, holder: 'owner' });
  const optionsArb = fc.oneof(
    junkArb,
    fc.record({ ttlMs: fc.oneof(fc.integer({ min: 1, max: 1000 }), junkArb), holder: junkArb }),
  );
  await fc.assert(
    fc.asyncProperty(resourceArb, optionsArb, async (resource, options) => {
      try {
        const lease = await leases.acquire(resource as string, options as never);
        // Only another resource can be taken: r1 stays with its holder.
        expect(lease.resource).not.toBe('r1');
        await lease.release();
      } catch (error) {
        expectTypedError(error, ['INVALID_INPUT', 'LEASE_NOT_HELD']);
      }
      afterAcquire?.();
      const renewed = await held.renew();
      expect(renewed.token).toBe(held.token);
    }),
    { numRuns },
  );
  await held.release();
}
