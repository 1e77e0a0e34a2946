-- Deletes the batch only if it is still the one this flusher applied (a stale flusher
-- must not delete a newer batch), and takes what it held off the shard's pending
-- activity. KEYS: batch, activity. ARGV: batch id (<epoch>:<gen>), then (article, what
-- the batch held of it) pairs.
if redis.call('HGET', KEYS[1], '_id') ~= ARGV[1] then
  return 0
end
redis.call('UNLINK', KEYS[1])
for i = 2, #ARGV - 1, 2 do
  redis.call('ZINCRBY', KEYS[2], -tonumber(ARGV[i + 1]), ARGV[i])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', 0)
return 1
