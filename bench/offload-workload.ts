/**
 * The read-offload workload shared by bench/offload.bench.ts and its integration test: simulated
 * user sessions over registers on a real primary and its streaming replicas, under several read
 * routing strategies run side by side. Every operation is recorded in the history shape of
 * src/testing/history.ts, with the node that served it measured by the statement itself
 * (`inet_server_port()`), so that a checker, not the router, decides what each strategy did.
 */
import pg from 'pg';
import { type CheckResult, HistoryRecorder } from '../src/testing/index.js';
import { sleep } from '../src/util/timers.js';
import { createRng, type Rng } from '../test/chaos/rng.js';
import { nodeNamesByPort, waitForReplicas } from './offload-replication.js';
import {
  type OffloadNodes,
  openStrategies,
  STRATEGIES,
  type Strategy,
  type StrategyName,
} from './offload-strategies.js';

export { createRegisterTable, measureApplyDelays, setApplyDelay } from './offload-replication.js';
export {
  type OffloadNodes,
  RAILS_PIN_MS,
  STRATEGIES,
  type StrategyName,
} from './offload-strategies.js';

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
