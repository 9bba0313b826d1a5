// The near cache's life: first snapshot, stream, stale on any doubt, re-snapshot, close.
import { trace } from '@opentelemetry/api';
import pg from 'pg';
import {
  Attr,
  addToCounter,
  configError,
  isCausewayError,
  NearCacheAttr,
  NearCacheCounterName,
  NearCacheEventName,
  NearCacheSpanName,
  type Position,
  withSpan,
} from '../../../src/adapter-kit.js';
import { quoteTable } from '../sql.js';
import { applyTransaction, checkRelation } from './apply.js';
import { Fallthrough } from './fallthrough.js';
import { type NearCacheOptions, type ResolvedNearCacheOptions, resolveOptions } from './options.js';
import {
  ChangeStream,
  createSlotAndLoad,
  dropSlot,
  type History,
  type LoadedSnapshot,
  loadReplicationClient,
  readSlot,
} from './replication.js';
import { describeTable, publicationTables, quoteIdentifier, type TableRequest } from './schema.js';
import type { NearCacheStaleReason, NearCacheState, NearCacheStatus } from './status.js';
import { type CacheCore, NearCacheTable } from './table.js';
import type { TableStore } from './table-store.js';

interface Generation {
  readonly history: History;
  readonly stores: ReadonlyMap<string, TableStore>;
  readonly byOid: ReadonlyMap<number, TableStore>;
  readonly heapBytes: number;
  readonly bytesPerRow: number | undefined;
  stream: ChangeStream | undefined;
  lsn: bigint;
  /** performance.now() of the last commit or keepalive: the cache knew it was this fresh. */
  heardAt: number;
}

interface Waiter {
  readonly reached: () => boolean;
  readonly resolve: (reached: boolean) => void;
  readonly timer: NodeJS.Timeout;
}

const MAX_RETRY_DELAY_MS = 30_000;
/** Milliseconds between keepalive requests while a read waits for a floor. */
const PING_INTERVAL_MS = 2;

/**
 * Selected tables of the primary, in this process's memory, kept current from a logical
 * replication slot: one more replica, whose position is the last commit it applied. Open it with
 * `NearCache.open()`, read through `cache.table<Row>(name)`, and `close()` it (the slot is
 * dropped). See the README section "Near cache".
 */
export class NearCache {
  readonly #options: ResolvedNearCacheOptions;
  readonly #admin: pg.Pool;
  readonly #fallthrough: Fallthrough;
  readonly #waiters = new Set<Waiter>();
  readonly #tables = new Map<string, NearCacheTable<object>>();
  #requests: readonly TableRequest[] = [];
  #publication = '';
  #ownsPublication = false;
  #generation: Generation | undefined;
  #state: NearCacheState = 'loading';
  #staleReason: NearCacheStaleReason | undefined;
  #error: unknown;
  #retryDelayMs: number;
  #retryTimer: NodeJS.Timeout | undefined;
  #checkTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #snapshotting: Promise<void> | undefined;
  #slot = { lagBytes: undefined as bigint | undefined, retained: undefined as bigint | undefined };
  #walStatus: string | undefined;
  #snapshots = 0;

  private constructor(options: ResolvedNearCacheOptions) {
    this.#options = options;
    this.#retryDelayMs = options.retryDelayMs;
    this.#admin = new pg.Pool({ ...options.connection, max: 2 });
    this.#admin.on('error', () => {});
    this.#fallthrough = new Fallthrough(options.pool);
  }

  /**
   * Validates the options and the tables (`CONFIG` errors name the table), creates the slot,
   * loads the snapshot and starts the stream; resolves once the cache is live.
   */
  static async open(options: NearCacheOptions): Promise<NearCache> {
    const cache = new NearCache(resolveOptions(options));
    try {
      await cache.#start();
    } catch (error) {
      await cache.close();
      throw error;
    }
    return cache;
  }

  /** The cached table `name` (as configured, or `schema.table` from a publication). */
  table<Row extends object>(name: string): NearCacheTable<Row> {
    const table = this.#tables.get(name);
    if (table === undefined) {
      throw configError(`NearCache: table '${name}' is not cached`, { table: String(name) });
    }
    return table as unknown as NearCacheTable<Row>;
  }

  status(): NearCacheStatus {
    const generation = this.#generation;
    let rows = 0;
    for (const store of generation?.stores.values() ?? []) rows += store.size;
    return {
      state: this.#state,
      position: generation === undefined ? undefined : positionOf(generation),
      staleReason: this.#staleReason,
      error: this.#error,
      rows,
      heapBytes: generation?.heapBytes ?? 0,
      bytesPerRow: generation?.bytesPerRow,
      lagBytes: this.#slot.lagBytes,
      slotRetainedBytes: this.#slot.retained,
      walStatus: this.#walStatus,
      snapshots: this.#snapshots,
    };
  }

  /** The slot's name on the primary. */
  get slotName(): string {
    return this.#options.slotName;
  }

  /**
   * Checks the slot and the primary's history now (the background check does the same): a lost
   * or missing slot, or another system identifier or timeline, makes the cache stale.
   */
  async checkSlot(): Promise<void> {
    const generation = this.#generation;
    if (generation === undefined || this.#state !== 'live') return;
    const reading = await readSlot(this.#admin, this.#options.slotName);
    if (this.#generation !== generation || this.#state !== 'live') return;
    this.#walStatus = reading.walStatus;
    const { history, lsn } = reading;
    if (
      history === undefined ||
      lsn === undefined ||
      history.stream !== generation.history.stream ||
      history.epoch !== generation.history.epoch
    ) {
      this.#fail(generation, 'new-history', new Error('the primary is on another history'));
      return;
    }
    if (reading.walStatus === undefined || reading.walStatus === 'lost') {
      this.#fail(generation, 'slot-lost', new Error(`slot ${reading.walStatus ?? 'missing'}`));
      return;
    }
    this.#slot = {
      lagBytes: lsn > generation.lsn ? lsn - generation.lsn : 0n,
      retained: reading.restartLsn === undefined ? undefined : lsn - reading.restartLsn,
    };
    trace.getActiveSpan()?.addEvent(NearCacheEventName.POSITION, {
      [NearCacheAttr.POSITION]: `${generation.history.epoch}/${generation.lsn.toString(16)}`,
      [Attr.LAG]: Number(this.#slot.lagBytes),
    });
  }

  /** Stops the stream, drops the slot (and the publication the cache created). Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#pingTimer);
    clearInterval(this.#checkTimer);
    this.#wake();
    await this.#snapshotting?.catch(() => {});
    await this.#generation?.stream?.stop();
    await dropSlot(this.#options.connection, this.#options.slotName).catch(() => {});
    if (this.#ownsPublication) {
      await this.#admin
        .query(`DROP PUBLICATION IF EXISTS ${quoteIdentifier(this.#publication)}`)
        .catch(() => {});
    }
    await this.#admin.end().catch(() => {});
    await this.#fallthrough.close();
  }

  async #start(): Promise<void> {
    await loadReplicationClient();
    const { tables, publication } = this.#options;
    const published =
      publication === undefined ? undefined : await publicationTables(this.#admin, publication);
    const requests = tables ?? published!.map((name) => ({ name, indexes: {} }));
    // Described once here so that a bad table is a CONFIG error before anything is created.
    const schemas = [];
    for (const request of requests) schemas.push(await describeTable(this.#admin, request));
    if (published !== undefined) {
      const members = new Set(published);
      const missing = schemas.find(
        (schema) => !members.has(`${schema.schemaName}.${schema.tableName}`),
      );
      if (missing !== undefined) {
        throw configError(
          `NearCache: table '${missing.name}' is not in publication '${publication}'`,
          {
            table: missing.name,
            publication,
          },
        );
      }
      this.#publication = publication!;
    } else {
      this.#publication = this.#options.slotName;
      const list = requests.map((request) => quoteTable(request.name, 'NearCache')).join(', ');
      await this.#admin.query(`DROP PUBLICATION IF EXISTS ${quoteIdentifier(this.#publication)}`);
      await this.#admin.query(
        `CREATE PUBLICATION ${quoteIdentifier(this.#publication)} FOR TABLE ${list}`,
      );
      this.#ownsPublication = true;
    }
    this.#requests = requests;
    for (const request of requests) {
      this.#tables.set(request.name, new NearCacheTable(request.name, this.#core()));
    }
    await this.#snapshot();
    if (this.#options.slotCheckIntervalMs > 0) {
      this.#checkTimer = setInterval(() => {
        withSpan(NearCacheSpanName.SLOT_CHECK, {}, () => this.checkSlot()).catch(() => {});
      }, this.#options.slotCheckIntervalMs);
      this.#checkTimer.unref();
    }
  }

  /** One generation: slot, snapshot, stream. Only one runs at a time. */
  #snapshot(): Promise<void> {
    this.#snapshotting ??= this.#loadGeneration().finally(() => {
      this.#snapshotting = undefined;
    });
    return this.#snapshotting;
  }

  async #loadGeneration(): Promise<void> {
    const { connection, slotName, maxRows, maxBytes } = this.#options;
    await withSpan(NearCacheSpanName.SNAPSHOT, {}, async (span) => {
      await this.#generation?.stream?.stop();
      await dropSlot(connection, slotName);
      const loaded: LoadedSnapshot = await createSlotAndLoad(connection, slotName, this.#requests, {
        maxRows,
        maxBytes,
      });
      const byOid = new Map<number, TableStore>();
      for (const store of loaded.stores.values()) byOid.set(store.schema.oid, store);
      const generation: Generation = {
        history: loaded.history,
        stores: loaded.stores,
        byOid,
        heapBytes: loaded.heapBytes,
        bytesPerRow: loaded.rows === 0 ? undefined : loaded.heapBytes / loaded.rows,
        stream: undefined,
        lsn: loaded.consistentLsn,
        heardAt: performance.now(),
      };
      const client = await loadReplicationClient();
      if (this.#state === 'closed') return;
      const stream = new ChangeStream(client, connection, {
        onRelation: (relation) =>
          this.#guard(generation, 'undecodable', () => checkRelation(byOid, relation)),
        onCommit: (changes, endLsn) => this.#onCommit(generation, changes, endLsn),
        onProgress: (lsn) => this.#advance(generation, lsn),
        onFailure: (error) => this.#fail(generation, 'stream-broken', error),
      });
      generation.stream = stream;
      stream.advance(generation.lsn);
      // Live from here: the snapshot is the state at the consistent point, and the stream's
      // first commits (which may arrive as soon as it starts) must find this generation current.
      this.#generation = generation;
      this.#state = 'live';
      this.#staleReason = undefined;
      this.#error = undefined;
      this.#retryDelayMs = this.#options.retryDelayMs;
      this.#snapshots++;
      addToCounter(NearCacheCounterName.SNAPSHOTS);
      await stream.start(slotName, this.#publication);
      // close() may have run while the stream started.
      if ((this.#state as NearCacheState) === 'closed') {
        await stream.stop();
        return;
      }
      span.setAttributes({
        [NearCacheAttr.ROWS]: loaded.rows,
        [NearCacheAttr.POSITION]: `${generation.history.epoch}/${generation.lsn.toString(16)}`,
      });
      this.#wake();
    });
  }

  #onCommit(
    generation: Generation,
    changes: Parameters<typeof applyTransaction>[1],
    endLsn: bigint,
  ): void {
    this.#guard(generation, 'undecodable', () => applyTransaction(generation.byOid, changes));
    if (this.#generation !== generation || this.#state !== 'live') return;
    addToCounter(NearCacheCounterName.COMMITS);
    let rows = 0;
    for (const store of generation.stores.values()) rows += store.size;
    if (
      rows > this.#options.maxRows ||
      rows * (generation.bytesPerRow ?? 0) > this.#options.maxBytes
    ) {
      this.#fail(
        generation,
        'memory-bound',
        configError('NearCache: the tables grew past maxRows or maxBytes'),
      );
      return;
    }
    this.#advance(generation, endLsn);
  }

  #advance(generation: Generation, lsn: bigint): void {
    if (this.#generation !== generation || this.#state !== 'live') return;
    if (lsn > generation.lsn) generation.lsn = lsn;
    generation.heardAt = performance.now();
    generation.stream?.advance(generation.lsn);
    this.#wake();
  }

  /** Runs `apply`; if it throws, the generation is stale for `reason`. */
  #guard(generation: Generation, reason: NearCacheStaleReason, apply: () => void): void {
    if (this.#generation !== generation || this.#state !== 'live') return;
    try {
      apply();
    } catch (error) {
      this.#fail(generation, reason, error);
    }
  }

  #fail(generation: Generation, reason: NearCacheStaleReason, error: unknown): void {
    if (this.#generation !== generation || this.#state !== 'live') return;
    this.#state = 'stale';
    this.#staleReason = reason;
    this.#error = error;
    addToCounter(NearCacheCounterName.STALE, { [Attr.REASON]: reason });
    trace.getActiveSpan()?.addEvent(NearCacheEventName.STALE, { [Attr.REASON]: reason });
    void generation.stream?.stop();
    this.#wake();
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (this.#state === 'closed' || this.#retryTimer !== undefined) return;
    const delay = this.#retryDelayMs;
    this.#retryDelayMs = Math.min(MAX_RETRY_DELAY_MS, Math.max(1, delay * 2));
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#snapshot().catch((error: unknown) => {
        if (this.#state === 'closed') return;
        this.#staleReason =
          isCausewayError(error, 'CONFIG') && /maxRows|maxBytes/.test(error.message)
            ? 'memory-bound'
            : 'snapshot-failed';
        this.#error = error;
        this.#scheduleRetry();
      });
    }, delay);
    this.#retryTimer.unref();
  }

  /** Resolves waiters whose condition holds, and all of them when the cache is not live. */
  #wake(): void {
    for (const waiter of this.#waiters) {
      const live = this.#state === 'live';
      if (!live || waiter.reached()) {
        this.#waiters.delete(waiter);
        clearTimeout(waiter.timer);
        waiter.resolve(live);
      }
    }
    if (this.#waiters.size > 0 && this.#pingTimer === undefined) {
      // Keepalive answers carry the server's sent position: ask again until the floor is in.
      this.#pingTimer = setTimeout(() => {
        this.#pingTimer = undefined;
        if (this.#waiters.size > 0) this.#generation?.stream?.ping();
      }, PING_INTERVAL_MS);
      this.#pingTimer.unref();
    }
  }

  #waitUntil(reached: () => boolean, timeoutMs: number): Promise<boolean> {
    if (this.#state !== 'live') return Promise.resolve(false);
    if (reached()) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        resolve(false);
      }, timeoutMs);
      timer.unref();
      const waiter: Waiter = { reached, resolve, timer };
      this.#waiters.add(waiter);
      this.#generation?.stream?.ping();
    });
  }

  /** What the tables read: the live generation's stores and position, the wait, the pool. */
  #core(): CacheCore {
    return {
      live: () => this.#state === 'live',
      store: (name) => (this.#state === 'live' ? this.#generation?.stores.get(name) : undefined),
      described: (name) => {
        const store = this.#generation?.stores.get(name);
        // Tables exist only once the first snapshot loaded (open() resolves after it).
        if (store === undefined) throw new Error(`NearCache: table '${name}' is not loaded`);
        return store;
      },
      position: () => (this.#generation === undefined ? undefined : positionOf(this.#generation)),
      heardAt: () => this.#generation?.heardAt ?? Number.NEGATIVE_INFINITY,
      waitUntil: (reached, timeoutMs) => this.#waitUntil(reached, timeoutMs),
      fallthrough: this.#fallthrough,
      level: this.#options.level,
      waitTimeoutMs: this.#options.waitTimeoutMs,
    };
  }
}

function positionOf(generation: Generation): Position {
  return {
    stream: generation.history.stream,
    epoch: generation.history.epoch,
    lsn: generation.lsn,
  };
}
