// A `pg` module whose `Client` is a view of a pool, for ORMs that open and keep `pg.Client`
// connections of their own (Sequelize's `dialectModule`): through it their statements reach the
// routed pool, so reads in a session can go to replicas instead of one long-held connection.
import { EventEmitter } from 'node:events';
import pg from 'pg';
import { invalidInput } from '../../src/adapter-kit.js';
import { toReleaseError, transactionStatus } from './pg-types.js';

/** A statement that opens a transaction: it and what follows run on one checked-out client. */
const TRANSACTION_START = /^\s*(START\s+TRANSACTION|BEGIN)\b/i;
/** Session-level settings (`SET LOCAL` and `SET TRANSACTION` last for a transaction only). */
const SESSION_SETTING = /^\s*(SET(?!\s+(LOCAL|TRANSACTION)\b)|RESET)\b/i;

type QueryCallback = (error: Error | null, result?: pg.QueryResult) => void;

/** What `pooledClientModule` needs of a pool: `pg.Pool`'s `query` and `connect`. */
export type PooledClientPool = Pick<pg.Pool, 'query' | 'connect'>;

/**
 * One "connection" an ORM holds: outside a transaction each statement goes through
 * `pool.query` (routed in a session); from `BEGIN`/`START TRANSACTION` until the server reports
 * the connection idle again (after `COMMIT`, `ROLLBACK`, or a failed start) the statements run
 * on one client checked out of the pool. The ORM's type parsers go with each statement.
 */
class PooledConnection extends EventEmitter {
  /** Sequelize listens here for the server's parameters while it connects. */
  readonly connection = new EventEmitter();
  _ending = false;
  readonly #pool: PooledClientPool;
  readonly #types: pg.CustomTypesConfig | undefined;
  #transaction: pg.PoolClient | undefined;

  constructor(pool: PooledClientPool, config: { types?: pg.CustomTypesConfig } | undefined) {
    super();
    this.#pool = pool;
    this.#types = config?.types;
  }

  /** Opens nothing: reports the server parameters an ORM reads at connect time. */
  connect(callback?: (error: Error | null) => void): Promise<void> | undefined {
    const parameters =
      "SELECT current_setting('server_version') AS server_version, " +
      "current_setting('standard_conforming_strings') AS standard_conforming_strings";
    const connected = this.#pool.query(parameters).then(({ rows }) => {
      for (const [parameterName, parameterValue] of Object.entries(rows[0] ?? {})) {
        this.connection.emit('parameterStatus', { parameterName, parameterValue });
      }
    });
    if (callback === undefined) return connected;
    connected.then(() => callback(null), callback);
    return undefined;
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
    if (typeof text !== 'string') {
      throw invalidInput('pooledClientModule: a statement must be SQL text', {
        type: typeof text,
      });
    }
    const query = { text, values, types: this.#types };
    if (this.#transaction === undefined) {
      if (SESSION_SETTING.test(text)) {
        throw invalidInput(
          'pooledClientModule: a session-level SET would reach one pooled connection only: put it in the pool connections\' config (options: "-c name=value"), or use SET LOCAL in a transaction',
          { statement: text.slice(0, 80) },
        );
      }
      if (!TRANSACTION_START.test(text)) return this.#pool.query(query);
      this.#transaction = await this.#pool.connect();
    }
    const client = this.#transaction;
    let failure: unknown;
    try {
      return await client.query(query);
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      // Ended (or never begun): the client goes back; a broken one is discarded.
      if (transactionStatus(client) === 'I' || isConnectionError(failure)) {
        this.#transaction = undefined;
        client.release(failure === undefined ? undefined : toReleaseError(failure));
      }
    }
  }

  end(callback?: () => void): Promise<void> | undefined {
    this._ending = true;
    // A transaction still open here was abandoned: its client is discarded, not reused.
    this.#transaction?.release(new Error('connection ended in a transaction'));
    this.#transaction = undefined;
    if (callback === undefined) return Promise.resolve();
    callback();
    return undefined;
  }
}

/** A failure that leaves no usable connection (no SQLSTATE from the server). */
function isConnectionError(error: unknown): boolean {
  return error instanceof Error && typeof (error as { code?: unknown }).code !== 'string';
}

/**
 * A `pg` module (everything `pg` exports) whose `Client` is a view of `pool`, for ORMs that
 * construct and keep `pg.Client`s themselves, e.g. Sequelize's `dialectModule`. Each such
 * client opens no connection: outside a transaction its statements run through `pool.query`
 * (so a routed pool sends reads in a session to replicas), and from `BEGIN`/`START TRANSACTION`
 * until the transaction ends they run on one client checked out of `pool`. A session-level
 * `SET`/`RESET` outside a transaction is refused with `INVALID_INPUT`: it would reach one
 * pooled connection only. `end()` does not end `pool`.
 */
export function pooledClientModule(pool: PooledClientPool): typeof pg {
  function PooledClient(config?: { types?: pg.CustomTypesConfig }) {
    return new PooledConnection(pool, config);
  }
  return { ...pg, Client: PooledClient as unknown as typeof pg.Client };
}
