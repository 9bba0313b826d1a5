/**
 * Compare-and-set of one key's serialized state. The hash holds `s` (the state) and `v` (a
 * random version token replaced on every write); the write happens only if `v` is still the
 * token the caller read, so a concurrent writer's state is never overwritten unseen. Random
 * tokens (not a counter) mean a key that was removed and created again cannot repeat an old
 * version.
 *
 * KEYS[1]: the hash. ARGV[1]: the version read ('' when the key had none). ARGV[2]: the new
 * state, or '' to remove the key. ARGV[3]: the new version token.
 * Returns 1 when written, 0 when the version moved (the caller reads again and retries).
 */
export const COMPARE_AND_SET_STATE = `
local current = redis.call('HGET', KEYS[1], 'v')
if current == false then current = '' end
if current ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 's', ARGV[2], 'v', ARGV[3])
end
return 1
`;
