-- Extends the lease only if this owner still holds it. KEYS: lease. ARGV: owner, ttl ms.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
