-- Size and age of what waits in one shard. KEYS: live, batch.
-- Returns per key {events, counters, first event's ms or ''}.
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, '_events', '_counters', '_first_ms')
  out[i] = {v[1] or '0', v[2] or '0', v[3] or ''}
end
return out
