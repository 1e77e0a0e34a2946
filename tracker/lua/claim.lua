-- Cuts a shard's batch: resumes the one a flusher that died left behind, else renames
-- the live hash to the batch key with the next id and the number of parts it is to be
-- applied in (kept with it, so that a resumed batch is cut the same way).
-- KEYS: live, batch, gen, epoch. ARGV: an epoch candidate, parts.
-- Returns {'resumed' or 'new', batch id}, or nil when there is nothing to flush.
local batch_id = redis.call('HGET', KEYS[2], '_id')
if batch_id then
  return {'resumed', batch_id}
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
redis.call('SET', KEYS[4], ARGV[1], 'NX')
local epoch = redis.call('GET', KEYS[4])
local gen = redis.call('INCR', KEYS[3])
batch_id = epoch .. ':' .. gen
redis.call('HSET', KEYS[1], '_id', batch_id, '_parts', ARGV[2])
redis.call('RENAME', KEYS[1], KEYS[2])
return {'new', batch_id}
