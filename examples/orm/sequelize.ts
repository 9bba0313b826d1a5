// Sequelize 6 over the routed pool (README, "ORMs and query builders").
import { EventEmitter } from 'node:events';
import pg from 'pg';
import { type Options, Sequelize } from 'sequelize';

const TRANSACTION_START = /^\s*(START\s+TRANSACTION|BEGIN)\b/i;
// `ROLLBACK TO SAVEPOINT` stays in the transaction.
const TRANSACTION_END = /^\s*(COMMIT|END|ABORT|ROLLBACK(?!\s+TO\b))\b/i;
// Session-level settings; `SET LOCAL` and `SET TRANSACTION` last for a transaction only.
const SESSION_SETTING = /^\s*(SET(?!\s+(LOCAL|TRANSACTION)\b)|RESET)\b/i;

type QueryCallback = (error: Error | null, result?: pg.QueryResult) => void;

/**
 * What Sequelize holds as one connection: a view of the routed pool. Outside a transaction each
 * statement goes through the pool (so a read in a session can go to a replica); from `START
 * TRANSACTION` to `COMMIT`/`ROLLBACK` they run on one client checked out of the pool. Sequelize
 * gives every connection its own type parsers: they go with each query.
 */
class PooledConnection extends EventEmitter {
  /** Sequelize listens here for the server's parameters while it connects. */
  readonly connection = new EventEmitter();
  _ending = false;
  readonly #pool: pg.Pool;
  readonly #types: pg.CustomTypesConfig | undefined;
  #transaction: pg.PoolClient | undefined;

  constructor(pool: pg.Pool, config: { types?: pg.CustomTypesConfig }) {
    super();
    this.#pool = pool;
    this.#types = config.types;
  }

  connect(callback: (error: Error | null) => void): void {
    const parameters =
      "SELECT current_setting('server_version') AS server_version, " +
      "current_setting('standard_conforming_strings') AS standard_conforming_strings";
    this.#pool.query(parameters).then(({ rows }) => {
      for (const [parameterName, parameterValue] of Object.entries(rows[0])) {
        this.connection.emit('parameterStatus', { parameterName, parameterValue });
      }
      callback(null);
    }, callback);
  }

  /** `pg.Client#query(text, values?, callback?)`: a promise without a callback. */
  query(
    text: string,
    values?: unknown[] | QueryCallback,
    callback?: QueryCallback,
  ): Promise<pg.QueryResult> | undefined {
    const [params, done] = typeof values === 'function' ? [undefined, values] : [values, callback];
    const result = this.#run(text, params);
    if (done === undefined) return result;
    result.then((rows) => done(null, rows), done);
    return undefined;
  }

  async #run(text: string, values: unknown[] | undefined): Promise<pg.QueryResult> {
    const query = { text, values, types: this.#types };
    if (this.#transaction === undefined && TRANSACTION_START.test(text)) {
      this.#transaction = await this.#pool.connect();
    }
    const client = this.#transaction;
    if (client === undefined) {
      if (SESSION_SETTING.test(text)) {
        throw new Error(
          'A session-level SET would reach one pooled connection only: set it in the pool ' +
            "connections' config (options: '-c name=value'), or use SET LOCAL in a transaction",
        );
      }
      return this.#pool.query(query);
    }
    try {
      return await client.query(query);
    } catch (error) {
      if (TRANSACTION_START.test(text)) this.#endTransaction(error as Error);
      throw error;
    } finally {
      if (TRANSACTION_END.test(text)) this.#endTransaction();
    }
  }

  #endTransaction(error?: Error): void {
    this.#transaction?.release(error);
    this.#transaction = undefined;
  }

  end(callback: () => void): void {
    this._ending = true;
    // A transaction still open here was abandoned: its client is destroyed, not reused.
    if (this.#transaction) this.#endTransaction(new Error('connection ended in a transaction'));
    callback();
  }
}

export function sequelizeOverCauseway(pool: pg.Pool, options: Options = {}): Sequelize {
  // `keepDefaultTimezone` is read by Sequelize 6 but missing from its types.
  const settings: Options & { keepDefaultTimezone: boolean } = {
    ...options,
    dialect: 'postgres',
    dialectModule: {
      ...pg,
      Client: function PooledClient(config: { types?: pg.CustomTypesConfig }) {
        return new PooledConnection(pool, config);
      },
    },
    // Sequelize sets the time zone and client_min_messages on each new connection, which here is
    // no connection of its own: set them in the pool connections' config if you need them.
    keepDefaultTimezone: true,
    dialectOptions: { ...options.dialectOptions, clientMinMessages: 'ignore' },
  };
  return new Sequelize(settings);
}
