// The near cache's two conversations with the primary: a replication slot created with an
// exported snapshot, the tables loaded inside that snapshot (so the stream that follows neither
// misses nor repeats a change), then the slot's pgoutput stream through pg-logical-replication.
import { getHeapStatistics } from 'node:v8';
import pg from 'pg';
import type { LogicalReplicationService } from 'pg-logical-replication';
import { CausewayError, configError, ErrorCode, withTimeout } from '../../../src/adapter-kit.js';
import { formatLsn, parseLsn } from '../replica-set.js';
import type { PgQueryable } from '../sql.js';
import {
  type CachedTableSchema,
  describeTable,
  quoteIdentifier,
  type TableRequest,
} from './schema.js';
import { TableStore } from './table-store.js';

/** The stream (system identifier) and epoch (timeline) of a position, as `PgReplicaSet` uses. */
export interface History {
  readonly stream: string;
  readonly epoch: number;
}

const SLOT_CHECK = `SELECT s.system_identifier::text AS stream, pg_is_in_recovery() AS in_recovery,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS walfile,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS lsn,
  r.wal_status, r.restart_lsn::text AS restart_lsn
FROM pg_control_system() s LEFT JOIN pg_replication_slots r ON r.slot_name = $1`;

/** The primary's history and WAL location, and the slot's state, as one check reads them. */
export interface SlotReading {
  /** Undefined when the server is in recovery (a standby: no longer the primary). */
  readonly history: History | undefined;
  readonly lsn: bigint | undefined;
  /** `wal_status`, or undefined when the slot does not exist. */
  readonly walStatus: string | undefined;
  readonly restartLsn: bigint | undefined;
}

export async function readSlot(db: PgQueryable, slot: string): Promise<SlotReading> {
  const row = (await db.query(SLOT_CHECK, [slot])).rows[0] ?? {};
  const { walfile, lsn, wal_status: walStatus, restart_lsn: restartLsn } = row;
  const primary = row['in_recovery'] === false && typeof walfile === 'string';
  return {
    history: primary
      ? { stream: String(row['stream']), epoch: Number.parseInt(walfile.slice(0, 8), 16) }
      : undefined,
    lsn: typeof lsn === 'string' ? parseLsn(lsn) : undefined,
    walStatus: typeof walStatus === 'string' ? walStatus : undefined,
    restartLsn: typeof restartLsn === 'string' ? parseLsn(restartLsn) : undefined,
  };
}

/** Limits on what a snapshot may load. */
export interface LoadBounds {
  readonly maxRows: number;
  readonly maxBytes: number;
}

export interface LoadedSnapshot {
  readonly history: History;
  /** The slot's consistent point: every commit before it is in the snapshot, none after. */
  readonly consistentLsn: bigint;
  readonly stores: ReadonlyMap<string, TableStore>;
  readonly rows: number;
  /** Growth of V8's used heap over the load (`getHeapStatistics`), at least 0. */
  readonly heapBytes: number;
}

const FETCH_ROWS = 5000;

/** A `pg` client configuration from a URL or a configuration object. */
export function clientConfig(connection: string | pg.ClientConfig): pg.ClientConfig {
  return typeof connection === 'string' ? { connectionString: connection } : { ...connection };
}

async function connect(config: pg.ClientConfig): Promise<pg.Client> {
  const client = new pg.Client(config);
  // A server going away emits 'error' on the client; the failed query reports it.
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** A replication connection (`replication: 'database'`), which runs replication commands. */
function connectReplication(config: pg.ClientConfig): Promise<pg.Client> {
  return connect({ ...config, replication: 'database' } as pg.ClientConfig);
}

/** Reads the primary's history on a replication connection (`IDENTIFY_SYSTEM`). */
async function identify(replication: pg.Client): Promise<History> {
  const row = (await replication.query('IDENTIFY_SYSTEM')).rows[0];
  return { stream: String(row?.systemid), epoch: Number(row?.timeline) };
}

/**
 * Drops `slot` if it exists: ends the connection streaming from it (an earlier generation's, or
 * one left by a stream that broke), then `DROP_REPLICATION_SLOT ... WAIT`.
 */
export async function dropSlot(config: pg.ClientConfig, slot: string): Promise<void> {
  const db = await connect(config);
  try {
    await db.query(
      'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL',
      [slot],
    );
    const { rows } = await db.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [
      slot,
    ]);
    if (rows.length === 0) return;
  } finally {
    await db.end().catch(() => {});
  }
  const replication = await connectReplication(config);
  try {
    await replication.query(`DROP_REPLICATION_SLOT ${quoteIdentifier(slot)} WAIT`);
  } catch (error) {
    // 42704: dropped meanwhile (by whoever else terminated it).
    if ((error as { code?: string }).code !== '42704') throw error;
  } finally {
    await replication.end().catch(() => {});
  }
}

/**
 * Creates `slot` with an exported snapshot and loads every table in it. The snapshot stays valid
 * while the replication connection that exported it is open and idle, so it is closed only after
 * the load. A bound exceeded is a `CONFIG` error (nothing more is loaded).
 */
export async function createSlotAndLoad(
  config: pg.ClientConfig,
  slot: string,
  requests: readonly TableRequest[],
  bounds: LoadBounds,
): Promise<LoadedSnapshot> {
  const replication = await connectReplication(config);
  let db: pg.Client | undefined;
  try {
    const history = await identify(replication);
    const created = (
      await replication.query(
        `CREATE_REPLICATION_SLOT ${quoteIdentifier(slot)} LOGICAL pgoutput (SNAPSHOT 'export')`,
      )
    ).rows[0];
    const snapshotName = String(created?.snapshot_name);
    const consistentLsn = parseLsn(String(created?.consistent_point));
    db = await connect(config);
    await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await db.query(`SET TRANSACTION SNAPSHOT '${snapshotName.replaceAll("'", "''")}'`);
    // The catalog as of the snapshot: the columns the stream's first changes will carry.
    const schemas: CachedTableSchema[] = [];
    for (const request of requests) schemas.push(await describeTable(db, request));
    const heapBefore = getHeapStatistics().used_heap_size;
    const stores = new Map<string, TableStore>();
    let rows = 0;
    for (const schema of schemas) {
      const store = new TableStore(schema);
      stores.set(schema.name, store);
      rows = await loadTable(db, store, rows, bounds, heapBefore);
    }
    await db.query('COMMIT');
    const heapBytes = Math.max(0, getHeapStatistics().used_heap_size - heapBefore);
    return { history, consistentLsn, stores, rows, heapBytes };
  } finally {
    await db?.end().catch(() => {});
    await replication.end().catch(() => {});
  }
}

async function loadTable(
  db: PgQueryable,
  store: TableStore,
  loadedBefore: number,
  bounds: LoadBounds,
  heapBefore: number,
): Promise<number> {
  const { schema } = store;
  const columns = schema.columns.map((column) => quoteIdentifier(column.name)).join(', ');
  await db.query(
    `DECLARE near_cache_load NO SCROLL CURSOR FOR SELECT ${columns} FROM ${schema.sql}`,
  );
  let rows = loadedBefore;
  for (;;) {
    const batch = (await db.query(`FETCH ${FETCH_ROWS} FROM near_cache_load`)).rows;
    rows += batch.length;
    if (rows > bounds.maxRows) {
      throw configError(`NearCache: the tables hold more than maxRows (${bounds.maxRows}) rows`, {
        table: schema.name,
        maxRows: bounds.maxRows,
      });
    }
    for (const row of batch) store.put(row);
    if (getHeapStatistics().used_heap_size - heapBefore > bounds.maxBytes) {
      throw configError(
        `NearCache: loading the tables took more than maxBytes (${bounds.maxBytes})`,
        {
          table: schema.name,
          maxBytes: bounds.maxBytes,
        },
      );
    }
    if (batch.length < FETCH_ROWS) break;
  }
  await db.query('CLOSE near_cache_load');
  return rows;
}

/** What the stream tells the cache, in the order the primary committed. */
export interface StreamHandlers {
  /** The columns of a relation, sent before its first change in the stream (and after DDL). */
  onRelation(relation: StreamRelation): void;
  /** A whole transaction's changes, with the end of its commit record. */
  onCommit(changes: readonly StreamChange[], endLsn: bigint): void;
  /** The server has sent everything up to `lsn` (a keepalive between transactions). */
  onProgress(lsn: bigint): void;
  /** The stream broke or ended; the cache must not trust it any more. */
  onFailure(error: unknown): void;
}

/** One decoded change (pgoutput message) of a transaction. */
export type StreamChange =
  | { readonly tag: 'insert'; readonly relation: StreamRelation; readonly new: RowData }
  | {
      readonly tag: 'update';
      readonly relation: StreamRelation;
      readonly key: RowData | null;
      readonly old: RowData | null;
      readonly new: RowData;
    }
  | {
      readonly tag: 'delete';
      readonly relation: StreamRelation;
      readonly key: RowData | null;
      readonly old: RowData | null;
    }
  | { readonly tag: 'truncate'; readonly relations: readonly StreamRelation[] };

export type RowData = Record<string, unknown>;

export interface StreamRelation {
  readonly relationOid: number;
  readonly schema: string;
  readonly name: string;
  readonly columns: readonly { readonly name: string; readonly typeOid: number }[];
}

/** The stream client's module (an optional peer dependency, loaded on first use). */
export type ReplicationClient = typeof import('pg-logical-replication');

let replicationClient: Promise<ReplicationClient> | undefined;

/**
 * Loads `pg-logical-replication`, so that `causeway/pg` itself loads without it; missing, it is
 * a `CONFIG` error saying what to install.
 */
export function loadReplicationClient(): Promise<ReplicationClient> {
  replicationClient ??= import('pg-logical-replication').catch((error: unknown) => {
    replicationClient = undefined;
    throw new CausewayError(
      ErrorCode.CONFIG,
      'NearCache needs the optional peer dependency pg-logical-replication (npm install pg-logical-replication)',
      { cause: error },
    );
  });
  return replicationClient;
}

/** Longest wait for the replication connection to end on `stop()`. */
const STOP_TIMEOUT_MS = 5000;

/** Milliseconds between status updates (the server drops a silent client after 60 s). */
const STATUS_INTERVAL_MS = 1000;

/**
 * One slot's pgoutput stream. Changes are buffered per transaction and handed over at its
 * commit; the position acknowledged is the last commit (or keepalive) the cache has applied
 * (`advance`), sent every second and when the server asks, so the slot frees WAL as the cache
 * advances and never before.
 */
export class ChangeStream {
  readonly #service: LogicalReplicationService;
  readonly #handlers: StreamHandlers;
  readonly #client: ReplicationClient;
  #pending: StreamChange[] | undefined;
  #applied = 0n;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(client: ReplicationClient, config: pg.ClientConfig, handlers: StreamHandlers) {
    this.#handlers = handlers;
    this.#client = client;
    this.#service = new client.LogicalReplicationService(config, {
      // Acknowledged by the cache after it applied a commit, never on receipt.
      acknowledge: { auto: false, timeoutSeconds: 0 },
    });
    this.#service.on('data', (_lsn: string, message: { tag: string }) => this.#receive(message));
    this.#service.on('heartbeat', (lsn: string, _time: number, shouldRespond: boolean) => {
      if (this.#pending === undefined) this.#progress(lsn);
      if (shouldRespond) this.#sendStatus(false);
    });
    this.#service.on('error', (error: unknown) => this.#fail(error));
  }

  /** Starts streaming `slot` of `publication`; resolves once the server streams. */
  start(slot: string, publication: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#service.once('start', () => resolve());
      const plugin = new this.#client.PgoutputPlugin({
        protoVersion: 1,
        publicationNames: [publication],
      });
      this.#service.subscribe(plugin, slot).then(
        () => this.#fail(new Error('the replication stream ended')),
        (error: unknown) => {
          reject(error);
          this.#fail(error);
        },
      );
    }).then(() => {
      this.#timer = setInterval(() => this.#sendStatus(false), STATUS_INTERVAL_MS);
      this.#timer.unref();
    });
  }

  /** Records that the cache has applied everything up to `lsn` (sent with the next status). */
  advance(lsn: bigint): void {
    if (lsn > this.#applied) this.#applied = lsn;
  }

  /** Asks the server for a keepalive now: its answer tells how far it has sent. */
  ping(): void {
    this.#sendStatus(true);
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    // Ending a connection to a server that vanished can wait for a TCP timeout: not close()'s.
    await withTimeout(
      this.#service.destroy(),
      STOP_TIMEOUT_MS,
      () => new Error('stop timed out'),
    ).catch(() => {});
  }

  #sendStatus(replyRequested: boolean): void {
    if (this.#stopped || this.#applied === 0n) return;
    void this.#service.acknowledge(formatLsn(this.#applied), replyRequested).catch(() => {});
  }

  #receive(message: { tag: string }): void {
    if (this.#stopped) return;
    try {
      switch (message.tag) {
        case 'begin':
          this.#pending = [];
          return;
        case 'commit': {
          const changes = this.#pending ?? [];
          this.#pending = undefined;
          const end = (message as unknown as { commitEndLsn: string | null }).commitEndLsn;
          if (end === null) throw new Error('a commit without its end LSN');
          this.#handlers.onCommit(changes, parseLsn(end));
          return;
        }
        case 'relation':
          this.#handlers.onRelation(message as unknown as StreamRelation);
          return;
        case 'insert':
        case 'update':
        case 'delete':
        case 'truncate':
          if (this.#pending === undefined)
            throw new Error(`a ${message.tag} outside a transaction`);
          this.#pending.push(message as StreamChange);
          return;
        default:
          // type, origin and message records carry nothing the cache keeps.
          return;
      }
    } catch (error) {
      this.#fail(error);
    }
  }

  #progress(text: string): void {
    try {
      this.#handlers.onProgress(parseLsn(text));
    } catch (error) {
      this.#fail(error);
    }
  }

  #fail(error: unknown): void {
    if (this.#stopped) return;
    void this.stop();
    this.#handlers.onFailure(error);
  }
}
