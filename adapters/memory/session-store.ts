import {
  assertSessionKey,
  assertSessionState,
  knownOptions,
  mergeSessionStates,
  numberOption,
  type SessionState,
  type SessionStore,
} from '../../src/adapter-kit.js';

export interface MemorySessionStoreOptions {
  /** How long a user's state is kept after its last write. Default 120 000 ms (see `RedisSessionStore`). */
  ttlMs?: number;
}

/** A `SessionStore` in this process's memory: for tests and single-process apps. */
export class MemorySessionStore implements SessionStore {
  readonly ttlMs: number;
  readonly #entries = new Map<string, { state: SessionState; expiresAt: number }>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(options: MemorySessionStoreOptions = {}) {
    const { ttlMs } = knownOptions(options, 'MemorySessionStore', ['ttlMs']);
    // At least 1 ms: the sweep runs every ttlMs.
    this.ttlMs = numberOption('MemorySessionStore', 'ttlMs', ttlMs, 120_000, { min: 1 });
    // Expired entries are skipped on read; the sweep only bounds memory.
    this.#sweeper = setInterval(() => this.#sweep(), this.ttlMs);
    this.#sweeper.unref();
  }

  async get(key: string): Promise<SessionState | undefined> {
    assertSessionKey(key);
    return this.#live(key);
  }

  async set(key: string, state: SessionState): Promise<void> {
    assertSessionKey(key);
    assertSessionState(state);
    // Read and write in one synchronous step: concurrent sets must not lose each other's floors.
    const kept = this.#live(key);
    this.#entries.set(key, {
      state: kept === undefined ? state : mergeSessionStates(kept, state),
      expiresAt: Date.now() + this.ttlMs,
    });
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#entries.clear();
  }

  #live(key: string): SessionState | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined || entry.expiresAt <= Date.now()) return undefined;
    return entry.state;
  }

  #sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.#entries) if (entry.expiresAt <= now) this.#entries.delete(key);
  }
}
