-- What is pending for some articles of one shard, each piece with the id it will be
-- applied as, read atomically; and the reader counts of the sketches still in Redis.
-- KEYS: live, batch, gen, epoch, sealed list, then sketch keys. ARGV: an epoch
-- candidate, the sealed pieces' key prefix, then the hash fields.
-- Returns {live id, live values, batch id or nil, batch values, readers,
-- {{sealed id, values}, ...}}.
local CHUNK = 100 -- values per unpack(): Lua's stack holds some thousands at most

local function values_of(key)
  local values = {}
  for j = 3, #ARGV, CHUNK do
    local part = redis.call('HMGET', key, unpack(ARGV, j, math.min(j + CHUNK - 1, #ARGV)))
    for _, value in ipairs(part) do
      values[#values + 1] = value
    end
  end
  return values
end

redis.call('SET', KEYS[4], ARGV[1], 'NX')
local epoch = redis.call('GET', KEYS[4])
local gen = tonumber(redis.call('GET', KEYS[3]) or '0')
local live_id = epoch .. ':' .. (gen + 1)
local batch_id = redis.call('HGET', KEYS[2], '_id')
local batch = false
if batch_id then
  batch = values_of(KEYS[2])
end
local sealed = {}
for i, sealed_gen in ipairs(redis.call('LRANGE', KEYS[5], 0, -1)) do
  local key = ARGV[2] .. sealed_gen
  sealed[i] = {redis.call('HGET', key, '_id'), values_of(key)}
end
local readers = {}
for i = 6, #KEYS do
  readers[i - 5] = redis.call('PFCOUNT', KEYS[i])
end
return {live_id, values_of(KEYS[1]), batch_id, batch, readers, sealed}
