-- Counts a failed attempt to use a credential, from one address and in all, and says
-- whether either is past its limit: one call, so concurrent failures are counted exactly.
-- KEYS[1] the address's failures in the window, KEYS[2] everyone's (one hash slot).
-- ARGV[1] the limit per address, ARGV[2] the limit in all, ARGV[3] the window (s).
-- Returns 1 when over either limit, else 0.
local function counted(key)
  local failures = redis.call('INCR', key)
  if failures == 1 then
    redis.call('EXPIRE', key, ARGV[3])
  end
  return failures
end
local mine = counted(KEYS[1])
local all = counted(KEYS[2])
if mine > tonumber(ARGV[1]) or all > tonumber(ARGV[2]) then
  return 1
end
return 0
