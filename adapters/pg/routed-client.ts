// The clients of the routed pool: `pg` clients of the primary (the very objects `connect()` hands
// out and the pool's events carry) whose `query` raises the floors of the session active when
// each statement runs, and may send provably read-only work to a replica.
import type pg from 'pg';
import { currentSession, type SessionContext } from '../../src/adapter-kit.js';
import type { SqlClassification } from './classify.js';
import {
  deliver,
  type ParsedQuery,
  type PgQueryConfig,
  type PgQueryResult,
  parseQueryArgs,
  type QueryCallback,
  queryText,
  type RawQuery,
} from './pg-types.js';
import type { PoolRouteReason } from './pool-contracts.js';
import { nextMark } from './position-probe.js';

/** A read-only transaction that runs on a replica connection (see `routeCheckedOutReads`). */
export interface ReplicaTransaction {
  readonly node: string;
  readonly client: pg.PoolClient;
  /** The sessions that ran statements in it: their read floors rise at its end. */
  readonly sessions: Set<SessionContext>;
}

/** What one checkout of a client has run; reset when the pool hands the client out. */
export interface CheckoutState {
  /** Ran something that is not provably read-only: it stays on the primary until released. */
  pinned: boolean;
  /** Sessions that wrote in the open transaction: their write floors rise at its commit. */
  readonly writers: Set<SessionContext>;
  /** Sessions that ran a Submittable (a cursor may write): their write floors rise at release. */
  readonly cursorSessions: Set<SessionContext>;
  /** The read-only transaction running on a replica instead of this connection, if any. */
  replica: ReplicaTransaction | undefined;
  /**
   * The last statement sent elsewhere than this connection (to a replica) or queued behind one,
   * until it settles: later statements wait for it, as `pg` runs a client's statements in order.
   */
  busy: Promise<unknown> | undefined;
}

/** What a routed client needs from its pool. */
export interface ClientRouting {
  classify(text: string): SqlClassification;
  /** Whether read-only work on checked-out clients may go to replicas here. */
  mayRouteCheckedOut(session: SessionContext | undefined): boolean;
  /** True for a statement the pool itself runs on the primary (already routed and reported). */
  isLeaderOnly(config: string | PgQueryConfig): boolean;
  /**
   * For a statement the pool runs: hands it the floor raise to await before returning the
   * outcome (true), so the connection goes back to the pool first; false: await it here.
   */
  deferFloors(config: string | PgQueryConfig, noted: Promise<void>): boolean;
  /** A read-only statement where the router says; `onLeader` runs it on this client instead. */
  routedRead(
    parsed: ParsedQuery,
    session: SessionContext | undefined,
    verdict: SqlClassification,
    onLeader: () => Promise<PgQueryResult>,
  ): Promise<PgQueryResult>;
  /** `BEGIN READ ONLY` on a replica connection; undefined when the router says leader. */
  beginOnReplica(
    parsed: ParsedQuery,
    session: SessionContext | undefined,
    verdict: SqlClassification,
  ): Promise<{ result: PgQueryResult; transaction: ReplicaTransaction } | undefined>;
  /** A statement of a read-only transaction running on a replica; ends it at COMMIT/ROLLBACK. */
  inReplicaTransaction(
    state: CheckoutState,
    parsed: ParsedQuery,
    verdict: SqlClassification,
    session: SessionContext | undefined,
  ): Promise<PgQueryResult>;
  /** Raises the floors of `sessions` to the leader's position read after `mark`. */
  notePrimary(
    sessions: Iterable<SessionContext>,
    kind: 'read' | 'write',
    mark: number,
  ): Promise<void>;
  emitLeaderRoute(
    reason: PoolRouteReason,
    session: SessionContext | undefined,
    statement: string | (() => string),
  ): void;
}

export const STATE = Symbol('causeway.checkout');
/** A routed client's `pg` query itself: a statement run on its own connection, unrouted. */
export const RAW_QUERY = Symbol('causeway.rawQuery');

/** A client of the routed pool, with its checkout state. */
export type RoutedClient = pg.PoolClient & {
  [STATE]: CheckoutState;
  [RAW_QUERY]: RawQuery;
};

export function freshCheckout(): CheckoutState {
  return {
    pinned: false,
    writers: new Set(),
    cursorSessions: new Set(),
    replica: undefined,
    busy: undefined,
  };
}

/** The checkout state of a routed pool's client (undefined for any other object). */
export function checkoutOf(client: unknown): CheckoutState | undefined {
  return (client as Partial<RoutedClient> | null)?.[STATE];
}

/** What a checkout leaves when released: its replica transaction, its cursors' writes. */
export function settleCheckout(
  state: CheckoutState,
  routing: Pick<ClientRouting, 'notePrimary'>,
): void {
  const replica = state.replica;
  state.replica = undefined;
  // Released inside its read-only transaction: the replica connection is not reusable as is.
  replica?.client.release(new Error('released inside a read-only transaction'));
  // A cursor's writes are noted here: `release()` is synchronous in pg, so this finishes just
  // after it returns.
  if (state.cursorSessions.size > 0) {
    void routing.notePrimary([...state.cursorSessions], 'write', nextMark());
  }
}

/**
 * Derives the routed pool's client class from `Base` (`pg.Client`, or the `Client` of the pool's
 * options). Connecting, ending, events and everything else are `Base`'s.
 */
export function routedClientClass(
  Base: typeof pg.Client,
  routing: ClientRouting,
): typeof pg.Client {
  const rawQuery = Base.prototype.query as RawQuery;
  const rawStatus = Base.prototype.getTransactionStatus as (this: pg.Client) => string | null;
  class RoutedPgClient extends Base {
    [STATE]: CheckoutState = freshCheckout();

    [RAW_QUERY](...args: unknown[]): unknown {
      return rawQuery.apply(this, args);
    }

    // biome-ignore lint/suspicious/noExplicitAny: pg's overloads; the arguments are checked below.
    override query(...args: unknown[]): any {
      return clientQuery(
        this[STATE],
        routing,
        args,
        (...raw) => rawQuery.apply(this, raw),
        () => rawStatus.call(this) ?? 'I',
      );
    }

    /** During a read-only transaction on a replica, that transaction's status. */
    override getTransactionStatus(): ReturnType<pg.Client['getTransactionStatus']> {
      const replica = this[STATE].replica;
      return (replica?.client.getTransactionStatus() ?? rawStatus.call(this)) as ReturnType<
        pg.Client['getTransactionStatus']
      >;
    }
  }
  Object.defineProperty(RoutedPgClient, 'name', { value: `Routed${Base.name}` });
  return RoutedPgClient as typeof pg.Client;
}

/**
 * A statement on a checked-out client whose checkout is `state`: `raw` runs it on the client's
 * primary connection, `primaryStatus` is that connection's transaction status.
 */
export function clientQuery(
  state: CheckoutState,
  routing: ClientRouting,
  args: unknown[],
  raw: RawQuery,
  primaryStatus: () => string,
  queued = false,
): unknown {
  if (state.busy !== undefined && !queued) {
    return afterBusy(state, args, (later) =>
      clientQuery(state, routing, later, raw, primaryStatus, true),
    );
  }
  const session = currentSession();
  const parsed = parseQueryArgs(args);
  if (parsed === undefined) {
    if (state.replica !== undefined) return (state.replica.client.query as RawQuery)(...args);
    // A cursor or stream may write and ends when its reader says: noted at release.
    state.pinned = true;
    if (session !== undefined) state.cursorSessions.add(session);
    routing.emitLeaderRoute('submittable', session, 'submittable');
    return raw(...args);
  }
  const leaderOnly = routing.isLeaderOnly(parsed.config);
  if (
    session === undefined &&
    state.replica === undefined &&
    state.writers.size === 0 &&
    !routing.mayRouteCheckedOut(undefined)
  ) {
    // Outside any session nothing is routed or noted: pg's own path, without classifying (which
    // would start the classifier's catalog load). What ran here may have set session state, so
    // the checkout stays on the primary.
    state.pinned = true;
    if (!leaderOnly) {
      routing.emitLeaderRoute(
        'checked-out-client',
        undefined,
        () => routing.classify(queryText(parsed.config)).reason,
      );
    }
    return raw(...args);
  }
  const verdict = routing.classify(queryText(parsed.config));
  const run: PrimaryRun = [state, routing, parsed, verdict, session, raw, primaryStatus];
  // Sent elsewhere: the checkout's next statements wait for it (unless queued behind it already).
  const hold = (statement: Promise<PgQueryResult>) =>
    deliver(queued ? statement : holding(state, statement), parsed.callback);
  if (state.replica !== undefined) {
    return hold(routing.inReplicaTransaction(state, parsed, verdict, session));
  }
  if (
    !leaderOnly &&
    !state.pinned &&
    (verdict.readOnly || verdict.beginsReadOnlyTransaction === true) &&
    primaryStatus() === 'I' &&
    routing.mayRouteCheckedOut(session)
  ) {
    const onLeader = () => onPrimary(run);
    if (verdict.readOnly) return hold(routing.routedRead(parsed, session, verdict, onLeader));
    const begun = routing.beginOnReplica(parsed, session, verdict).then((begin) => {
      if (begin === undefined) return onLeader();
      state.replica = begin.transaction;
      return begin.result;
    });
    return hold(begun);
  }
  if (!leaderOnly) routing.emitLeaderRoute('checked-out-client', session, verdict.reason);
  if (!verdict.readOnly) state.pinned = true;
  if (session === undefined && state.writers.size === 0) return raw(...args);
  if (parsed.callback === undefined) return onPrimary(run);
  runOnPrimary(run, parsed.callback);
  return undefined;
}

/** `statement`, as the checkout's `busy` until it settles. */
function holding<T>(state: CheckoutState, statement: Promise<T>): Promise<T> {
  state.busy = statement;
  const settled = () => {
    if (state.busy === statement) state.busy = undefined;
  };
  statement.then(settled, settled);
  return statement;
}

/** Runs a statement (`run(args)`) once the checkout's `busy` one has settled. */
function afterBusy(state: CheckoutState, args: unknown[], run: (args: unknown[]) => unknown) {
  const previous = (state.busy as Promise<unknown>).then(noop, noop);
  const parsed = parseQueryArgs(args);
  if (parsed === undefined) {
    // A Submittable (or a call pg takes apart itself): sent after the statements before it.
    const later = holding(
      state,
      previous.then(() => run(args)),
    );
    later.catch(noop);
    const submittable = args[0] as { submit?: unknown } | null;
    return typeof submittable?.submit === 'function' ? submittable : undefined;
  }
  const later = previous.then(() => run([parsed.config, parsed.values]) as Promise<PgQueryResult>);
  return deliver(holding(state, later), parsed.callback);
}

function noop(): void {}

/** A statement for `runOnPrimary`: the checkout, the statement and how to run it there. */
type PrimaryRun = readonly [
  state: CheckoutState,
  routing: ClientRouting,
  parsed: ParsedQuery,
  verdict: SqlClassification,
  session: SessionContext | undefined,
  raw: RawQuery,
  primaryStatus: () => string,
];

/**
 * Runs a statement on the primary connection and raises floors before `done` sees the outcome:
 * the write floor of every session that wrote in the transaction when it commits (or after an
 * autocommit statement that may write), the read floor after a read. `done` is called from
 * `pg`'s own callback when no floor is awaited here (none to raise, or the pool awaits it):
 * `pg` calls back at ReadyForQuery, before it parses what follows in the same packet, so a
 * stray message after it (some proxies send one) finds the statement settled and the pool's
 * connection released, as with `pg.Pool`.
 */
function runOnPrimary(run: PrimaryRun, done: QueryCallback): void {
  const [state, routing, parsed, verdict, session, raw, primaryStatus] = run;
  // A config object of its own: `pg` stores the callback on the object it is given.
  const config = typeof parsed.config === 'string' ? parsed.config : Object.create(parsed.config);
  raw(config, parsed.values, (error: Error | null | undefined, result: PgQueryResult) => {
    const failed = error !== null && error !== undefined;
    const mark = nextMark();
    const status = primaryStatus();
    const sessions = new Set(state.writers);
    if (session !== undefined) sessions.add(session);
    let kind: 'read' | 'write' | undefined;
    if (status === 'I') {
      const rolledBack = verdict.command === 'rollback' || verdict.command === 'abort';
      const wrote = state.writers.size > 0 || verdict.mayWrite;
      state.writers.clear();
      if (wrote && !rolledBack && !isReadTimeout(error)) kind = 'write';
      else if (verdict.readOnly && !failed) kind = 'read';
    } else {
      if (verdict.mayWrite && session !== undefined) state.writers.add(session);
      if (verdict.readOnly && !failed && session !== undefined) {
        sessions.clear();
        sessions.add(session);
        kind = 'read';
      }
    }
    const settle = () => done(failed ? error : undefined, result);
    if (kind === undefined || sessions.size === 0) return settle();
    const noted = routing.notePrimary(sessions, kind, mark);
    if (routing.deferFloors(parsed.config, noted)) return settle();
    void noted.then(settle);
  });
}

/** `runOnPrimary`, settling a promise. */
function onPrimary(run: PrimaryRun): Promise<PgQueryResult> {
  return new Promise((resolve, reject) =>
    runOnPrimary(run, (error, result) => (error ? reject(error) : resolve(result))),
  );
}

/**
 * `pg`'s `query_timeout`: the statement may still be running (and commit later), so no position
 * read now could cover it, and waiting for one would only delay the error.
 */
function isReadTimeout(error: unknown): boolean {
  return error instanceof Error && error.message === 'Query read timeout';
}
