// The handles and options of the servers the harness starts.

/** A server the harness started; `stop()` and `start()` keep its port and data. */
export interface ServerHandle {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export interface PgServer extends ServerHandle {
  readonly dataDir: string;
  /** Stops the server the way a crash would (`pg_ctl -m immediate`). */
  crash(): Promise<void>;
}

/** A streaming replica the harness made; it can also leave and rejoin the primary's stream. */
export interface ReplicaServer extends PgServer {
  /** Ends recovery (`pg_ctl promote`): the node stops replaying the primary and starts a new timeline. */
  promote(): Promise<void>;
  /**
   * Starts the server and returns once it accepts connections, without waiting for it to stream
   * (`start()` waits): a replica whose apply delay holds back its local WAL streams only later.
   */
  startAcceptingConnections(): Promise<void>;
  /**
   * Replaces the data directory with a new `pg_basebackup` of the primary (same port, name and
   * apply delay) and starts it streaming: a promoted node comes back on the primary's timeline.
   */
  rebuild(): Promise<void>;
}

export interface RedisServer extends ServerHandle {
  readonly dataDir: string;
}

export interface Cluster {
  readonly primary: PgServer;
  /** A streaming replica with no delay. */
  readonly replica: ReplicaServer;
  /** A streaming replica that applies commits `replicaDelayMs` late. */
  readonly laggingReplica: ReplicaServer;
  readonly replicaDelayMs: number;
  /** A second, independent primary (for transactions across two databases). */
  readonly primary2: PgServer;
  /** A streaming replica of `primary2` that applies commits `replicaDelayMs` late. */
  readonly primary2Replica: ReplicaServer;
  readonly redis: RedisServer;
  stop(): Promise<void>;
}

export interface PrimaryOptions {
  name?: string;
  /** Extra `postgresql.conf` settings, e.g. `{ max_prepared_transactions: 0 }`. */
  settings?: Record<string, string | number>;
}

export interface ReplicaOptions {
  name?: string;
  /** `recovery_min_apply_delay` in milliseconds; default 0 (no delay). */
  delayMs?: number;
}

export interface RedisOptions {
  name?: string;
  /** Keep data across restarts with an append-only file (`appendfsync always`); default false. */
  appendOnly?: boolean;
  /** More `redis-server` arguments, e.g. `['--cluster-enabled', 'yes']`. */
  args?: readonly string[];
}
