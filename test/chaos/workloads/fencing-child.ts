/**
 * One lease holder of the chaos fencing workload (run by `fencing.ts` with `node --import tsx`).
 * For each backend it runs a loop: acquire the resource's lease, then write with the lease's
 * fencing token every `writeIntervalMs` for a seeded number of writes, renewing the lease when a
 * third of its ttl has passed, then release it and compete again. Writes are fenced by the
 * storage itself: PostgreSQL (`PgLeaseManager`, `PgFenceGuard.write`: check and write in one
 * transaction on the primary) and Redis (`RedisLeaseManager`, `RedisFenceGuard.eval`: check and
 * write in one script).
 *
 * It does not look at its lease before a write: after a pause (the parent SIGSTOPs it past the
 * lease's ttl) its next write goes out with the old token, and only the storage's fence stands
 * between that write and the new holder's data. Every write appends `seq token id` to a log in
 * the storage, in the same transaction or script, so `verify()` reads the storage's own order.
 *
 * Protocol: JSON events on stdout (`FencingEvent`, synchronous writes), JSON commands on stdin
 * (`FencingCommand`); the process exits when stdin closes.
 */
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import pg from 'pg';
import { PgFenceGuard, PgLeaseManager } from '../../../adapters/pg/fencing.js';
import { RedisFenceGuard, RedisLeaseManager } from '../../../adapters/redis/fencing.js';
import { ErrorCode, isCausewayError } from '../../../src/errors.js';
import type { Lease, LeaseManager } from '../../../src/fencing/token.js';
import { sleep } from '../../../src/util/timers.js';
import { createRng } from '../rng.js';

export type FencingBackend = 'pg' | 'redis';

export interface PgFencingTables {
  leases: string;
  fences: string;
  /** `(seq bigserial, resource, token, write_id)`: every accepted write, in commit order. */
  log: string;
  /** `(resource, write_id, token)`: the value the writes overwrite. */
  data: string;
}

/**
 * Keys of the Redis backend's own data, beside the lease manager's and guard's keys (in the
 * resource's hash slot): the log of accepted writes, its sequence, the value, the data epoch.
 */
export interface RedisDataKeys {
  log: string;
  seq: string;
  data: string;
  epoch: string;
}

export interface FencingChildConfig {
  holder: string;
  seed: number;
  resource: string;
  pg?: { url: string; tables: PgFencingTables };
  redis?: { url: string; keyPrefix: string; keys: RedisDataKeys };
  ttlMs: number;
  writeIntervalMs: number;
  /** Longest pause between attempts to take a lease someone else holds. */
  acquireIntervalMs: number;
  /** Fewest and most writes per lease before giving it up. */
  termWrites: readonly [number, number];
}

export type FencingCommand = { c: 'stop' };

/** Times are `Date.now()` (one wall clock for every process on the host). */
export type FencingEvent =
  | { t: 'ready' }
  | { t: 'granted'; b: FencingBackend; token: string; startedAt: number; grantedAt: number }
  /** Redis refused to restart a lost token counter below a token it still knows. */
  | { t: 'counter-lost'; b: FencingBackend }
  | { t: 'write'; b: FencingBackend; id: string; token: string; startedAt: number }
  | { t: 'ok'; b: FencingBackend; id: string; endedAt: number; seq: number; epoch?: string }
  | { t: 'stale'; b: FencingBackend; id: string }
  | {
      t: 'error';
      b: FencingBackend;
      op: 'acquire' | 'write' | 'renew' | 'release';
      id?: string;
      message: string;
    }
  | { t: 'lost'; b: FencingBackend; token: string }
  | { t: 'released'; b: FencingBackend; token: string }
  | { t: 'unhandled'; message: string }
  | { t: 'stopped' };

const emit = (event: FencingEvent) => process.stdout.write(`${JSON.stringify(event)}\n`);
const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

process.on('unhandledRejection', (error) => emit({ t: 'unhandled', message: message(error) }));

const config = JSON.parse(process.argv[2] ?? '{}') as FencingChildConfig;
const rng = createRng(config.seed);

/** What a backend needs: its lease manager and a fenced write that logs itself. */
interface Store {
  readonly leases: LeaseManager;
  /** Resolves to the write's place in the storage's order (and Redis's data epoch). */
  write(token: bigint, id: string): Promise<{ seq: number; epoch?: string }>;
  close(): Promise<void>;
}

function pgStore(url: string, tables: PgFencingTables): Store {
  const pool = new pg.Pool({ connectionString: url, max: 3, connectionTimeoutMillis: 3_000 });
  pool.on('error', () => {});
  const guard = new PgFenceGuard({ pool, table: tables.fences });
  return {
    leases: new PgLeaseManager({ pool, table: tables.leases }),
    write: (token, id) =>
      guard.write(config.resource, token, async (client) => {
        const { rows } = await client.query(
          `INSERT INTO ${tables.log} (resource, token, write_id) VALUES ($1, $2, $3) RETURNING seq`,
          [config.resource, token.toString(), id],
        );
        await client.query(
          `INSERT INTO ${tables.data} (resource, write_id, token) VALUES ($1, $2, $3)
           ON CONFLICT (resource) DO UPDATE SET write_id = excluded.write_id, token = excluded.token`,
          [config.resource, id, token.toString()],
        );
        return { seq: Number(rows[0]!['seq']) };
      }),
    close: () => pool.end(),
  };
}

/**
 * The guarded script: the epoch names the data set (set by the first write after Redis lost
 * its data), `seq` orders the writes within it.
 */
const REDIS_WRITE = `
local epoch = redis.call('GET', KEYS[4])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[4], epoch)
end
local seq = redis.call('INCR', KEYS[2])
redis.call('RPUSH', KEYS[1], seq .. ' ' .. ARGV[1] .. ' ' .. ARGV[2])
redis.call('SET', KEYS[3], ARGV[2])
return { epoch, seq }
`;

function redisStore(url: string, keyPrefix: string, keys: RedisDataKeys): Store {
  const redis = new Redis(url, { maxRetriesPerRequest: 3, connectTimeout: 2_000 });
  redis.on('error', () => {}); // reconnects by itself while the server restarts
  const guard = new RedisFenceGuard({ redis, keyPrefix });
  return {
    leases: new RedisLeaseManager({ redis, keyPrefix }),
    write: async (token, id) => {
      const reply = (await guard.eval(
        config.resource,
        token,
        REDIS_WRITE,
        [keys.log, keys.seq, keys.data, keys.epoch],
        [token.toString(), id, `${config.holder}-${Date.now()}`],
      )) as [string, number];
      return { epoch: String(reply[0]), seq: Number(reply[1]) };
    },
    close: async () => {
      redis.disconnect();
    },
  };
}

let running = true;

async function holderLoop(backend: FencingBackend, store: Store): Promise<void> {
  let writes = 0;
  while (running) {
    const startedAt = Date.now();
    let lease: Lease;
    try {
      lease = await store.leases.acquire(config.resource, {
        ttlMs: config.ttlMs,
        holder: config.holder,
      });
    } catch (error) {
      if (isCausewayError(error, ErrorCode.LEASE_NOT_HELD)) {
        if (error.details['reason'] === 'counter-lost') emit({ t: 'counter-lost', b: backend });
      } else {
        emit({ t: 'error', b: backend, op: 'acquire', message: message(error) });
      }
      await sleep(rng.int(config.acquireIntervalMs / 2, config.acquireIntervalMs));
      continue;
    }
    const token = lease.token.toString();
    emit({ t: 'granted', b: backend, token, startedAt, grantedAt: Date.now() });
    let renewedAt = performance.now();
    let held = true;
    const term = rng.int(config.termWrites[0], config.termWrites[1]);
    for (let i = 0; i < term && running && held; i++) {
      const id = `${config.holder}-${backend}-${++writes}`;
      emit({ t: 'write', b: backend, id, token, startedAt: Date.now() });
      try {
        const { seq, epoch } = await store.write(lease.token, id);
        emit({
          t: 'ok',
          b: backend,
          id,
          endedAt: Date.now(),
          seq,
          ...(epoch === undefined ? {} : { epoch }),
        });
      } catch (error) {
        if (isCausewayError(error, ErrorCode.STALE_FENCING_TOKEN)) {
          emit({ t: 'stale', b: backend, id });
        } else {
          emit({ t: 'error', b: backend, op: 'write', id, message: message(error) });
        }
        // Either way the lease is in doubt: compete for it again.
        held = false;
        break;
      }
      if (performance.now() - renewedAt > config.ttlMs / 3) {
        try {
          lease = await lease.renew();
          renewedAt = performance.now();
        } catch (error) {
          if (isCausewayError(error, ErrorCode.LEASE_NOT_HELD)) {
            emit({ t: 'lost', b: backend, token });
          } else {
            emit({ t: 'error', b: backend, op: 'renew', message: message(error) });
          }
          held = false;
          break;
        }
      }
      await sleep(config.writeIntervalMs);
    }
    if (held) {
      try {
        await lease.release();
        emit({ t: 'released', b: backend, token });
      } catch (error) {
        emit({ t: 'error', b: backend, op: 'release', message: message(error) });
      }
    }
    // Let the others have a turn.
    await sleep(rng.int(0, config.acquireIntervalMs * 2));
  }
}

const stores: [FencingBackend, Store][] = [];
if (config.pg !== undefined) stores.push(['pg', pgStore(config.pg.url, config.pg.tables)]);
if (config.redis !== undefined) {
  stores.push(['redis', redisStore(config.redis.url, config.redis.keyPrefix, config.redis.keys)]);
}
const loops = stores.map(([backend, store]) => holderLoop(backend, store));

async function shutdown(): Promise<never> {
  running = false;
  await Promise.allSettled(loops);
  await Promise.allSettled(stores.map(([, store]) => store.close()));
  emit({ t: 'stopped' });
  process.exit(0);
}

const commands = createInterface({ input: process.stdin });
commands.on('line', () => void shutdown());
commands.on('close', () => {
  if (running) process.exit(1);
});
emit({ t: 'ready' });
