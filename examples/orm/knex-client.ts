// Knex before 3.3 (no `connectionPool`), and ORMs built on such a Knex (MikroORM 6), over the
// routed pool (README, "ORMs and query builders").
import type pg from 'pg';

// biome-ignore lint/suspicious/noExplicitAny: a mixin's constructor must take any arguments.
type KnexClientClass = new (...args: any[]) => object;

/**
 * A subclass of a Knex PostgreSQL client class (Knex's own, or an ORM's) that takes its
 * connections from `pool` instead of opening them through a pool of its own: each query and
 * each transaction checks a client out of the routed pool and releases it after, as Knex 3.3's
 * `connectionPool` does. Knex's `destroy()` does not end `pool`.
 */
export function routedKnexClient<C extends KnexClientClass>(Base: C, pool: pg.Pool): C {
  const checkedOut = new Set<pg.PoolClient>();
  return class RoutedKnexClient extends Base {
    /** The server version Knex's dialect reads (Knex sets it on its own connections). */
    declare version?: string;

    initializePool(): void {
      // No pool of Knex's own: every connection comes from `pool`.
    }

    async acquireConnection(): Promise<pg.PoolClient> {
      const connection = await pool.connect();
      checkedOut.add(connection);
      if (!this.version) {
        const { rows } = await connection.query('SHOW server_version');
        this.version = String(rows[0].server_version).split(' ')[0];
      }
      return connection;
    }

    async releaseConnection(connection: pg.PoolClient): Promise<void> {
      // Knex releases a streamed query's connection a second time when the stream closes.
      if (checkedOut.delete(connection)) connection.release();
    }
  };
}
