-- Size and age of what waits in one shard: the live hash, the batch and the sealed
-- pieces. KEYS: live, batch, sealed list. ARGV: the sealed pieces' key prefix.
-- Returns per piece {events, counters, first event's ms or ''}.
local pieces = {KEYS[1], KEYS[2]}
for _, gen in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  pieces[#pieces + 1] = ARGV[1] .. gen
end
local out = {}
for i, key in ipairs(pieces) do
  local v = redis.call('HMGET', key, '_events', '_counters', '_first_ms')
  out[i] = {v[1] or '0', v[2] or '0', v[3] or ''}
end
return out
