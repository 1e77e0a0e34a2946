-- The reader sketches a batch touched, as they are now, with their counts: one call per
-- thousand keys rather than two commands per key, each parsed on its own by the client.
-- KEYS: the sketches (one shard's: one slot). Returns {data or false, count, ...}.
local found = {}
for i, key in ipairs(KEYS) do
  found[2 * i - 1] = redis.call('GET', key)
  found[2 * i] = redis.call('PFCOUNT', key)
end
return found
