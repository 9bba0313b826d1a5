import {
  AtomicVersionedStore,
  functionOption,
  type VersionedStoreOptions,
} from '../../src/adapter-kit.js';

export type MemoryVersionedStoreOptions = VersionedStoreOptions & {
  /** The storage's clock, ms since the epoch (LWW writers ahead of it are refused). Default: `Date.now`. */
  readonly storageClock?: () => number;
};

/**
 * An in-process `VersionedStore` (tests, single-process services, a local replica for
 * anti-entropy experiments). States are kept serialized, exactly as the other stores keep them,
 * so a value read back is never shared with the writer. Each change runs synchronously between
 * two awaits, which makes it atomic.
 */
export class MemoryVersionedStore<T> extends AtomicVersionedStore<T> {
  readonly #states = new Map<string, string>();
  readonly #storageClock: () => number;

  constructor(options: MemoryVersionedStoreOptions) {
    super(options, 'MemoryVersionedStore', ['storageClock']);
    this.#storageClock = functionOption(
      'MemoryVersionedStore: storageClock',
      options.storageClock,
      Date.now,
    );
  }

  protected async load(key: string): Promise<string | undefined> {
    return this.#states.get(key);
  }

  protected async update<R extends { readonly state: string | undefined }>(
    key: string,
    change: (current: string | undefined, storageNow: number) => R,
  ): Promise<R> {
    const result = change(this.#states.get(key), this.#storageClock());
    if (result.state === undefined) this.#states.delete(key);
    else this.#states.set(key, result.state);
    return result;
  }

  /** Forgets every key. */
  async close(): Promise<void> {
    this.#states.clear();
  }
}
