-- Deletes the batch only if it is still the one this flusher applied: a stale flusher
-- must not delete a newer batch. KEYS: batch. ARGV: batch id (<epoch>:<gen>).
if redis.call('HGET', KEYS[1], '_id') == ARGV[1] then
  return redis.call('UNLINK', KEYS[1])
end
return 0
