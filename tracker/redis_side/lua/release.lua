-- Deletes the batch only if it is still the one this flusher applied (a stale flusher
-- must not delete a newer batch), takes what it held off the shard's pending activity,
-- and leaves the sketches it changed to be stored (sketches-due): all at once, so a
-- batch's changed sketches are either in the batch or in that set.
-- KEYS: batch, activity, sketches-due. ARGV: batch id (<epoch>:<gen>), the number n of
-- (article, what the batch held of it) pairs, the 2n values, then the `<day> <article>`
-- of each sketch the batch changed.
if redis.call('HGET', KEYS[1], '_id') ~= ARGV[1] then
  return 0
end
redis.call('UNLINK', KEYS[1])
local pairs_end = 2 + 2 * tonumber(ARGV[2])
for i = 3, pairs_end - 1, 2 do
  redis.call('ZINCRBY', KEYS[2], -tonumber(ARGV[i + 1]), ARGV[i])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', 0)
local CHUNK = 1000 -- unpack's stack holds a few thousand values at most
for i = pairs_end + 1, #ARGV, CHUNK do
  redis.call('SADD', KEYS[3], unpack(ARGV, i, math.min(i + CHUNK - 1, #ARGV)))
end
return 1
