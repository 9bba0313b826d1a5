import {
  assertSessionKey,
  assertSessionState,
  configError,
  floorsOnly,
  invalidInput,
  knownOptions,
  MAX_SESSION_STREAMS,
  numberOption,
  type Position,
  type SessionState,
  type SessionStore,
  type StreamFloors,
  streamFloorsOf,
  stringOption,
} from '../../src/adapter-kit.js';

/** The part of an ioredis client (`Redis` or `Cluster`) this store uses. */
export interface RedisSessionClient {
  hgetall(key: string): Promise<Record<string, string>>;
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

// One hash per user key, fields: id, q (a counter), and per stream `f:<stream>` = "epoch write
// read seq": each floor an LSN as 16 lowercase hex digits (Lua's string order is then the
// numeric order of 64-bit LSNs, which Lua numbers cannot hold) or '-', seq the counter's value
// when the stream was last raised. ARGV: id, ttl, max streams, then stream, epoch, write, read per
// stream. A hash written before per-stream floors (fields s, e, w, r) is moved over first.
const MERGE_SCRIPT = `
local key = KEYS[1]
local old = redis.call('HMGET', key, 's', 'e', 'w', 'r')
if old[1] then
  local seq = redis.call('HINCRBY', key, 'q', 1)
  redis.call('HSET', key, 'f:' .. old[1], old[2] .. ' ' .. (old[3] or '-') .. ' ' .. (old[4] or '-') .. ' ' .. seq)
  redis.call('HDEL', key, 's', 'e', 'w', 'r')
end
for i = 4, #ARGV - 3, 4 do
  local field = 'f:' .. ARGV[i]
  local ne, nw, nr = tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local e, w, r
  local cur = redis.call('HGET', key, field)
  if cur then
    local ce, cw, cr = string.match(cur, '^(%d+) (%S+) (%S+) %d+$')
    e, w, r = tonumber(ce), cw, cr
  end
  local raised = false
  if (not e) or ne > e then
    e, w, r, raised = ne, nw, nr, true
  elseif ne == e then
    if nw ~= '-' and (w == '-' or nw > w) then w, raised = nw, true end
    if nr ~= '-' and (r == '-' or nr > r) then r, raised = nr, true end
  end
  if raised then
    local seq = redis.call('HINCRBY', key, 'q', 1)
    redis.call('HSET', key, field, string.format('%d', e) .. ' ' .. w .. ' ' .. r .. ' ' .. seq)
  end
end
local fields = redis.call('HGETALL', key)
local streams = {}
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'f:' then
    streams[#streams + 1] = { fields[i], tonumber(string.match(fields[i + 1], '(%d+)$')) }
  end
end
if #streams > tonumber(ARGV[3]) then
  table.sort(streams, function(a, b) return a[2] < b[2] end)
  for i = 1, #streams - tonumber(ARGV[3]) do redis.call('HDEL', key, streams[i][1]) end
end
if redis.call('HEXISTS', key, 'id') == 0 then redis.call('HSET', key, 'id', ARGV[1]) end
redis.call('PEXPIRE', key, ARGV[2])
return 1
`;

/**
 * A `SessionStore` in Redis: one hash per user key, merged forward-only by a Lua script, per
 * stream (two devices writing at once never move a floor back), expiring `ttlMs` after the last
 * write. Each call touches one key, so a Redis Cluster (ioredis `Cluster`) serves it as is.
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
    const fields = await this.#bounded(this.#redis.hgetall(this.keyPrefix + key));
    const id = fields['id'];
    if (id === undefined) return undefined;
    const kept: { seq: number; floors: StreamFloors }[] = [];
    for (const [field, value] of Object.entries(fields)) {
      if (field.startsWith('f:')) kept.push(parseStreamField(field.slice(2), value));
    }
    // Written before per-stream floors, not yet moved over by a merge.
    const { s: stream, e: epoch, w: write, r: read } = fields;
    if (stream !== undefined && epoch !== undefined) {
      kept.push(parseStreamField(stream, `${epoch} ${write ?? '-'} ${read ?? '-'} 0`));
    }
    if (kept.length > MAX_SESSION_STREAMS)
      throw invalidInput('stored session names too many streams');
    kept.sort((a, b) => a.seq - b.seq);
    const latest = kept.pop();
    if (latest === undefined) return { id };
    const state = { id, ...latest.floors };
    return kept.length === 0 ? state : { ...state, otherStreams: kept.map((each) => each.floors) };
  }

  async set(key: string, state: SessionState): Promise<void> {
    assertSessionKey(key);
    assertSessionState(state);
    const args: (string | number)[] = [state.id, this.ttlMs, MAX_SESSION_STREAMS];
    for (const { writeFloor, readFloor } of streamFloorsOf(state)) {
      const history = (writeFloor ?? readFloor)!;
      args.push(history.stream, String(history.epoch), hexLsn(writeFloor), hexLsn(readFloor));
    }
    await this.#bounded(this.#redis.eval(MERGE_SCRIPT, 1, this.keyPrefix + key, ...args));
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
  return position === undefined ? '-' : position.lsn.toString(16).padStart(16, '0');
}

/** One stream's stored field, "epoch write read seq"; anything else is `INVALID_INPUT`. */
function parseStreamField(stream: string, value: string): { seq: number; floors: StreamFloors } {
  const match = /^(\d{1,10}) ([0-9a-f]{16}|-) ([0-9a-f]{16}|-) (\d{1,15})$/.exec(value);
  if (match === null || stream === '' || (match[2] === '-' && match[3] === '-')) {
    throw invalidInput('stored session floors are malformed');
  }
  const epoch = Number(match[1]);
  const floor = (lsn: string): Position | undefined =>
    lsn === '-' ? undefined : { stream, epoch, lsn: BigInt(`0x${lsn}`) };
  return { seq: Number(match[4]), floors: floorsOnly(floor(match[2]!), floor(match[3]!)) };
}
