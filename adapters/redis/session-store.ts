import {
  assertSessionKey,
  assertSessionState,
  configError,
  invalidInput,
  knownOptions,
  numberOption,
  type Position,
  type SessionState,
  type SessionStore,
  stringOption,
} from '../../src/adapter-kit.js';

/** The part of an ioredis client this store uses. */
export interface RedisSessionClient {
  hmget(key: string, ...fields: string[]): Promise<(string | null)[]>;
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
}

const OWNER = 'RedisSessionStore';

export interface RedisSessionStoreOptions {
  /** An ioredis client (not closed by `close()`: it is yours). Required. */
  redis: RedisSessionClient;
  /**
   * How long a user's state is kept after its last write. Default 120 000 ms. GitLab keeps WAL
   * locations 30 s while it only takes a replica offline past 60 s of lag, which leaves a window
   * where a replica 30-60 s behind serves reads the floor should have stopped. Two minutes
   * outlives any replica a lag-aware health check (60 s) still trusts.
   */
  ttlMs?: number;
  /** Prefix of every key. Default `'causeway:session:'`. */
  keyPrefix?: string;
  /**
   * Bound on each Redis call; a slower call rejects, and the middleware fails safe (reads go to
   * the leader). Default 100 ms: Redis answers in about a millisecond when healthy.
   */
  timeoutMs?: number;
}

// Fields: id, s (stream), e (epoch), w / r (write / read floor LSN as 16 lowercase hex digits, so
// that Lua's string order is the numeric order of 64-bit LSNs, which Lua numbers cannot hold).
const MERGE_SCRIPT = `
local key = KEYS[1]
local cur = redis.call('HMGET', key, 'id', 's', 'e', 'w', 'r')
local s, e, w, r = cur[2], cur[3], cur[4], cur[5]
local ns, ne, nw, nr = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if ns ~= '' then
  if s and s == ns and tonumber(e) == tonumber(ne) then
    if nw ~= '' and ((not w) or nw > w) then w = nw end
    if nr ~= '' and ((not r) or nr > r) then r = nr end
  elseif not (s and s == ns and tonumber(e) > tonumber(ne)) then
    s, e = ns, ne
    if nw ~= '' then w = nw else w = false end
    if nr ~= '' then r = nr else r = false end
  end
end
redis.call('HSET', key, 'id', cur[1] or ARGV[1])
if s then redis.call('HSET', key, 's', s, 'e', e) end
if w then redis.call('HSET', key, 'w', w) else redis.call('HDEL', key, 'w') end
if r then redis.call('HSET', key, 'r', r) else redis.call('HDEL', key, 'r') end
redis.call('PEXPIRE', key, ARGV[6])
return 1
`;

/**
 * A `SessionStore` in Redis: one hash per user key, merged forward-only by a Lua script (two
 * devices writing at once never move a floor back), expiring `ttlMs` after the last write.
 */
export class RedisSessionStore implements SessionStore {
  readonly ttlMs: number;
  readonly keyPrefix: string;
  readonly timeoutMs: number;
  readonly #redis: RedisSessionClient;

  constructor(options: RedisSessionStoreOptions) {
    const { redis, ttlMs, keyPrefix, timeoutMs } = knownOptions(options, OWNER, [
      'redis',
      'ttlMs',
      'keyPrefix',
      'timeoutMs',
    ]);
    if (redis === undefined) throw configError(`${OWNER}: redis is required`);
    this.#redis = redis;
    this.ttlMs = numberOption(OWNER, 'ttlMs', ttlMs, 120_000, { min: 1, integer: true });
    this.keyPrefix = stringOption(OWNER, 'keyPrefix', keyPrefix, 'causeway:session:', true);
    this.timeoutMs = numberOption(OWNER, 'timeoutMs', timeoutMs, 100, { above: 0 });
  }

  async get(key: string): Promise<SessionState | undefined> {
    assertSessionKey(key);
    const fields = await this.#bounded(
      this.#redis.hmget(this.keyPrefix + key, 'id', 's', 'e', 'w', 'r'),
    );
    const [id, stream, epoch, write, read] = fields;
    if (id === null || id === undefined) return undefined;
    if (stream === null || stream === undefined) return { id };
    const epochNumber = Number(epoch);
    if (!Number.isInteger(epochNumber) || epochNumber < 0)
      throw invalidInput('stored epoch is malformed');
    const floor = (lsn: string | null | undefined): Position | undefined => {
      if (lsn === null || lsn === undefined) return undefined;
      if (!/^[0-9a-f]{16}$/.test(lsn)) throw invalidInput('stored LSN is malformed');
      return { stream, epoch: epochNumber, lsn: BigInt(`0x${lsn}`) };
    };
    const writeFloor = floor(write);
    const readFloor = floor(read);
    return {
      id,
      ...(writeFloor === undefined ? {} : { writeFloor }),
      ...(readFloor === undefined ? {} : { readFloor }),
    };
  }

  async set(key: string, state: SessionState): Promise<void> {
    assertSessionKey(key);
    assertSessionState(state);
    const history = state.writeFloor ?? state.readFloor;
    await this.#bounded(
      this.#redis.eval(
        MERGE_SCRIPT,
        1,
        this.keyPrefix + key,
        state.id,
        history?.stream ?? '',
        history === undefined ? '' : String(history.epoch),
        hexLsn(state.writeFloor),
        hexLsn(state.readFloor),
        this.ttlMs,
      ),
    );
  }

  /** Nothing to release: the client belongs to the caller. */
  async close(): Promise<void> {}

  #bounded<T>(call: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`session store call exceeded ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      timer.unref();
    });
    return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
  }
}

function hexLsn(position: Position | undefined): string {
  return position === undefined ? '' : position.lsn.toString(16).padStart(16, '0');
}
