import { buildConflictHandler, type ConflictHandler, type HandlerOptions } from './handler.js';
import { assertJsonValue, assertKey } from './input.js';
import type { VersionedValue, WriteOptions } from './types.js';

/**
 * A key-value store whose values are versioned by a conflict handler (`Siblings` or
 * `LwwRegister`), applied atomically at the storage so concurrent writers to one key never lose
 * a write the handler says must survive.
 *
 * Keys: non-empty, well-formed Unicode strings without NUL, at most 512 UTF-8 bytes
 * (`MAX_KEY_BYTES`). Values: JSON values (null, booleans, finite numbers, strings, arrays, plain
 * objects), without cycles. Anything else, a malformed `context` or remote state, or a bad
 * actor is refused with `INVALID_INPUT` and the store is left unchanged.
 *
 * `context` (from `get`, `put` or `delete`) is opaque: under `'siblings'` it is the encoded
 * causal context (a version vector), under `'lww'` the winning write's `<timestamp>.<id>` or
 * `''`. Pass the latest one you have with every write.
 */
export interface VersionedStore<T> {
  /** The current values and context; `{ values: [], context: '', deleted: false }` if never written. */
  get(key: string): Promise<VersionedValue<T>>;
  /** Writes `value` based on `options.context`; resolves to the key's state after the write. */
  put(key: string, value: T, options: WriteOptions): Promise<VersionedValue<T>>;
  /** Writes a delete based on `options.context`; resolves to the key's state after it. */
  delete(key: string, options: WriteOptions): Promise<VersionedValue<T>>;
  /**
   * The key's serialized handler state (what `merge` takes), or `undefined` if never written:
   * ship it to another store for anti-entropy.
   */
  getState(key: string): Promise<string | undefined>;
  /**
   * Joins a remote state of the same key (from another store's `getState`) into this one.
   * Merging in any order and any number of times converges to the same state.
   */
  merge(key: string, remoteState: string): Promise<VersionedValue<T>>;
  /**
   * Drops the key if its state holds nothing worth keeping: under `'lww'` a tombstone older
   * than `tombstoneGraceMs` (default 10 days); under `'siblings'` never (the causal context
   * must stay). Resolves to whether it dropped the key.
   */
  purge(key: string): Promise<boolean>;
  /** Releases what the store owns; a pool or client passed in stays open. */
  close(): Promise<void>;
}

/** Options every store takes: the handler and its options (`maxSiblings`, `clock`, ...). */
export type VersionedStoreOptions = HandlerOptions;

/**
 * The part shared by every store: input checks and the handler calls. A subclass supplies only
 * `load` and an atomic read-modify-write, `update`.
 */
export abstract class AtomicVersionedStore<T> implements VersionedStore<T> {
  protected readonly handler: ConflictHandler<T>;

  /**
   * Builds the handler from `options`, which may hold the handler's keys and `storeKeys` (the
   * subclass's own); any other key is `CONFIG`, naming `owner`.
   */
  protected constructor(
    options: VersionedStoreOptions,
    owner = 'AtomicVersionedStore',
    storeKeys: readonly string[] = [],
  ) {
    this.handler = buildConflictHandler<T>(options, owner, storeKeys);
  }

  /** The serialized state of `key`, or `undefined` when it has none. */
  protected abstract load(key: string): Promise<string | undefined>;

  /**
   * Atomically replaces the state of `key` with `change(current, storageNow).state` (removes the
   * key when that is `undefined`) and resolves to what `change` returned. `storageNow` is the
   * storage's clock in milliseconds since the epoch (PostgreSQL `clock_timestamp()`, Redis
   * `TIME`), read in the same round trip as `current`: an LWW writer whose clock is further ahead
   * than `maxOffsetMs` is refused against it. `change` is pure and may run more than once
   * (optimistic retries); if it throws, nothing is stored and the error propagates.
   */
  protected abstract update<R extends { readonly state: string | undefined }>(
    key: string,
    change: (current: string | undefined, storageNow: number) => R,
  ): Promise<R>;

  abstract close(): Promise<void>;

  /** Before an LWW write: the writer's clock against the storage's. */
  #checkWriterClock(storageNow: number): void {
    if (this.handler.name === 'lww') this.handler.checkClock(storageNow);
  }

  async get(key: string): Promise<VersionedValue<T>> {
    assertKey(key);
    return this.handler.read(await this.load(key));
  }

  async put(key: string, value: T, options: WriteOptions): Promise<VersionedValue<T>> {
    assertKey(key);
    assertJsonValue(value);
    const { view } = await this.update(key, (state, storageNow) => {
      this.#checkWriterClock(storageNow);
      return this.handler.put(state, value, options);
    });
    return view;
  }

  async delete(key: string, options: WriteOptions): Promise<VersionedValue<T>> {
    assertKey(key);
    const { view } = await this.update(key, (state, storageNow) => {
      this.#checkWriterClock(storageNow);
      return this.handler.delete(state, options);
    });
    return view;
  }

  async getState(key: string): Promise<string | undefined> {
    assertKey(key);
    return this.load(key);
  }

  async merge(key: string, remoteState: string): Promise<VersionedValue<T>> {
    assertKey(key);
    const { view } = await this.update(key, (state) => this.handler.merge(state, remoteState));
    return view;
  }

  async purge(key: string): Promise<boolean> {
    assertKey(key);
    const state = await this.load(key);
    if (state === undefined || !this.handler.purgeable(state)) return false;
    // Check again inside the atomic step: a write may have landed since the load.
    const { purged } = await this.update(key, (current) => {
      const drop = current !== undefined && this.handler.purgeable(current);
      return { state: drop ? undefined : current, purged: drop };
    });
    return purged;
  }
}
