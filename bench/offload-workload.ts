/**
 * The read-offload workload shared by bench/offload.bench.ts and its integration test: simulated
 * user sessions over registers on a real primary and its streaming replicas, under several read
 * routing strategies run side by side. Every operation is recorded in the history shape of
 * src/testing/history.ts, with the node that served it measured by the statement itself
 * (`inet_server_port()`), so that a checker, not the router, decides what each strategy did.
 */
import pg from 'pg';
import {
  createReplicatedPool,
  type PoolRouteEvent,
  type ReplicatedPool,
} from '../adapters/pg/replicated-pool.js';
import { SessionContext, withSession } from '../src/session/context.js';
import { type CheckResult, HistoryRecorder } from '../src/testing/index.js';
import { sleep } from '../src/util/timers.js';
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

/** How a simulated session spends its time: the mix of operations and the pauses between them. */
export interface SessionProfile {
  /** Share of operations that are writes. */
  readonly writeShare: number;
  /** Share of writes that go to the session's own keys (the rest to shared hot keys). */
  readonly ownKeyWriteShare: number;
  /** Milliseconds to pause before the next operation; `afterWrite` is true right after a write. */
  thinkMs(rng: Rng, afterWrite: boolean): number;
}

/**
 * An interactive user: 10 % writes (70 % of them to the user's own rows); right after a write
 * the next request follows in 5-50 ms (the redirect after a form post, where read-your-writes
 * breaks); otherwise a page's requests come in a burst 5-50 ms apart half of the time, and the
 * user thinks for 0.2-3 s the other half.
 */
export const INTERACTIVE: SessionProfile = {
  writeShare: 0.1,
  ownKeyWriteShare: 0.7,
  thinkMs: (rng, afterWrite) =>
    afterWrite || rng.chance(0.5) ? rng.int(5, 50) : rng.int(200, 3000),
};

/** A busy client (a job, an API client in a loop): 10 % writes, 5-50 ms between operations. */
export const BUSY: SessionProfile = {
  writeShare: 0.1,
  ownKeyWriteShare: 0.7,
  thinkMs: (rng) => rng.int(5, 50),
};

/** Shared keys that every session of a strategy reads and writes. */
const HOT_KEYS = 4;
/** Keys per session that only that session writes. */
const OWN_KEYS = 2;
/** Hot keys each read includes besides the session's own. */
const HOT_KEYS_PER_READ = 2;

export interface CellOptions {
  readonly nodes: OffloadNodes;
  /** The register table (made by `createRegisterTable`). */
  readonly table: string;
  /** Names this cell's keys apart from other cells' (e.g. the lag). */
  readonly cell: string;
  readonly sessions: number;
  readonly seconds: number;
  readonly seed: number;
  readonly profile: SessionProfile;
  /** Strategies to run at the same time; default all of `STRATEGIES`. */
  readonly strategies?: readonly StrategyName[];
  /** Connections per node per strategy. Default 8. */
  readonly poolSize?: number;
}

/** What one strategy did in one cell. */
export interface StrategyRun {
  readonly strategy: StrategyName;
  /** The history checker's verdict on every write and answered read of the strategy. */
  readonly check: CheckResult;
  readonly reads: number;
  /** Reads answered by a replica, as the reading statement reported its server's port. */
  readonly replicaReads: number;
  readonly writes: number;
  /** Operations that failed (failed writes are in the history as unacknowledged). */
  readonly errors: number;
  readonly readLatenciesMs: number[];
  /** Causeway only: route decisions by `target:reason` (diagnostics, not measurements). */
  readonly routes?: Record<string, number>;
}

/** Creates the register table: one row per key, `version` 0 at first. */
export async function createRegisterTable(primary: pg.Pool, table: string): Promise<void> {
  await primary.query(`CREATE TABLE ${table} (key text PRIMARY KEY, version int NOT NULL)`);
}

/** Node names by server port, asked of each server (the port a statement reports). */
async function nodeNamesByPort(nodes: OffloadNodes): Promise<Map<number, string>> {
  const names = new Map<number, string>();
  const all = [{ name: 'primary', url: nodes.primaryUrl }, ...nodes.replicas];
  for (const node of all) {
    const client = new pg.Client({ connectionString: node.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ port: number }>('SELECT inet_server_port() AS port');
      names.set(rows[0]!.port, node.name);
    } finally {
      await client.end();
    }
  }
  return names;
}

/**
 * Waits until every replica has replayed everything the primary has written so far (its WAL
 * write location, which covers every commit that has returned).
 */
async function waitForReplicas(nodes: OffloadNodes, timeoutMs = 30_000): Promise<void> {
  const primary = new pg.Client({ connectionString: nodes.primaryUrl });
  await primary.connect();
  let target: string;
  try {
    target = (await primary.query('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
  } finally {
    await primary.end();
  }
  const deadline = performance.now() + timeoutMs;
  for (const replica of nodes.replicas) {
    const client = new pg.Client({ connectionString: replica.url });
    await client.connect();
    try {
      for (;;) {
        const { rows } = await client.query(
          'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done',
          [target],
        );
        if (rows[0].done === true) break;
        if (performance.now() > deadline) {
          throw new Error(`${replica.name} did not replay up to ${target} in ${timeoutMs} ms`);
        }
        await sleep(10);
      }
    } finally {
      await client.end();
    }
  }
}

/**
 * Sets `recovery_min_apply_delay` on a replica (ALTER SYSTEM works on a hot standby: it writes
 * postgresql.auto.conf) and reloads, then waits until a new connection shows the setting.
 */
export async function setApplyDelay(replicaUrl: string, delayMs: number): Promise<void> {
  const client = new pg.Client({ connectionString: replicaUrl });
  await client.connect();
  try {
    await client.query(`ALTER SYSTEM SET recovery_min_apply_delay = '${Math.round(delayMs)}ms'`);
    await client.query('SELECT pg_reload_conf()');
  } finally {
    await client.end();
  }
  const deadline = performance.now() + 10_000;
  for (;;) {
    const check = new pg.Client({ connectionString: replicaUrl });
    await check.connect();
    try {
      const { rows } = await check.query(
        `SELECT setting::int AS ms FROM pg_settings WHERE name = 'recovery_min_apply_delay'`,
      );
      if (rows[0].ms === Math.round(delayMs)) return;
    } finally {
      await check.end();
    }
    if (performance.now() > deadline) throw new Error(`${replicaUrl}: delay not applied`);
    await sleep(20);
  }
}

/**
 * Measures each replica's apply delay: commits a new version of a probe key on the primary and
 * times (from the commit's return) until each replica shows it, polling every 2 ms on
 * connections opened beforehand. Waits first until the replicas have replayed everything.
 */
export async function measureApplyDelays(
  nodes: OffloadNodes,
  table: string,
): Promise<Record<string, number>> {
  const key = 'lag-probe';
  const primary = new pg.Client({ connectionString: nodes.primaryUrl });
  const replicas = nodes.replicas.map(
    (replica) => [replica.name, new pg.Client({ connectionString: replica.url })] as const,
  );
  try {
    await Promise.all([primary, ...replicas.map(([, client]) => client)].map((c) => c.connect()));
    await primary.query(
      `INSERT INTO ${table} (key, version) VALUES ($1, 0) ON CONFLICT (key) DO NOTHING`,
      [key],
    );
    await waitForReplicas(nodes);
    const { rows } = await primary.query(
      `UPDATE ${table} SET version = version + 1 WHERE key = $1 RETURNING version`,
      [key],
    );
    const committedAt = performance.now();
    const delays = await Promise.all(
      replicas.map(async ([name, client]) => {
        for (;;) {
          const seen = await client.query(`SELECT version FROM ${table} WHERE key = $1`, [key]);
          const waited = performance.now() - committedAt;
          if (seen.rows[0].version >= rows[0].version) return [name, waited] as const;
          if (waited > 30_000) throw new Error(`${name} did not apply the probe in 30 s`);
          await sleep(2);
        }
      }),
    );
    return Object.fromEntries(delays);
  } finally {
    await Promise.allSettled(
      [primary, ...replicas.map(([, client]) => client)].map((c) => c.end()),
    );
  }
}

/** The rows of a statement: what both `pg.Pool` and the routed pool resolve to. */
type Query = (sql: string, values: unknown[]) => Promise<{ rows: Record<string, unknown>[] }>;

/** One simulated session as a strategy runs it. */
interface SessionRunner {
  write: Query;
  read: Query;
}

/** A routing strategy: where each session's reads and writes go. */
interface Strategy {
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

function openStrategies(
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
export async function runCell(options: CellOptions): Promise<StrategyRun[]> {
  const strategies = await openStrategies(
    options.nodes,
    options.strategies ?? STRATEGIES,
    options.seed,
    options.poolSize ?? 8,
  );
  try {
    await Promise.all(strategies.map((strategy) => strategy.warm()));
    return await runStrategies(strategies, options);
  } finally {
    await Promise.all(strategies.map((strategy) => strategy.close()));
  }
}

async function runStrategies(
  strategies: readonly Strategy[],
  options: CellOptions,
): Promise<StrategyRun[]> {
  const { nodes, table, cell } = options;
  const portNames = await nodeNamesByPort(nodes);
  const primaryPort = [...portNames].find(([, name]) => name === 'primary')![0];
  const keysOf = strategies.map((_, s) => {
    const prefix = `${cell}/${s}/`;
    return {
      hot: Array.from({ length: HOT_KEYS }, (_, j) => `${prefix}hot-${j}`),
      own: (session: number) =>
        Array.from({ length: OWN_KEYS }, (_, j) => `${prefix}s${session}-${j}`),
    };
  });
  const setup = new pg.Client({ connectionString: nodes.primaryUrl });
  await setup.connect();
  try {
    const keys = keysOf.flatMap((k) => [
      ...k.hot,
      ...Array.from({ length: options.sessions }, (_, i) => k.own(i)).flat(),
    ]);
    await setup.query(`INSERT INTO ${table} (key, version) SELECT unnest($1::text[]), 0`, [keys]);
  } finally {
    await setup.end();
  }
  await waitForReplicas(nodes);

  const read = `SELECT inet_server_port() AS port,
    (SELECT json_object_agg(key, version) FROM ${table} WHERE key IN ($1, $2, $3, $4)) AS observed`;
  const write = `UPDATE ${table} SET version = version + 1 WHERE key = $1
    RETURNING version, inet_server_port() AS port`;
  const deadline = performance.now() + options.seconds * 1000;

  const ctx = { options, read, write, deadline, primaryPort, portNames };
  return Promise.all(strategies.map((strategy, s) => runStrategy(strategy, keysOf[s]!, s, ctx)));
}

interface RunContext {
  readonly options: CellOptions;
  readonly read: string;
  readonly write: string;
  readonly deadline: number;
  readonly primaryPort: number;
  readonly portNames: ReadonlyMap<number, string>;
}

/** Runs one strategy's sessions until the deadline, recording and then checking its history. */
async function runStrategy(
  strategy: Strategy,
  keys: { hot: string[]; own: (session: number) => string[] },
  index: number,
  { options, read, write, deadline, primaryPort, portNames }: RunContext,
): Promise<StrategyRun> {
  const recorder = new HistoryRecorder();
  const readLatenciesMs: number[] = [];
  let replicaReads = 0;
  let writes = 0;
  let errors = 0;
  const node = (port: number) => portNames.get(port) ?? `port ${port}`;

  const runSession = async (sessionIndex: number) => {
    const session = `${options.cell}-${index}-${sessionIndex}`;
    // The same seed for session i under every strategy: the same operations and pauses.
    const rng = createRng(options.seed * 1_000_003 + sessionIndex);
    const runner = strategy.session(session);
    const own = keys.own(sessionIndex);
    let writeCount = 0;
    // Sessions start over the first second, as users arrive, not all in one burst.
    await sleep(rng.int(0, 1000));
    while (performance.now() < deadline) {
      const isWrite = rng.chance(options.profile.writeShare);
      if (isWrite) {
        const key = rng.chance(options.profile.ownKeyWriteShare)
          ? rng.pick(own)
          : rng.pick(keys.hot);
        const id = `${session}/w${writeCount++}`;
        const startedAt = recorder.now();
        try {
          const row = (await runner.write(write, [key])).rows[0] as {
            version: number;
            port: number;
          };
          const endedAt = recorder.now();
          recorder.write({
            session,
            key,
            id,
            version: row.version,
            node: node(row.port),
            startedAt,
            endedAt,
            acknowledged: true,
          });
          writes++;
        } catch {
          // It may or may not have committed: version unknown (0), never required visible.
          const endedAt = recorder.now();
          recorder.write({
            session,
            key,
            id,
            version: 0,
            node: 'primary',
            startedAt,
            endedAt,
            acknowledged: false,
          });
          errors++;
        }
      } else {
        const readKeys = [...own, ...pickDistinct(rng, keys.hot, HOT_KEYS_PER_READ)];
        const startedAt = recorder.now();
        try {
          const row = (await runner.read(read, readKeys)).rows[0] as {
            port: number;
            observed: Record<string, number> | null;
          };
          const endedAt = recorder.now();
          const observed: Record<string, number> = {};
          for (const key of readKeys) observed[key] = row.observed?.[key] ?? 0;
          recorder.read({ session, observed, node: node(row.port), startedAt, endedAt });
          readLatenciesMs.push(endedAt - startedAt);
          if (row.port !== primaryPort) replicaReads++;
        } catch {
          // A failed read observed nothing: nothing to check.
          errors++;
        }
      }
      const think = options.profile.thinkMs(rng, isWrite);
      await sleep(Math.max(0, Math.min(think, deadline - performance.now())));
    }
  };
  await Promise.all(Array.from({ length: options.sessions }, (_, i) => runSession(i)));
  return {
    strategy: strategy.name,
    check: recorder.check({ guarantees: ['read-your-writes', 'monotonic-reads'] }),
    reads: readLatenciesMs.length,
    replicaReads,
    writes,
    errors,
    readLatenciesMs,
    ...(strategy.routes === undefined ? {} : { routes: strategy.routes() }),
  };
}

function pickDistinct<T>(rng: Rng, items: readonly T[], count: number): T[] {
  const picked = new Set<T>();
  while (picked.size < count) picked.add(rng.pick(items));
  return [...picked];
}
