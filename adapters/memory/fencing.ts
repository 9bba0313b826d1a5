import { randomUUID } from 'node:crypto';
import {
  type AcquireOptions,
  assertFencingToken,
  assertResource,
  type FenceGuard,
  functionOption,
  knownOptions,
  type Lease,
  type LeaseManager,
  leaseNotHeld,
  resolveAcquireOptions,
  staleFencingToken,
  traceFenceCheck,
  traceLeaseAcquire,
} from '../../src/adapter-kit.js';

export interface MemoryLeaseManagerOptions {
  /** The clock leases expire by, in epoch milliseconds. Default: `Date.now`. */
  now?: () => number;
}

interface LeaseRecord {
  holder: string;
  token: bigint;
  expiresAtMs: number;
}

/**
 * Leases in this process's memory, for tests and single-process services. Tokens strictly
 * increase per resource for the life of the manager (a record is never deleted, only expired).
 */
export class MemoryLeaseManager implements LeaseManager {
  readonly #now: () => number;
  readonly #leases = new Map<string, LeaseRecord>();

  constructor(options: MemoryLeaseManagerOptions = {}) {
    const { now } = knownOptions(options, 'MemoryLeaseManager', ['now']);
    this.#now = functionOption('MemoryLeaseManager: now', now, Date.now);
  }

  acquire(resource: string, options: AcquireOptions): Promise<Lease> {
    return traceLeaseAcquire(resource, async () => {
      const { ttlMs, holder } = resolveAcquireOptions(resource, options, randomUUID);
      const now = this.#now();
      const current = this.#leases.get(resource);
      if (current !== undefined && current.expiresAtMs > now && current.holder !== holder) {
        throw leaseNotHeld(resource, `Lease "${resource}" is held by another holder`);
      }
      const record = { holder, token: (current?.token ?? 0n) + 1n, expiresAtMs: now + ttlMs };
      this.#leases.set(resource, record);
      return this.#lease(resource, record, ttlMs);
    });
  }

  async close(): Promise<void> {}

  #lease(resource: string, record: LeaseRecord, ttlMs: number): Lease {
    const { token, holder } = record;
    const isOurs = (current: LeaseRecord | undefined): current is LeaseRecord =>
      current !== undefined &&
      current.token === token &&
      current.holder === holder &&
      current.expiresAtMs > this.#now();
    return {
      resource,
      token,
      expiresAt: new Date(record.expiresAtMs),
      renew: async () => {
        const current = this.#leases.get(resource);
        if (!isOurs(current)) {
          throw leaseNotHeld(resource, `Lease "${resource}" expired or was taken over`);
        }
        current.expiresAtMs = this.#now() + ttlMs;
        return this.#lease(resource, current, ttlMs);
      },
      release: async () => {
        const current = this.#leases.get(resource);
        // Expire rather than delete: the record keeps the token so the next one is larger.
        if (isOurs(current)) current.expiresAtMs = this.#now();
      },
    };
  }
}

/**
 * A fence in this process's memory: remembers the newest token per resource. `write` runs a
 * guarded write under a per-resource lock so that no other check interleaves with it.
 */
export class MemoryFenceGuard implements FenceGuard<never> {
  readonly #newest = new Map<string, bigint>();
  readonly #tails = new Map<string, Promise<unknown>>();

  /** Passes if `token` is at least the newest seen for `resource`, and records it. */
  check(resource: string, token: bigint): Promise<void> {
    return this.write(resource, token, () => undefined);
  }

  /**
   * Checks `token` and runs `fn` while holding the resource's lock; the token becomes the
   * newest only if `fn` succeeds (like a transaction that rolls back). Rejects with
   * `STALE_FENCING_TOKEN` without calling `fn` if a newer token was seen.
   */
  async write<T>(resource: string, token: bigint, fn: () => Promise<T> | T): Promise<T> {
    assertResource(resource);
    assertFencingToken(token);
    return traceFenceCheck(resource, token, () =>
      this.#serialize(resource, async () => {
        const newest = this.#newest.get(resource);
        if (newest !== undefined && token < newest) throw staleFencingToken(resource, token);
        const result = await fn();
        this.#newest.set(resource, token);
        return result;
      }),
    );
  }

  async close(): Promise<void> {}

  #serialize<T>(resource: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(resource) ?? Promise.resolve();
    const run = previous.then(task, task);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(resource, tail);
    void tail.then(() => {
      if (this.#tails.get(resource) === tail) this.#tails.delete(resource);
    });
    return run;
  }
}
