/**
 * The read-routing strategies the read-offload workload compares, each opening its own pools:
 * the primary only, a random replica, Rails' pinning, and Causeway's routed pool.
 */
import pg from 'pg';
import {
  createReplicatedPool,
  type PoolRouteEvent,
  type ReplicatedPool,
} from '../adapters/pg/replicated-pool.js';
import { SessionContext, withSession } from '../src/session/context.js';
import { createRng, type Rng } from '../test/chaos/rng.js';

/** The servers: a primary and its streaming replicas, by connection URL. */
export interface OffloadNodes {
  readonly primaryUrl: string;
  readonly replicas: readonly { readonly name: string; readonly url: string }[];
}

/**
 * The strategies: everything on the primary; writes on the primary and each read on a random
 * replica; Rails' pinning; Causeway's routed pool with default options; and the same with
 * `onNoCaughtUp: 'wait'`.
 */
export const STRATEGIES = [
  'primary only',
  'random replica',
  'Rails 2 s pinning',
  'Causeway',
  'Causeway, wait',
] as const;
export type StrategyName = (typeof STRATEGIES)[number];

/** Rails' `delay` of `ActiveRecord::Middleware::DatabaseSelector`: reads go to the primary for
 * this long (wall clock) after the session's last write. */
export const RAILS_PIN_MS = 2000;

type Query = (sql: string, values: unknown[]) => Promise<{ rows: Record<string, unknown>[] }>;

/** One simulated session as a strategy runs it. */
interface SessionRunner {
  write: Query;
  read: Query;
}

/** A routing strategy: where each session's reads and writes go. */
export interface Strategy {
  readonly name: StrategyName;
  session(id: string): SessionRunner;
  /** Opens every connection of its pools, so that no measured read waits for a connect. */
  warm(): Promise<void>;
  /** Causeway only: route decisions by `target:reason`. */
  routes?(): Record<string, number>;
  close(): Promise<void>;
}

function plainPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max });
  pool.on('error', () => {});
  return pool;
}

/** `max` statements at once on each pool: each pool opens `max` connections. */
async function warmPools(
  pools: readonly { query(sql: string): Promise<unknown> }[],
  max: number,
): Promise<void> {
  await Promise.all(
    pools.flatMap((pool) => Array.from({ length: max }, () => pool.query('SELECT 1'))),
  );
}

/** Everything on the primary. */
function primaryOnly(nodes: OffloadNodes, max: number): Strategy {
  const primary = plainPool(nodes.primaryUrl, max);
  const query: Query = (sql, values) => primary.query(sql, values);
  return {
    name: 'primary only',
    session: () => ({ write: query, read: query }),
    warm: () => warmPools([primary], max),
    close: () => primary.end(),
  };
}

/** Writes on the primary, each read on a random replica (the Node ORMs' replica extensions). */
function randomReplica(nodes: OffloadNodes, max: number, rng: Rng): Strategy {
  const primary = plainPool(nodes.primaryUrl, max);
  const replicas = nodes.replicas.map((r) => plainPool(r.url, max));
  return {
    name: 'random replica',
    session: () => ({
      write: (sql, values) => primary.query(sql, values),
      read: (sql, values) => rng.pick(replicas).query(sql, values),
    }),
    warm: () => warmPools([primary, ...replicas], max),
    close: async () => {
      await Promise.all([primary, ...replicas].map((pool) => pool.end()));
    },
  };
}

/**
 * Rails' DatabaseSelector: after a write by the session (successful or not: Rails notes it in an
 * `ensure`), every read goes to the primary for `RAILS_PIN_MS` of wall-clock time; otherwise to
 * a random replica.
 */
function railsPinning(nodes: OffloadNodes, max: number, rng: Rng): Strategy {
  const primary = plainPool(nodes.primaryUrl, max);
  const replicas = nodes.replicas.map((r) => plainPool(r.url, max));
  return {
    name: 'Rails 2 s pinning',
    session: () => {
      let lastWriteAt = Number.NEGATIVE_INFINITY;
      return {
        write: async (sql, values) => {
          try {
            return await primary.query(sql, values);
          } finally {
            lastWriteAt = Date.now();
          }
        },
        read: (sql, values) =>
          Date.now() - lastWriteAt < RAILS_PIN_MS
            ? primary.query(sql, values)
            : rng.pick(replicas).query(sql, values),
      };
    },
    warm: () => warmPools([primary, ...replicas], max),
    close: async () => {
      await Promise.all([primary, ...replicas].map((pool) => pool.end()));
    },
  };
}

/**
 * Causeway as an application uses it: one `createReplicatedPool`, each session's statements
 * inside `withSession` with that session's context (as the middleware carries it from request to
 * request in its token), default level (read-your-writes, which includes monotonic reads) and
 * default options; `'Causeway, wait'` sets `onNoCaughtUp: 'wait'` (wait up to the default
 * 500 ms for a replica to reach the session's floors before reading the leader).
 */
async function causeway(
  name: 'Causeway' | 'Causeway, wait',
  nodes: OffloadNodes,
  max: number,
): Promise<Strategy> {
  const pool: ReplicatedPool = createReplicatedPool({
    ...(name === 'Causeway, wait' ? { onNoCaughtUp: 'wait' as const } : {}),
    primary: { name: 'primary', config: { connectionString: nodes.primaryUrl, max } },
    replicas: nodes.replicas.map((r) => ({
      name: r.name,
      config: { connectionString: r.url, max },
    })),
    // The measuring statement names its server; the function changes nothing.
    classifier: { readOnlyFunctions: ['inet_server_port'] },
  });
  const routes: Record<string, number> = {};
  pool.on('route', (event: PoolRouteEvent) => {
    const key = `${event.target}:${event.reason}`;
    routes[key] = (routes[key] ?? 0) + 1;
  });
  await pool.replicaSet.refresh();
  return {
    name,
    session: (id) => {
      const context = new SessionContext({ id });
      const query: Query = (sql, values) => withSession(context, () => pool.query(sql, values));
      return { write: query, read: query };
    },
    warm: () =>
      warmPools(
        pool.replicaSet.nodeNames.map((name) => pool.replicaSet.pool(name)),
        max,
      ),
    routes: () => ({ ...routes }),
    close: () => pool.end(),
  };
}

export function openStrategies(
  nodes: OffloadNodes,
  names: readonly StrategyName[],
  seed: number,
  poolSize: number,
): Promise<Strategy[]> {
  const rng = createRng(seed);
  const open = (name: StrategyName): Strategy | Promise<Strategy> => {
    switch (name) {
      case 'primary only':
        return primaryOnly(nodes, poolSize);
      case 'random replica':
        return randomReplica(nodes, poolSize, rng.fork());
      case 'Rails 2 s pinning':
        return railsPinning(nodes, poolSize, rng.fork());
      case 'Causeway':
      case 'Causeway, wait':
        return causeway(name, nodes, poolSize);
    }
  };
  return Promise.all(names.map(open));
}

/**
 * Runs one cell: every strategy at the same time, each with `sessions` simulated sessions over
 * its own keys for `seconds`, on pools opened for the cell. Session `i` draws the same operations
 * and pauses under every strategy (its generator is seeded with `seed` and `i`). Inserts the
 * cell's keys first and waits for the replicas to replay them.
 */
