-- What is pending for some articles of one shard, each piece with the id it will be
-- flushed as, read atomically; and the reader counts of the sketches still in Redis.
-- KEYS: live, batch, gen, epoch, then sketch keys. ARGV: an epoch candidate, then the
-- hash fields. Returns {live id, live values, batch id or nil, batch values, readers}.
redis.call('SET', KEYS[4], ARGV[1], 'NX')
local epoch = redis.call('GET', KEYS[4])
local gen = tonumber(redis.call('GET', KEYS[3]) or '0')
local live_id = epoch .. ':' .. (gen + 1)
local live = redis.call('HMGET', KEYS[1], unpack(ARGV, 2))
local batch_id = redis.call('HGET', KEYS[2], '_id')
local batch = false
if batch_id then
  batch = redis.call('HMGET', KEYS[2], unpack(ARGV, 2))
end
local readers = {}
for i = 5, #KEYS do
  readers[i - 4] = redis.call('PFCOUNT', KEYS[i])
end
return {live_id, live, batch_id, batch, readers}
