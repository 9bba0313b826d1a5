// Reads the near cache cannot answer from memory go to the database: through a replicated pool
// (the session router picks a replica that has reached the session's floor, or the primary, and
// raises the floors) or through a plain pool on the primary.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { SessionContext } from '../../../src/adapter-kit.js';
import { PgReplicaSet } from '../replica-set.js';
import { type PoolRouteEvent, ReplicatedPool } from '../replicated-pool.js';
import { connectClient, type PgQueryablePool } from '../sql.js';
import { type CachedRow, freezeRow } from './table-store.js';

/** What the database answered, and which node answered it. */
export interface PoolAnswer {
  readonly rows: CachedRow[];
  readonly source: 'replica' | 'leader';
  readonly node: string;
}

/** The route event of the read in flight in this async context (see `ReplicatedPool`'s `'route'`). */
interface RouteTicket {
  event: PoolRouteEvent | undefined;
}

export class Fallthrough {
  readonly #pool: PgQueryablePool;
  readonly #routed: boolean;
  /** For a plain pool: a replica set of just that primary, to read its position (no polling). */
  readonly #primary: PgReplicaSet | undefined;
  readonly #tickets = new AsyncLocalStorage<RouteTicket>();
  // The pool emits 'route' in the async context of the query that caused it; the last one wins
  // (a replica that failed is retried on the leader).
  readonly #onRoute = (event: PoolRouteEvent) => {
    const ticket = this.#tickets.getStore();
    if (ticket !== undefined) ticket.event = event;
  };

  constructor(pool: PgQueryablePool) {
    this.#pool = pool;
    this.#routed = pool instanceof ReplicatedPool;
    if (pool instanceof ReplicatedPool) pool.on('route', this.#onRoute);
    this.#primary = this.#routed
      ? undefined
      : new PgReplicaSet({ primary: { pool }, replicas: [], pollIntervalMs: 0 });
  }

  /** Stops listening to the pool (which stays open: it is the caller's). */
  async close(): Promise<void> {
    if (this.#pool instanceof ReplicatedPool) this.#pool.off('route', this.#onRoute);
    await this.#primary?.close();
  }

  /** Runs `sql` in the current session's context. */
  async query(
    sql: string,
    values: readonly unknown[],
    session: SessionContext | undefined,
  ): Promise<PoolAnswer> {
    if (this.#routed) {
      const ticket: RouteTicket = { event: undefined };
      const result = await this.#tickets.run(ticket, () => this.#pool.query(sql, [...values]));
      return {
        rows: result.rows.map(freezeRow),
        source: ticket.event?.target ?? 'leader',
        node: ticket.event?.node ?? 'primary',
      };
    }
    if (session === undefined) {
      const result = await this.#pool.query(sql, [...values]);
      return { rows: result.rows.map(freezeRow), source: 'leader', node: 'primary' };
    }
    // A plain pool is the primary: what it shows may be ahead of every replica, so the session's
    // read floor rises to the primary's position read after the query, on the same connection.
    const client = await connectClient(this.#pool);
    try {
      const result = await client.query(sql, [...values]);
      const position = await this.#primary!.writePosition(client);
      client.release();
      if (position !== undefined) session.noteRead(position);
      return { rows: result.rows.map(freezeRow), source: 'leader', node: 'primary' };
    } catch (error) {
      client.release(error instanceof Error ? error : true);
      throw error;
    }
  }
}
