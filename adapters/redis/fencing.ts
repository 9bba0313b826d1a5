import { createHash, randomUUID } from 'node:crypto';
import {
  type AcquireOptions,
  assertFencingToken,
  assertResource,
  CausewayError,
  configError,
  ErrorCode,
  type FenceGuard,
  knownOptions,
  type Lease,
  type LeaseManager,
  leaseNotHeld,
  numberOption,
  resolveAcquireOptions,
  staleFencingToken,
  stringOption,
  traceFenceCheck,
  traceLeaseAcquire,
} from '../../src/adapter-kit.js';

/**
 * Fencing on Redis. Every step is one Lua script, so the server runs it without interleaving,
 * and every time comes from the server's clock (`TIME`, `PEXPIRE`).
 *
 * Keys of resource R under prefix P: `P{R}:lease` (a hash: holder, token; expires with the
 * lease), `P{R}:token` (the last token granted; never expires) and `P{R}:fence` (the newest
 * token the guard has seen). The `{R}` hash tag keeps a resource's keys in one Redis Cluster
 * slot; a guarded write's own keys must be in that slot too (put `{R}` in their names).
 *
 * Persistence caveat: Redis acknowledges writes before they are durable. A node without an
 * append-only file fsynced on every write (`appendonly yes`, `appendfsync always`), or a
 * failover to a replica that had not received the last writes, loses recent tokens. So a new
 * counter starts from the server's clock in microseconds (`TIME`), which is larger than any
 * token granted before unless the clock went back or tokens were granted faster than one per
 * microsecond. Where that start would not exceed a token still known — the resource's lease
 * or fence key, or the largest token this manager has granted — acquiring fails closed
 * (`LEASE_NOT_HELD`, details.reason `counter-lost`) until an operator sets `P{R}:token` above
 * every token granted before (for example to the guarded storage's newest token).
 */

/** The part of an ioredis client (`Redis` or `Cluster`) the fencing adapters use. */
export interface RedisFencingClient {
  evalsha(sha1: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
  /** Needed by `waitForReplicas` only. */
  pipeline?(): RedisWaitPipeline;
}

/** The part of an ioredis pipeline `waitForReplicas` uses: `WAIT` on the node owning a key. */
export interface RedisWaitPipeline {
  exists(key: string): RedisWaitPipeline;
  wait(replicas: number, timeoutMs: number): RedisWaitPipeline;
  exec(): Promise<[Error | null, unknown][] | null>;
}

/** `WAIT replicas timeoutMs` after granting a token (see `RedisLeaseManagerOptions`). */
export interface RedisReplicaWait {
  /** Replicas that must acknowledge the token; at least 1. */
  replicas: number;
  /** Longest wait for them, in milliseconds; at least 1 (0 would mean forever to Redis). */
  timeoutMs: number;
}

/** Default key prefix of `RedisLeaseManager` and `RedisFenceGuard`. */
export const DEFAULT_REDIS_FENCING_PREFIX = 'causeway:';

interface RedisFencingOptions {
  /** An ioredis client (or cluster); the caller keeps ownership. */
  redis: RedisFencingClient;
  /**
   * Prefix of every key. Default: `causeway:`. A lease manager and a guard with the same prefix
   * see each other's keys, which lets acquiring notice a lost counter by a surviving fence.
   */
  keyPrefix?: string;
}

export interface RedisLeaseManagerOptions extends RedisFencingOptions {
  /**
   * Replicas that must have a granted token before `acquire` returns it: Redis `WAIT`, sent with
   * the counter's key so that it reaches the master that granted it (on a Redis Cluster too).
   * Fewer within `timeoutMs`: the lease is released and `acquire` fails with `LEASE_NOT_HELD`
   * (details.reason `'not-replicated'`), so no holder gets a token a failover could grant again.
   * Default: none: a token is returned once its master has it, and a failover to a replica that
   * had not received it yet (a master lost, `CLUSTER FAILOVER FORCE` or `TAKEOVER`) can grant
   * the same token again (see the README, "Scaling out"). Needs the client's `pipeline()`.
   */
  waitForReplicas?: RedisReplicaWait;
}
export type RedisFenceGuardOptions = RedisFencingOptions;

function resolveOptions(
  options: RedisFencingOptions,
  owner: string,
  keys: readonly (keyof RedisLeaseManagerOptions)[] = ['redis', 'keyPrefix'],
) {
  const { redis, keyPrefix: prefix } = knownOptions(
    options as RedisLeaseManagerOptions,
    owner,
    keys,
  );
  if (typeof redis?.eval !== 'function' || typeof redis.evalsha !== 'function') {
    throw configError(`${owner}: redis must be an ioredis client (with eval and evalsha)`);
  }
  const keyPrefix = stringOption(owner, 'keyPrefix', prefix, DEFAULT_REDIS_FENCING_PREFIX, true);
  const key = (resource: string, kind: 'lease' | 'token' | 'fence') =>
    `${keyPrefix}{${resource}}:${kind}`;
  return { redis, key };
}

/** A Lua script run by its SHA1 (`EVALSHA`), sent in full once the server says `NOSCRIPT`. */
class LuaScript {
  readonly #source: string;
  readonly #sha1: string;

  constructor(source: string) {
    this.#source = source;
    this.#sha1 = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: RedisFencingClient, keys: string[], args: (string | number)[]) {
    try {
      return await redis.evalsha(this.#sha1, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return redis.eval(this.#source, keys.length, ...keys, ...args);
    }
  }
}

// Tokens travel as canonical decimal strings: Lua numbers are doubles, exact only to 2^53.
const LUA_IS_NEWER = `
local function is_newer(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
`;

// Error replies start with a code word; Redis prefixes `ERR` to a reply of one word only.
const STALE_REPLY = 'CAUSEWAY_STALE_FENCING_TOKEN';
const COUNTER_LOST_REPLY = 'CAUSEWAY_COUNTER_LOST';

/**
 * KEYS: lease, token counter, fence. ARGV: holder, ttl ms, the largest token this manager has
 * seen for the resource ('0' if none). Returns nil while another holder's lease is live, else
 * { token, expires-at ms }.
 */
const ACQUIRE = new LuaScript(`${LUA_IS_NEWER}
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder and holder ~= ARGV[1] then return false end
local now = redis.call('TIME')
if redis.call('EXISTS', KEYS[2]) == 0 then
  -- A new or lost counter starts at the server clock in microseconds, above every token
  -- still known: the lease's, the fence's and the largest this manager has seen.
  local start = now[1] .. string.format('%06d', tonumber(now[2]))
  local known = { ARGV[3], redis.call('HGET', KEYS[1], 'token'), redis.call('GET', KEYS[3]) }
  for i = 1, 3 do
    if known[i] and not is_newer(start, known[i]) then
      return redis.error_reply('${COUNTER_LOST_REPLY} the token counter is gone')
    end
  end
  redis.call('SET', KEYS[2], start)
end
redis.call('INCR', KEYS[2])
local token = redis.call('GET', KEYS[2])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return { token, now[1] * 1000 + math.floor(now[2] / 1000) + tonumber(ARGV[2]) }
`);

/** KEYS: lease. ARGV: holder, token, ttl ms. Returns the new expires-at ms, or nil if lost. */
const RENEW = new LuaScript(`
local lease = redis.call('HMGET', KEYS[1], 'holder', 'token')
if lease[1] ~= ARGV[1] or lease[2] ~= ARGV[2] then return false end
local now = redis.call('TIME')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return now[1] * 1000 + math.floor(now[2] / 1000) + tonumber(ARGV[3])
`);

/** KEYS: lease. ARGV: holder, token. Deletes the lease if it is still this one. */
const RELEASE = new LuaScript(`
local lease = redis.call('HMGET', KEYS[1], 'holder', 'token')
if lease[1] == ARGV[1] and lease[2] == ARGV[2] then redis.call('DEL', KEYS[1]) end
return 1
`);

/**
 * The fence check every guarded script starts with: takes its fence key and token off the end
 * of KEYS and ARGV (so the guarded script sees only its own), and replies with an error if a
 * newer token was seen. `record_fence()` stores the token once the guarded write has run.
 */
const LUA_FENCE_PRELUDE = `${LUA_IS_NEWER}
local fence_key = table.remove(KEYS)
local fence_token = table.remove(ARGV)
local newest = redis.call('GET', fence_key)
if newest and is_newer(newest, fence_token) then
  return redis.error_reply('${STALE_REPLY} a newer token was seen')
end
local function record_fence() redis.call('SET', fence_key, fence_token) end
`;

function guardedSource(script: string): string {
  return `${LUA_FENCE_PRELUDE}
local function guarded()
${script}
end
local result = guarded()
record_fence()
return result
`;
}

const CHECK = new LuaScript(guardedSource('return 1'));
const SET_IF_CURRENT = new LuaScript(
  guardedSource(`
if ARGV[2] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else redis.call('SET', KEYS[1], ARGV[1]) end
return 1
`),
);

function isReply(error: unknown, reply: string): error is Error {
  return error instanceof Error && error.message.startsWith(reply);
}

function parseExpiresAt(value: unknown): Date {
  return new Date(Number(value));
}

/**
 * Leases on Redis, timed by the server's clock, with a token counter per resource that never
 * expires (see the persistence caveat above: tokens survive what the server's persistence
 * survives, and a lost counter restarts from the server clock or fails closed).
 */
export class RedisLeaseManager implements LeaseManager {
  readonly #redis: RedisFencingClient;
  readonly #key: (resource: string, kind: 'lease' | 'token' | 'fence') => string;
  /** The largest token granted per resource, to notice a counter that restarted lower. */
  readonly #seen = new Map<string, bigint>();
  readonly waitForReplicas: RedisReplicaWait | undefined;

  constructor(options: RedisLeaseManagerOptions) {
    const owner = 'RedisLeaseManager';
    const { redis, key } = resolveOptions(options, owner, [
      'redis',
      'keyPrefix',
      'waitForReplicas',
    ]);
    this.#redis = redis;
    this.#key = key;
    const wait = options.waitForReplicas;
    if (wait !== undefined) {
      const { replicas, timeoutMs } = knownOptions(wait, `${owner} waitForReplicas`, [
        'replicas',
        'timeoutMs',
      ]);
      if (typeof redis.pipeline !== 'function') {
        throw configError(`${owner}: waitForReplicas needs an ioredis client (with pipeline)`);
      }
      this.waitForReplicas = {
        replicas: numberOption(owner, 'waitForReplicas.replicas', replicas, 1, {
          min: 1,
          integer: true,
        }),
        timeoutMs: numberOption(owner, 'waitForReplicas.timeoutMs', timeoutMs, 100, {
          min: 1,
          integer: true,
        }),
      };
    }
  }

  acquire(resource: string, options: AcquireOptions): Promise<Lease> {
    return traceLeaseAcquire(resource, async () => {
      const { ttlMs, holder } = resolveAcquireOptions(resource, options, randomUUID);
      const keys = [this.#key(resource, 'lease'), this.#key(resource, 'token')];
      keys.push(this.#key(resource, 'fence'));
      const seen = this.#seen.get(resource) ?? 0n;
      let reply: unknown;
      try {
        reply = await ACQUIRE.run(this.#redis, keys, [holder, ttlMs, seen.toString()]);
      } catch (error) {
        if (!isReply(error, COUNTER_LOST_REPLY)) throw error;
        throw new CausewayError(
          ErrorCode.LEASE_NOT_HELD,
          `Redis lost the fencing token counter of "${resource}" and restarting it from the ` +
            'server clock would not exceed a token granted before; refusing. Set the key ' +
            `${keys[1]} above every token granted before (e.g. the newest your storage saw).`,
          { cause: error, details: { resource, reason: 'counter-lost' } },
        );
      }
      if (!Array.isArray(reply)) {
        throw leaseNotHeld(resource, `Lease "${resource}" is held by another holder`);
      }
      const token = BigInt(String(reply[0]));
      if (token > seen) this.#seen.set(resource, token);
      const lease = this.#lease(resource, holder, token, parseExpiresAt(reply[1]), ttlMs);
      if (this.waitForReplicas !== undefined) {
        await this.#awaitReplicas(resource, keys[1]!, lease, this.waitForReplicas);
      }
      return lease;
    });
  }

  /** Nothing to release: the client belongs to the caller. */
  async close(): Promise<void> {}

  /** `WAIT` on the master of `counterKey`; too few acknowledgements release the lease. */
  async #awaitReplicas(
    resource: string,
    counterKey: string,
    lease: Lease,
    { replicas, timeoutMs }: RedisReplicaWait,
  ): Promise<void> {
    const replies = await this.#redis.pipeline!()
      .exists(counterKey)
      .wait(replicas, timeoutMs)
      .exec();
    const [error, acknowledged] = replies?.[1] ?? [new Error('no reply to WAIT'), 0];
    if (error === null && Number(acknowledged) >= replicas) return;
    await lease.release().catch(() => {});
    throw new CausewayError(
      ErrorCode.LEASE_NOT_HELD,
      `Lease "${resource}": ${error === null ? `${Number(acknowledged)} of ${replicas}` : 'no'} ` +
        `replicas acknowledged its token within ${timeoutMs} ms; released`,
      {
        ...(error === null ? {} : { cause: error }),
        details: { resource, reason: 'not-replicated' },
      },
    );
  }

  #lease(resource: string, holder: string, token: bigint, expiresAt: Date, ttlMs: number): Lease {
    const keys = [this.#key(resource, 'lease')];
    return {
      resource,
      token,
      expiresAt,
      renew: async () => {
        const reply = await RENEW.run(this.#redis, keys, [holder, token.toString(), ttlMs]);
        if (reply === null || reply === undefined) {
          throw leaseNotHeld(resource, `Lease "${resource}" expired or was taken over`);
        }
        return this.#lease(resource, holder, token, parseExpiresAt(reply), ttlMs);
      },
      release: async () => {
        await RELEASE.run(this.#redis, keys, [holder, token.toString()]);
      },
    };
  }
}

/** Options of `RedisFenceGuard.setIfCurrent`. */
export interface RedisSetIfCurrentOptions {
  /** Expire the written key after this many milliseconds. Default: no expiry. */
  pxMs?: number;
}

/**
 * Checks fencing tokens on Redis: the newest token per resource in `P{R}:fence`. The check and
 * the guarded write run in one script (`setIfCurrent`, `eval`), so no other command runs
 * between them. Subject to the persistence caveat above: a Redis that loses the fence key
 * forgets which tokens are stale (as it forgets the guarded data itself).
 */
export class RedisFenceGuard implements FenceGuard<never> {
  readonly #redis: RedisFencingClient;
  readonly #key: (resource: string, kind: 'fence') => string;

  constructor(options: RedisFenceGuardOptions) {
    const { redis, key } = resolveOptions(options, 'RedisFenceGuard');
    this.#redis = redis;
    this.#key = key;
  }

  /** Passes if `token` is at least the newest seen for `resource`, and records it. */
  async check(resource: string, token: bigint): Promise<void> {
    await this.#guarded(resource, token, CHECK, [], []);
  }

  /** `SET key value [PX pxMs]` if `token` is current for `resource`, in one script. */
  async setIfCurrent(
    resource: string,
    token: bigint,
    key: string,
    value: string,
    options: RedisSetIfCurrentOptions = {},
  ): Promise<void> {
    const { pxMs } = knownOptions(options, 'RedisFenceGuard.setIfCurrent', ['pxMs']);
    if (pxMs !== undefined && (!Number.isSafeInteger(pxMs) || pxMs < 1)) {
      throw configError('RedisFenceGuard.setIfCurrent: pxMs must be a positive integer');
    }
    const args = pxMs === undefined ? [value] : [value, pxMs];
    await this.#guarded(resource, token, SET_IF_CURRENT, [key], args);
  }

  /**
   * Runs your Lua `script` (a function body using `KEYS`, `ARGV` and `return`) only if `token`
   * is current for `resource`, in the same script as the check, and resolves to its reply. The
   * token is recorded after the script returns. A script that raises an error may have made
   * some of its writes (Redis does not roll scripts back) and records no token.
   */
  async eval(
    resource: string,
    token: bigint,
    script: string,
    keys: string[] = [],
    args: (string | number)[] = [],
  ): Promise<unknown> {
    if (typeof script !== 'string' || script.length === 0) {
      throw configError('RedisFenceGuard.eval: script must be a non-empty string');
    }
    return this.#guarded(resource, token, new LuaScript(guardedSource(script)), keys, args);
  }

  /** Nothing to release: the client belongs to the caller. */
  async close(): Promise<void> {}

  async #guarded(
    resource: string,
    token: bigint,
    script: LuaScript,
    keys: string[],
    args: (string | number)[],
  ): Promise<unknown> {
    assertResource(resource);
    assertFencingToken(token);
    return traceFenceCheck(resource, token, async () => {
      const fenceKey = this.#key(resource, 'fence');
      try {
        return await script.run(this.#redis, [...keys, fenceKey], [...args, token.toString()]);
      } catch (error) {
        if (isReply(error, STALE_REPLY)) throw staleFencingToken(resource, token);
        throw error;
      }
    });
  }
}
