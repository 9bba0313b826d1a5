// Reads the near cache cannot answer from memory go to the database: through a replicated pool
// (the session router picks a replica that has reached the session's floor, or the primary, and
// raises the floors) or through a plain pool on the primary.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { SessionContext } from '../../../src/session/context.js';
import { parseLsn } from '../replica-set.js';
import { type PoolRouteEvent, ReplicatedPool } from '../replicated-pool.js';
import { connectClient, type PgQueryablePool } from '../sql.js';
import { type CachedRow, freezeRow } from './table-store.js';

/** What the database answered, and which node answered it. */
export interface PoolAnswer {
  readonly rows: CachedRow[];
  readonly source: 'replica' | 'leader';
  readonly node: string;
}

// The primary's history and WAL insert location, read after a read on the same connection (as
// PgReplicaSet does for the leader: the timeline from the WAL file name).
const PRIMARY_POSITION = `SELECT s.system_identifier::text AS stream,
  pg_walfile_name(pg_current_wal_insert_lsn()) AS walfile, pg_current_wal_insert_lsn()::text AS lsn
FROM pg_control_system() s`;

/** The route event of the read in flight in this async context (see `ReplicatedPool`'s `'route'`). */
interface RouteTicket {
  event: PoolRouteEvent | undefined;
}

export class Fallthrough {
  readonly #pool: PgQueryablePool;
  readonly #routed: boolean;
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
  }

  /** Stops listening to the pool (which stays open: it is the caller's). */
  close(): void {
    if (this.#pool instanceof ReplicatedPool) this.#pool.off('route', this.#onRoute);
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
      const at = (await client.query(PRIMARY_POSITION)).rows[0];
      client.release();
      if (typeof at?.['walfile'] === 'string' && typeof at['lsn'] === 'string') {
        session.noteRead({
          stream: String(at['stream']),
          epoch: Number.parseInt(at['walfile'].slice(0, 8), 16),
          lsn: parseLsn(at['lsn']),
        });
      }
      return { rows: result.rows.map(freezeRow), source: 'leader', node: 'primary' };
    } catch (error) {
      client.release(error instanceof Error ? error : true);
      throw error;
    }
  }
}
