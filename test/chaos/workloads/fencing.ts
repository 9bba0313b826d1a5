/**
 * Chaos workload for leases and fencing tokens. Lease holders run in child processes
 * (`fencing-child.ts`), each competing for one resource's lease on PostgreSQL (the cluster's
 * primary) and on Redis, and writing with the lease's token through the storage's fence.
 *
 * Fault `lease-pause`: the current holder of a lease (of a backend picked by the seed) is
 * SIGSTOPped for longer than the lease's ttl, so another holder takes the lease over and
 * writes; then SIGCONT, and the paused holder's next write goes out with its old token.
 *
 * `verify()` reads each storage's own log of accepted writes (appended in the same transaction
 * or script as the write) and checks (fencing-check.ts): the accepted tokens never go
 * backwards in the storage's order (a lower token accepted after a higher one counts in
 * `staleWritesAccepted`); every acknowledged write is in the log and every rejected one is not;
 * every rejection had a newer token to lose to; the stored value is the last logged write's;
 * and each lease's tokens grow in real time (a grant that began after another ended has a
 * larger token), across restarts.
 *
 * Redis without persistence (the harness default) loses the log, the fence and the counter
 * on a restart. The workload notices (the data epoch changes) and reports what that costs in
 * `notes`: acknowledged writes gone with the data, and older tokens accepted by a fence that
 * forgot the newer ones. Both are the documented limit (README, "Limits"); with `appendonly
 * yes` they count as lost writes and accepted stale writes.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { sleep } from '../../../src/util/timers.js';
import type { Cluster } from '../../harness/cluster.js';
import type { ChaosContext, Fault, Workload, WorkloadReport } from '../types.js';
import { type ChildHandle, pauseProcess, spawnChild } from './child-process.js';
import {
  checkGrants,
  checkLog,
  checkRedisLosses,
  checkRejections,
  type FencingTally,
  type Grant,
  type LoggedWrite,
  newestToken,
  redisDataSets,
  type WriteRecord,
} from './fencing-check.js';
import type {
  FencingBackend,
  FencingChildConfig,
  FencingCommand,
  FencingEvent,
  PgFencingTables,
  RedisDataKeys,
} from './fencing-child.js';

const CHILD_SCRIPT = fileURLToPath(new URL('./fencing-child.ts', import.meta.url));

export interface FencingWorkloadOptions {
  /** Lease holders, one child process each. Default: 3. */
  holders?: number;
  /** Backends to exercise. Default: both. */
  backends?: readonly FencingBackend[];
  /** Lease ttl. Default: 400 ms. */
  ttlMs?: number;
  /** Pause between a holder's writes. Default: 30 ms. */
  writeIntervalMs?: number;
  /** Longest pause between attempts to take a held lease. Default: 80 ms. */
  acquireIntervalMs?: number;
  /** Fewest and most writes per lease. Default: [5, 20]. */
  termWrites?: readonly [number, number];
  /** A pause lasts the ttl plus a seeded extra in this range. Default: [250, 700] ms. */
  pauseExtraMs?: readonly [number, number];
}

export interface FencingStats {
  writes: number;
  accepted: number;
  rejectedStale: Record<FencingBackend, number>;
  /** Stale rejections of writes a paused holder made after it resumed. */
  staleAfterPause: number;
  errors: Record<FencingBackend, number>;
  grants: Record<FencingBackend, number>;
  pauses: number;
  /** Times Redis refused to restart a lost token counter (fail closed). */
  counterLost: number;
  /** Redis data sets seen (1 unless Redis lost its data). */
  redisEpochs: number;
}

export interface FencingWorkload extends Workload {
  readonly stats: Readonly<FencingStats>;
  /** The resource, PostgreSQL tables and Redis key prefix this run uses. */
  readonly names: Readonly<{ resource: string; tables: PgFencingTables; keyPrefix: string }>;
}

/** The fencing workload with its `lease-pause` fault (see the file's comment). */
export function fencingWorkload(options: FencingWorkloadOptions = {}): FencingWorkload {
  const holders = options.holders ?? 3;
  const backends = options.backends ?? ['pg', 'redis'];
  const ttlMs = options.ttlMs ?? 400;
  const [pauseMin, pauseMax] = options.pauseExtraMs ?? [250, 700];
  const suffix = randomBytes(4).toString('hex');
  const names = {
    resource: `chaos-fence-${suffix}`,
    tables: {
      leases: `chaos_fence_leases_${suffix}`,
      fences: `chaos_fence_fences_${suffix}`,
      log: `chaos_fence_log_${suffix}`,
      data: `chaos_fence_data_${suffix}`,
    },
    keyPrefix: `chaos-fence:${suffix}:`,
  };
  const redisKey = (kind: string) => `${names.keyPrefix}{${names.resource}}:${kind}`;
  const redisKeys: RedisDataKeys = {
    log: redisKey('log'),
    seq: redisKey('seq'),
    data: redisKey('data'),
    epoch: redisKey('epoch'),
  };
  const perBackend = <T>(make: () => T) => ({ pg: make(), redis: make() });

  const stats: FencingStats = {
    writes: 0,
    accepted: 0,
    rejectedStale: perBackend(() => 0),
    staleAfterPause: 0,
    errors: perBackend(() => 0),
    grants: perBackend(() => 0),
    pauses: 0,
    counterLost: 0,
    redisEpochs: 0,
  };
  const grants = perBackend((): Grant[] => []);
  const writes = new Map<string, WriteRecord>();
  /** Per holder and backend: the token it held when it was last paused. */
  const pausedWith = new Map<string, bigint>();
  /** Per backend: the holder of the newest grant, until it gives the lease up. */
  const current = perBackend((): { holder: string; token: bigint } | undefined => undefined);
  const runFailures: string[] = [];
  const events: string[] = [];

  let cluster: Cluster | undefined;
  let pool: pg.Pool | undefined;
  let redis: Redis | undefined;
  let log: (event: string) => void = () => {};
  const children = new Map<string, ChildHandle<FencingCommand>>();
  let stopping = false;
  let faults: Promise<unknown> = Promise.resolve();

  const note = (line: string) => {
    events.push(`${new Date().toISOString()} ${line}`);
    log(`fencing: ${line}`);
  };

  const onEvent = (holder: string, raw: unknown) => {
    const event = raw as FencingEvent;
    switch (event.t) {
      case 'granted': {
        const token = BigInt(event.token);
        stats.grants[event.b]++;
        grants[event.b].push({
          holder,
          token,
          startedAt: event.startedAt,
          grantedAt: event.grantedAt,
        });
        const now = current[event.b];
        if (now === undefined || token > now.token) current[event.b] = { holder, token };
        break;
      }
      case 'lost':
      case 'released': {
        if (current[event.b]?.holder === holder) current[event.b] = undefined;
        break;
      }
      case 'counter-lost':
        stats.counterLost++;
        break;
      case 'write': {
        stats.writes++;
        const token = BigInt(event.token);
        writes.set(event.id, {
          id: event.id,
          backend: event.b,
          holder,
          token,
          startedAt: event.startedAt,
          result: 'pending',
          afterPause: pausedWith.get(`${holder}:${event.b}`) === token,
        });
        break;
      }
      case 'ok': {
        const write = writes.get(event.id);
        if (write === undefined) break;
        stats.accepted++;
        write.result = 'ok';
        write.endedAt = event.endedAt;
        write.seq = event.seq;
        if (event.epoch !== undefined) write.epoch = event.epoch;
        break;
      }
      case 'stale': {
        const write = writes.get(event.id);
        if (write === undefined) break;
        write.result = 'stale';
        stats.rejectedStale[event.b]++;
        if (write.afterPause) stats.staleAfterPause++;
        if (current[event.b]?.holder === holder) current[event.b] = undefined;
        break;
      }
      case 'error': {
        stats.errors[event.b]++;
        const write = event.id === undefined ? undefined : writes.get(event.id);
        if (write !== undefined) write.result = 'error';
        break;
      }
      case 'unhandled':
        runFailures.push(`unhandled rejection in holder ${holder}: ${event.message}`);
        break;
      default:
        break;
    }
  };

  const childConfig = (holder: string, seed: number): FencingChildConfig => ({
    holder,
    seed,
    resource: names.resource,
    ...(backends.includes('pg') ? { pg: { url: cluster!.primary.url, tables: names.tables } } : {}),
    ...(backends.includes('redis')
      ? { redis: { url: cluster!.redis.url, keyPrefix: names.keyPrefix, keys: redisKeys } }
      : {}),
    ttlMs,
    writeIntervalMs: options.writeIntervalMs ?? 30,
    acquireIntervalMs: options.acquireIntervalMs ?? 80,
    termWrites: options.termWrites ?? [5, 20],
  });

  const pauseHolder = async (ctx: ChaosContext): Promise<void> => {
    if (stopping || children.size === 0) return;
    // Every choice is drawn before the first await, so a seed replays them.
    const backend = ctx.rng.pick(backends);
    const fallback = ctx.rng.pick([...children.keys()]);
    const ms = ttlMs + ctx.rng.int(pauseMin, pauseMax);
    // Between two terms nobody holds the lease: wait a little for the next holder.
    const deadline = performance.now() + 2 * ttlMs;
    while (current[backend] === undefined && performance.now() < deadline) await sleep(10);
    const holder = current[backend]?.holder ?? fallback;
    const child = children.get(holder)!;
    // Whatever it holds now, it will write with after it resumes.
    for (const b of backends) {
      const held = current[b];
      if (held?.holder === holder) pausedWith.set(`${holder}:${b}`, held.token);
    }
    stats.pauses++;
    note(`pausing ${holder} (${backend} token ${current[backend]?.token ?? 'none'}) for ${ms} ms`);
    await pauseProcess(child.pid, ms);
  };

  const fault: Fault = {
    kind: 'lease-pause',
    inject(ctx) {
      const run = faults.then(() => pauseHolder(ctx));
      faults = run.catch(() => {});
      return run;
    },
  };

  const readPgLog = async (): Promise<{ logged: LoggedWrite[]; value: string | undefined }> => {
    const { rows } = await pool!.query(
      `SELECT seq, token::text AS token, write_id FROM ${names.tables.log} WHERE resource = $1 ORDER BY seq`,
      [names.resource],
    );
    const data = await pool!.query(
      `SELECT write_id FROM ${names.tables.data} WHERE resource = $1`,
      [names.resource],
    );
    return {
      logged: rows.map((row) => ({
        seq: Number(row.seq),
        token: BigInt(row.token),
        id: String(row.write_id),
      })),
      value: data.rows[0]?.write_id,
    };
  };

  const readRedisLog = async () => {
    const entries = await redis!.lrange(redisKeys.log, 0, -1);
    const logged = entries.map((entry) => {
      const [seq, token, id] = entry.split(' ');
      return { seq: Number(seq), token: BigInt(token!), id: id! };
    });
    const value = (await redis!.get(redisKeys.data)) ?? undefined;
    const epoch = (await redis!.get(redisKeys.epoch)) ?? undefined;
    const [, appendOnly] = (await redis!.config('GET', 'appendonly')) as [string, string];
    return { logged, value, epoch, persistent: appendOnly === 'yes' };
  };

  return {
    name: 'fencing',
    faults: [fault],
    stats,
    names,

    async start(ctx) {
      cluster = ctx.cluster;
      log = (event) => ctx.log(event);
      if (backends.includes('pg')) {
        pool = new pg.Pool({ connectionString: ctx.cluster.primary.url, max: 2 });
        pool.on('error', () => {});
        await pool.query(`CREATE TABLE IF NOT EXISTS ${names.tables.log} (
          seq bigserial PRIMARY KEY, resource text NOT NULL, token bigint NOT NULL,
          write_id text NOT NULL UNIQUE)`);
        await pool.query(`CREATE TABLE IF NOT EXISTS ${names.tables.data} (
          resource text PRIMARY KEY, write_id text NOT NULL, token bigint NOT NULL)`);
      }
      if (backends.includes('redis')) {
        redis = new Redis(ctx.cluster.redis.url, { maxRetriesPerRequest: 3 });
        redis.on('error', () => {});
      }
      for (let i = 0; i < holders; i++) {
        const holder = `h${i}`;
        const child = spawnChild<FencingCommand>(
          CHILD_SCRIPT,
          [JSON.stringify(childConfig(holder, ctx.rng.int(1, 2 ** 31)))],
          (event) => onEvent(holder, event),
        );
        children.set(holder, child);
        void child.exited.then((exit) => {
          if (stopping) return;
          runFailures.push(
            `holder ${holder} exited unexpectedly (code ${exit.code}, signal ${exit.signal}): ` +
              child.stderrTail().slice(-500),
          );
        });
      }
      await Promise.all([...children.values()].map((child) => child.ready));
      note(`started ${holders} holders on ${backends.join(' and ')} for ${names.resource}`);
    },

    async stop() {
      stopping = true;
      await faults;
      await Promise.all(
        [...children.values()].map(async (child) => {
          child.send({ c: 'stop' });
          const exited = await Promise.race([
            child.exited.then(() => true),
            sleep(15_000).then(() => false),
          ]);
          if (!exited) child.kill('SIGKILL');
          await child.exited;
        }),
      );
    },

    async verify(): Promise<WorkloadReport> {
      const tally: FencingTally = {
        failures: [...runFailures],
        notes: [],
        lostWrites: 0,
        violations: 0,
        staleWritesAccepted: 0,
      };
      const { failures, notes } = tally;

      if (backends.includes('pg')) {
        checkGrants('pg', grants.pg, tally);
        const stored = await readPgLog();
        checkLog('pg', writes, stored, () => true, tally);
        checkRejections(
          'pg',
          writes,
          newestToken(stored.logged.map((entry) => entry.token)),
          tally,
        );
      }

      if (backends.includes('redis')) {
        checkGrants('redis', grants.redis, tally);
        const { logged, value, epoch, persistent } = await readRedisLog();
        const epochs = redisDataSets(writes);
        stats.redisEpochs = new Set([...epochs.keys(), ...(epoch ? [epoch] : [])]).size;
        const ownEpoch = (write: WriteRecord) => write.epoch === undefined || write.epoch === epoch;
        checkLog('redis', writes, { logged, value }, ownEpoch, tally);
        checkRedisLosses(writes, epochs, { epoch, persistent, count: stats.redisEpochs }, tally);
        const attempted = [...writes.values()].filter((write) => write.backend === 'redis');
        checkRejections('redis', writes, newestToken(attempted.map((write) => write.token)), tally);
        if (stats.counterLost > 0) {
          notes.push(`Redis refused ${stats.counterLost} lease(s) with counter-lost (fail closed)`);
        }
      }

      const staleWritesRejected = stats.rejectedStale.pg + stats.rejectedStale.redis;
      notes.push(
        `${stats.pauses} holder pauses; stale writes rejected: ${stats.rejectedStale.pg} on ` +
          `PostgreSQL, ${stats.rejectedStale.redis} on Redis (${stats.staleAfterPause} right ` +
          `after a pause)`,
      );

      if (failures.length === 0) {
        if (pool !== undefined) {
          const { leases, fences, log: logTable, data } = names.tables;
          await pool.query(`DROP TABLE IF EXISTS ${leases}, ${fences}, ${logTable}, ${data}`);
        }
        if (redis !== undefined) {
          const keys = await redis.keys(`${names.keyPrefix}*`);
          if (keys.length > 0) await redis.del(...keys);
        }
      }
      await pool?.end();
      redis?.disconnect();

      return {
        workload: 'fencing',
        operations: stats.writes,
        violations: tally.violations,
        lostWrites: tally.lostWrites,
        staleWritesRejected,
        staleWritesAccepted: tally.staleWritesAccepted,
        failures,
        notes,
        history: {
          names,
          stats,
          events,
          grants: Object.fromEntries(
            Object.entries(grants).map(([b, list]) => [
              b,
              list.map((grant) => ({ ...grant, token: grant.token.toString() })),
            ]),
          ),
          writes: [...writes.values()].map((write) => ({
            ...write,
            token: write.token.toString(),
          })),
        },
      };
    },
  };
}
