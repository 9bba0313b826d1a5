// The replica side of the routed pool: routed reads, read-only transactions on a replica,
// replica connection setup, error triage, and the floors raised after each.
import type { EventEmitter } from 'node:events';
import type pg from 'pg';
import {
  type ConsistencyLevel,
  comparePositions,
  type Position,
  type Router,
  type SessionContext,
} from '../../src/adapter-kit.js';
import type { SqlClassification } from './classify.js';
import {
  type ParsedQuery,
  type PgQueryResult,
  queryText,
  type RawQuery,
  toReleaseError,
  transactionStatus,
} from './pg-types.js';
import type {
  PoolClassifier,
  PoolRouteEvent,
  PoolRouteReason,
  RoutingReplicaSet,
} from './pool-contracts.js';
import { nextMark } from './position-probe.js';
import { isCheckoutWait, sqlStateOf, triageReplicaError } from './replica-errors.js';
import type { CheckoutState, ReplicaTransaction } from './routed-client.js';

function ignoreError(): void {}

/** A replica connection whose `'connect'` listeners' queries failed: it is not used. */
class ConnectionSetupFailed extends Error {}

/** Routes statements to replicas for one routed pool (`pool` receives its events). */
export class ReplicaRouting {
  readonly replicaSet: RoutingReplicaSet;
  readonly router: Router;
  readonly #leaderName: string;
  readonly #classifier: PoolClassifier;
  readonly #events: EventEmitter;
  /** Routed reads running per replica: alone, a read takes its position pipelined behind it. */
  readonly #reading = new Map<string, number>();
  /** Replica connections that carry an 'error' listener of ours. */
  readonly #guarded = new WeakSet<object>();
  /** Replica connections whose `'connect'` listeners' queries are still to be checked. */
  readonly #setups = new WeakMap<object, Promise<unknown>>();

  constructor(
    replicaSet: RoutingReplicaSet,
    router: Router,
    classifier: PoolClassifier,
    events: EventEmitter,
  ) {
    this.replicaSet = replicaSet;
    this.router = router;
    this.#leaderName = replicaSet.nodeNames[0] as string;
    this.#classifier = classifier;
    this.#events = events;
  }

  /** A read-only statement: where the router says, raising the session's read floor after. */
  async routedRead(
    parsed: ParsedQuery,
    session: SessionContext | undefined,
    verdict: SqlClassification,
    onLeader: () => Promise<PgQueryResult>,
  ): Promise<PgQueryResult> {
    // The topology the router decides on (route() decides synchronously, on this snapshot).
    const topology = this.replicaSet.snapshot();
    const decision = await this.router.route(session);
    this.emitRoute({ ...decision, statement: verdict.reason });
    if (decision.target === 'leader') return onLeader();
    const node = decision.node;
    const retry = () => this.retryOnLeader(verdict, decision.level, onLeader);
    const client = await this.replicaClient(node);
    if (client === undefined) return retry();
    let result: PgQueryResult;
    let replayed: Promise<Position | undefined> | undefined;
    const reading = (this.#reading.get(node) ?? 0) + 1;
    this.#reading.set(node, reading);
    try {
      if (session === undefined) result = await runOn(client, parsed);
      else if (reading > 1) {
        // Other reads of this node are in flight: one position read after them all is cheaper
        // than one behind each (see `PgReplicaSet.positionAfter`).
        result = await runOn(client, parsed);
        replayed = this.replicaSet.positionAfter(node, nextMark());
      } else [result, replayed] = await readThenPosition(client, parsed, node, this.replicaSet);
    } catch (error) {
      client.release(toReleaseError(error));
      if (!this.replicaMayRetry(node, error, parsed)) throw error;
      return retry();
    } finally {
      this.#reading.set(node, (this.#reading.get(node) ?? 1) - 1);
    }
    const mark = nextMark();
    if (session === undefined || replayed === undefined) {
      client.release();
      return result;
    }
    const floor = session.floorFor(decision.level, topology.leader.position?.stream);
    const believed = topology.replicas.find((replica) => replica.name === node)?.position;
    // The replay position read on the read's own connection, right behind it (see
    // `readThenPosition`): at least what the read could have seen.
    const position = await this.replicaPosition(node, () => replayed, [floor, believed]);
    client.release(position === 'unusable' ? true : undefined);
    if (position === 'unusable') return retry();
    if (position === undefined) {
      // Without the replica's replay position, the leader's position bounds what it could show.
      await this.notePrimary([session], 'read', mark);
    } else {
      session.noteRead(position);
    }
    return result;
  }

  /**
   * Node `name`'s position read after `mark`, or `'unusable'` when it cannot vouch for what was
   * read on it: no longer in recovery, unreachable, or behind one of `notBelow` (it restarted
   * and came back from an earlier point; crash recovery replays from its last restartpoint).
   * The node is then reported or marked down.
   */
  async replicaPosition(
    name: string,
    read: () => Promise<Position | undefined>,
    notBelow: readonly (Position | undefined)[],
  ): Promise<Position | 'unusable' | undefined> {
    let position: Position | undefined;
    try {
      position = await read();
    } catch (error) {
      this.replicaSet.reportError(name, error);
      return 'unusable';
    }
    if (position !== undefined && notBelow.some((than) => isBehind(position, than))) {
      this.replicaSet.markDown(name);
      return 'unusable';
    }
    return position;
  }

  /**
   * A connection of replica `name` whose `'connect'` listeners have run, or undefined (the
   * caller uses the leader) when none can be had; only a lost connection counts against it.
   */
  async replicaClient(name: string): Promise<pg.PoolClient | undefined> {
    let client: pg.PoolClient;
    try {
      client = (await this.replicaSet.pool(name).connect()) as unknown as pg.PoolClient;
    } catch (error) {
      if (!isCheckoutWait(error)) this.replicaSet.reportError(name, error);
      return undefined;
    }
    if (!this.#guarded.has(client)) {
      // When the server goes away, `pg` emits 'error' on every client, and `pg.Pool` listens only
      // on idle ones: an unheard one would end the process. The statement that fails tells the
      // caller, and the broken client is discarded at release.
      client.on('error', ignoreError);
      this.#guarded.add(client);
    }
    const setup = this.#setups.get(client);
    if (setup === undefined) return client;
    try {
      await setup;
      this.#setups.delete(client);
      return client;
    } catch (error) {
      client.release(new ConnectionSetupFailed('connection setup failed', { cause: error }));
      return undefined;
    }
  }

  /** Whether a replica's error is retried on the leader; reports a lost connection. */
  replicaMayRetry(node: string, error: unknown, parsed: ParsedQuery): boolean {
    const triage = triageReplicaError(error);
    if (triage === 'fail') return false;
    if (triage === 'connection') this.replicaSet.reportError(node, error);
    // A write the text did not show (a view with rules, a function): the classifier learns it.
    if (sqlStateOf(error) === '25006') this.#classifier.notReadOnly?.(queryText(parsed.config));
    return true;
  }

  retryOnLeader(
    verdict: SqlClassification,
    level: ConsistencyLevel,
    onLeader: () => Promise<PgQueryResult>,
  ): Promise<PgQueryResult> {
    this.emitRoute({
      target: 'leader',
      node: this.#leaderName,
      reason: 'replica-error',
      level,
      statement: verdict.reason,
    });
    return onLeader();
  }

  /**
   * Runs each new replica connection's `'connect'` listeners (as `pg.Pool` does on its own) and
   * keeps what their queries become: the connection is used only once they all succeeded.
   */
  setUpReplicaConnection(client: pg.PoolClient): void {
    if (this.#events.listenerCount('connect') === 0) return;
    const queries: Promise<unknown>[] = [];
    const own = Object.hasOwn(client, 'query');
    const original = client.query;
    client.query = ((...args: unknown[]) => {
      const last = args.length - 1;
      const callback = args[last];
      if (typeof callback === 'function') {
        queries.push(
          new Promise((resolve, reject) => {
            args[last] = (error: Error | undefined, ...rest: unknown[]) => {
              if (error) reject(error);
              else resolve(undefined);
              return (callback as (...a: unknown[]) => unknown)(error, ...rest);
            };
          }),
        );
      }
      const returned = (original as RawQuery).apply(client, args);
      if (returned instanceof Promise) queries.push(returned);
      return returned;
    }) as typeof client.query;
    try {
      this.#events.emit('connect', client);
    } finally {
      if (own) client.query = original;
      else delete (client as { query?: unknown }).query;
    }
    if (queries.length === 0) return;
    const setup = Promise.all(queries);
    setup.catch(() => {});
    this.#setups.set(client, setup);
  }

  /** `BEGIN READ ONLY` on a caught-up replica connection; undefined: run it on the leader. */
  async beginOnReplica(
    parsed: ParsedQuery,
    session: SessionContext | undefined,
    verdict: SqlClassification,
  ): Promise<{ result: PgQueryResult; transaction: ReplicaTransaction } | undefined> {
    const topology = this.replicaSet.snapshot();
    const decision = await this.router.route(session);
    if (decision.target === 'leader') {
      this.emitRoute({ ...decision, statement: verdict.reason });
      return undefined;
    }
    const node = decision.node;
    const client = await this.replicaClient(node);
    let result: PgQueryResult | undefined;
    let failure: unknown;
    if (client !== undefined) {
      try {
        result = await runOn(client, parsed);
      } catch (error) {
        client.release(toReleaseError(error));
        if (!this.replicaMayRetry(node, error, parsed)) throw error;
        failure = error;
      }
    }
    if (client !== undefined && failure === undefined) {
      // The transaction's snapshot comes later, on this connection: the node must be at or past
      // the floor it was chosen for now (it cannot go back while the connection lives).
      const floor = session?.floorFor(decision.level, topology.leader.position?.stream);
      const believed = topology.replicas.find((replica) => replica.name === node)?.position;
      const mark = nextMark();
      const position = await this.replicaPosition(
        node,
        () => this.replicaSet.positionAfter(node, mark),
        [floor, believed],
      );
      if (position !== 'unusable') {
        this.emitRoute({ ...decision, statement: verdict.reason });
        const sessions = new Set(session === undefined ? [] : [session]);
        return { result: result as PgQueryResult, transaction: { node, client, sessions } };
      }
      client.release(new Error('replica could not vouch for its position'));
    }
    this.emitRoute({ ...this.leaderTarget('replica-error', session, verdict.reason) });
    return undefined;
  }

  /** A statement of the read-only transaction on a replica; its end raises the read floors. */
  async inReplicaTransaction(
    state: CheckoutState,
    parsed: ParsedQuery,
    verdict: SqlClassification,
    session: SessionContext | undefined,
  ): Promise<PgQueryResult> {
    const transaction = state.replica as ReplicaTransaction;
    if (session !== undefined) transaction.sessions.add(session);
    this.emitRoute({
      target: 'replica',
      node: transaction.node,
      reason: 'read-only-transaction',
      level: session?.level ?? this.router.level,
      statement: verdict.reason,
    });
    let result: PgQueryResult;
    try {
      result = await runOn(transaction.client, parsed);
    } catch (error) {
      if (triageReplicaError(error) === 'connection') {
        // The transaction is gone with its connection; the client is back on the primary.
        this.replicaSet.reportError(transaction.node, error);
        state.replica = undefined;
        transaction.client.release(toReleaseError(error));
      } else {
        await this.endReplicaTransaction(state, transaction);
      }
      throw error;
    }
    await this.endReplicaTransaction(state, transaction);
    return result;
  }

  /** At COMMIT/ROLLBACK (the replica connection is idle again): read floors, connection back. */
  async endReplicaTransaction(state: CheckoutState, transaction: ReplicaTransaction) {
    if (transactionStatus(transaction.client) !== 'I') return;
    const mark = nextMark();
    state.replica = undefined;
    transaction.client.release();
    if (transaction.sessions.size === 0) return;
    const position = await this.replicaPosition(
      transaction.node,
      () => this.replicaSet.positionAfter(transaction.node, mark),
      [],
    );
    for (const session of transaction.sessions) {
      if (position === 'unusable' || position === undefined) session.floorsUncertain = true;
      else session.noteRead(position);
    }
  }

  /**
   * Raises the floors of `sessions` to the leader's position read after `mark`, or marks them
   * uncertain (their reads then go to the leader): a statement that ran is never reported as
   * failed for this.
   */
  async notePrimary(
    sessions: Iterable<SessionContext>,
    kind: 'read' | 'write',
    mark: number,
  ): Promise<void> {
    let position: Position | undefined;
    try {
      position = await this.replicaSet.positionAfter(this.#leaderName, mark);
    } catch {
      position = undefined;
    }
    for (const session of sessions) {
      if (position === undefined) session.floorsUncertain = true;
      else if (kind === 'write') session.noteWrite(position);
      else session.noteRead(position);
    }
  }

  leaderTarget(
    reason: PoolRouteReason,
    session: SessionContext | undefined,
    statement: string,
  ): PoolRouteEvent {
    return {
      target: 'leader',
      node: this.#leaderName,
      reason,
      level: session?.level ?? this.router.level,
      statement,
    };
  }

  emitRoute(event: PoolRouteEvent): void {
    if (this.#events.listenerCount('route') > 0) this.#events.emit('route', event);
  }
}

/** Runs a parsed statement on a replica connection. */
function runOn(client: pg.PoolClient, parsed: ParsedQuery): Promise<PgQueryResult> {
  return (client.query as RawQuery).call(
    client,
    parsed.config,
    parsed.values,
  ) as Promise<PgQueryResult>;
}

/**
 * Runs a read on a replica connection with the node's replay position read right behind it on
 * the same connection: sound (the server runs it after the read) and, where `pg` can pipeline
 * (8.2x), in the same round trip: both are written at once and answered together.
 */
async function readThenPosition(
  client: pg.PoolClient,
  parsed: ParsedQuery,
  node: string,
  replicaSet: RoutingReplicaSet,
): Promise<[PgQueryResult, Promise<Position | undefined>]> {
  const connection = client as pg.PoolClient & { pipeline?: unknown };
  // A portal (`rows`) cannot share a pipelined connection; a pipelined client already is.
  const pipelined =
    connection.pipeline === false &&
    !(typeof parsed.config === 'object' && (parsed.config as { rows?: unknown }).rows);
  if (pipelined) connection.pipeline = true;
  const read = runOn(client, parsed);
  const position = replicaSet.positionOn(node, client);
  position.catch(() => {});
  try {
    return [await read, position];
  } finally {
    if (pipelined) {
      await position.then(
        () => {},
        () => {},
      );
      connection.pipeline = false;
    }
  }
}

/** True when `position` is in `than`'s history and before it (false when either is missing). */
function isBehind(position: Position, than: Position | undefined): boolean {
  return than !== undefined && comparePositions(position, than) === 'before';
}
