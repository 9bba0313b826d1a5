import { createHash, randomUUID } from 'node:crypto';
import {
  AtomicVersionedStore,
  CausewayError,
  configError,
  ErrorCode,
  numberOption,
  sleep,
  stringOption,
  type VersionedStoreOptions,
} from '../../src/adapter-kit.js';
import { COMPARE_AND_SET_STATE } from './versioned-store.lua.js';

/** The subset of an ioredis client this store uses. */
export interface RedisVersionedStoreClient {
  hmget(key: string, ...fields: string[]): Promise<Array<string | null>>;
  time(): Promise<unknown[]>;
  evalsha(sha: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>;
  eval(script: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>;
}

export type RedisVersionedStoreOptions = VersionedStoreOptions & {
  /** An ioredis client (or cluster client). Not closed by `close()`. */
  readonly redis: RedisVersionedStoreClient;
  /** Prepended to every key. Default: `causeway:vs:`. */
  readonly keyPrefix?: string;
  /**
   * How many read-compute-compare-and-set rounds one write may take under contention before it
   * fails with `CONFLICTING_WRITE` (HTTP 409: the write lost the race too often; nothing was
   * written). Between rounds it waits a random 0..min(50, 2^round) ms. Default: 100.
   */
  readonly maxAttempts?: number;
};

const SCRIPT_SHA = createHash('sha1').update(COMPARE_AND_SET_STATE).digest('hex');

/**
 * A `VersionedStore` in Redis, one hash per key holding the serialized state and a version.
 * The handler runs in this process, so each write reads the state and its version, computes the
 * new state, and stores it with a Lua compare-and-set that succeeds only if the version has not
 * moved; otherwise it reads again and retries. The script makes the check and the write one
 * atomic step on the server, so a concurrent write is never overwritten unseen.
 */
export class RedisVersionedStore<T> extends AtomicVersionedStore<T> {
  readonly #redis: RedisVersionedStoreClient;
  readonly #keyPrefix: string;
  readonly #maxAttempts: number;

  constructor(options: RedisVersionedStoreOptions) {
    super(options, 'RedisVersionedStore', ['redis', 'keyPrefix', 'maxAttempts']);
    if (typeof options.redis?.evalsha !== 'function' || typeof options.redis.hmget !== 'function') {
      throw configError('RedisVersionedStore: redis must be an ioredis client');
    }
    const maxAttempts = numberOption(
      'RedisVersionedStore',
      'maxAttempts',
      options.maxAttempts,
      100,
      {
        min: 1,
        integer: true,
      },
    );
    this.#redis = options.redis;
    this.#keyPrefix = stringOption(
      'RedisVersionedStore',
      'keyPrefix',
      options.keyPrefix,
      'causeway:vs:',
      true,
    );
    this.#maxAttempts = maxAttempts;
  }

  async #read(key: string): Promise<{ state: string | undefined; version: string }> {
    const [state, version] = await this.#redis.hmget(this.#keyPrefix + key, 's', 'v');
    return { state: state ?? undefined, version: version ?? '' };
  }

  /** The server's clock (`TIME`) in milliseconds since the epoch. */
  async #serverTime(): Promise<number> {
    const [seconds, microseconds] = (await this.#redis.time()) as [
      string | number,
      string | number,
    ];
    return Number(seconds) * 1000 + Number(microseconds) / 1000;
  }

  protected async load(key: string): Promise<string | undefined> {
    return (await this.#read(key)).state;
  }

  protected async update<R extends { readonly state: string | undefined }>(
    key: string,
    change: (current: string | undefined, storageNow: number) => R,
  ): Promise<R> {
    for (let attempt = 0; attempt < this.#maxAttempts; attempt++) {
      if (attempt > 0) await sleep(Math.random() * Math.min(50, 2 ** attempt));
      // Sent together, without waiting for the first reply: one round trip for both.
      const [{ state, version }, storageNow] = await Promise.all([
        this.#read(key),
        this.#serverTime(),
      ]);
      const result = change(state, storageNow);
      if (await this.#compareAndSet(key, version, result.state)) return result;
    }
    throw new CausewayError(
      ErrorCode.CONFLICTING_WRITE,
      `gave up after ${this.#maxAttempts} attempts: other writers kept changing the key`,
      { details: { attempts: this.#maxAttempts } },
    );
  }

  /** Stores `state` (removes the key when `undefined`) if its version is still `version`. */
  async #compareAndSet(key: string, version: string, state: string | undefined): Promise<boolean> {
    const args = [this.#keyPrefix + key, version, state ?? '', randomUUID()];
    let written: unknown;
    try {
      written = await this.#redis.evalsha(SCRIPT_SHA, 1, ...args);
    } catch (error) {
      // A server that restarted or was flushed has forgotten the script: send it in full.
      if (!String((error as { message?: unknown })?.message).startsWith('NOSCRIPT')) throw error;
      written = await this.#redis.eval(COMPARE_AND_SET_STATE, 1, ...args);
    }
    return written === 1;
  }

  /** Nothing to release: the client belongs to the caller. */
  async close(): Promise<void> {}
}
