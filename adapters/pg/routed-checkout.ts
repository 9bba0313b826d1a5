// What the routed pool's `connect()` hands out with `routeCheckedOutReads: 'on-demand'`: a checkout that
// takes a connection of the primary only when a statement first needs one, so that reads routed
// to replicas through a checked-out client (Kysely, Knex, TypeORM, Drizzle and Prisma check one
// out per query or transaction) do not also hold a primary connection.
import { EventEmitter } from 'node:events';
import pg from 'pg';
import {
  type CheckoutState,
  type ClientRouting,
  clientQuery,
  freshCheckout,
  RAW_QUERY,
  type RoutedClient,
  STATE,
  settleCheckout,
} from './routed-client.js';

/** The primary connection's events a checkout passes on to its own listeners. */
const FORWARDED = ['error', 'notice', 'notification', 'end'] as const;

/** What a checkout needs from its pool. */
export interface CheckoutPool {
  readonly routing: ClientRouting;
  /** A connection of the primary, as `pg.Pool#connect` hands it out. */
  takePrimary(): Promise<RoutedClient>;
}

/** `pg.Pool#connect`'s third callback argument: gives the client back. */
export type ReleaseCallback = (error?: Error | boolean) => void;

/** A new checkout, as `pg.Pool#connect` hands out a client: promised, or to `callback`. */
export function handOut(
  routing: ClientRouting,
  takePrimary: () => Promise<RoutedClient>,
  callback?: (error: Error | undefined, client: pg.PoolClient, done: ReleaseCallback) => void,
): Promise<pg.PoolClient> | undefined {
  const checkout = new RoutedCheckout({ routing, takePrimary }) as unknown as pg.PoolClient;
  if (callback === undefined) return Promise.resolve(checkout);
  process.nextTick(() => callback(undefined, checkout, (error) => checkout.release(error)));
  return undefined;
}

/**
 * A checked-out client of the routed pool that holds no connection until it needs one: a
 * statement the router sends to a replica uses a replica connection for that statement only;
 * the first statement that must run on the primary (a write, `BEGIN`, a statement outside a
 * session with `readOutsideSession: 'primary'`, a cursor) takes a primary connection, and every
 * later statement of the checkout runs there until `release()` (transactions stay on one
 * backend). Differences from `pg.PoolClient`: it is not a `pg.Client`; `'connect'`, `'acquire'`
 * and `'release'` carry the primary connection, when it is taken and released, so a checkout
 * that never needed one counts in none of the pool's counts and fires none of them; connection
 * errors (including `connectionTimeoutMillis`) fail the statement that needed the primary, not
 * `connect()`; `processID` is null until then. `'error'`, `'notice'`, `'notification'` and
 * `'end'` of its primary connection are emitted on the checkout.
 */
export class RoutedCheckout extends EventEmitter {
  readonly [STATE]: CheckoutState = freshCheckout();
  readonly #pool: CheckoutPool;
  #primary: RoutedClient | undefined;
  #taking: Promise<RoutedClient> | undefined;
  #released = false;
  readonly #forward = FORWARDED.map((event) => {
    const listener = (...args: unknown[]) => {
      // Unheard errors are not thrown: the statement that meets the broken connection fails.
      if (event !== 'error' || this.listenerCount('error') > 0) this.emit(event, ...args);
    };
    return [event, listener] as const;
  });

  constructor(pool: CheckoutPool) {
    super();
    this.#pool = pool;
  }

  /** `pg.Client#query` in all its forms, routed as the pool's checked-out clients are. */
  // biome-ignore lint/suspicious/noExplicitAny: pg's overloads; the arguments are checked there.
  query(...args: unknown[]): any {
    return clientQuery(
      this[STATE],
      this.#pool.routing,
      args,
      (...raw) => this.#onPrimary(raw),
      () => this.getTransactionStatus() ?? 'I',
    );
  }

  /** Gives the primary connection back, if one was taken (`pg.PoolClient#release`). */
  release(error?: Error | boolean): void {
    if (this.#released) {
      throw new Error('Release called on client which has already been released to the pool.');
    }
    this.#released = true;
    settleCheckout(this[STATE], this.#pool.routing);
    const primary = this.#primary;
    if (primary !== undefined) this.#giveBack(primary, error);
    else void this.#taking?.then((taken) => this.#giveBack(taken, error), noop);
  }

  /** The transaction status of the replica transaction or primary connection in use, or `'I'`. */
  getTransactionStatus(): string | null {
    const replica = this[STATE].replica;
    if (replica !== undefined) return replica.client.getTransactionStatus();
    return this.#primary?.getTransactionStatus() ?? 'I';
  }

  /** The primary connection's backend process id; null while none is taken. */
  get processID(): number | null {
    return (this.#primary as { processID?: number } | undefined)?.processID ?? null;
  }

  escapeIdentifier(text: string): string {
    return pg.escapeIdentifier(text);
  }

  escapeLiteral(text: string): string {
    return pg.escapeLiteral(text);
  }

  /** Runs `pg`'s own query on the primary connection, taking one first if none is held. */
  #onPrimary(args: unknown[]): unknown {
    if (this.#primary !== undefined) return this.#primary[RAW_QUERY](...args);
    const taking = this.#take();
    const last = args[args.length - 1];
    const submittable = args[0] as { submit?: unknown; handleError?: (error: Error) => void };
    if (typeof submittable?.submit === 'function') {
      taking.then(
        (primary) => primary[RAW_QUERY](...args),
        (error: Error) => submittable.handleError?.(error),
      );
      return submittable;
    }
    if (typeof last === 'function') {
      taking.then((primary) => primary[RAW_QUERY](...args), last as (error: Error) => void);
      return undefined;
    }
    return taking.then((primary) => primary[RAW_QUERY](...args));
  }

  #take(): Promise<RoutedClient> {
    if (this.#released) {
      return Promise.reject(new Error('Client was released to the pool and is not queryable'));
    }
    this.#taking ??= this.#pool.takePrimary().then(
      (primary) => {
        this.#primary = primary;
        for (const [event, listener] of this.#forward) primary.on(event, listener);
        return primary;
      },
      (error: unknown) => {
        this.#taking = undefined;
        throw error;
      },
    );
    return this.#taking;
  }

  #giveBack(primary: RoutedClient, error: Error | boolean | undefined): void {
    for (const [event, listener] of this.#forward) primary.removeListener(event, listener);
    primary.release(error);
  }
}

function noop(): void {}
