-- The top articles of one shard over the last `window` buckets (the current one, as far
-- as it has gone, and those before it), with their count in the window before.
-- KEYS: a scratch key of the shard. ARGV: the trending buckets' key prefix, the kind ('v' or 's'),
-- the current bucket, the window in buckets, how many.
-- Returns {article, count, count before, ...}, best first.
local prefix, kind = ARGV[1], ARGV[2]
local bucket, window, top = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

local function union(first, last)
  local keys = {}
  for b = first, last do
    keys[#keys + 1] = prefix .. kind .. ':' .. b
  end
  redis.call('ZUNIONSTORE', KEYS[1], #keys, unpack(keys))
end

union(bucket - window + 1, bucket)
local current = redis.call('ZREVRANGE', KEYS[1], 0, top - 1, 'WITHSCORES')
union(bucket - 2 * window + 1, bucket - window)
local out = {}
for i = 1, #current, 2 do
  out[#out + 1] = current[i]
  out[#out + 1] = current[i + 1]
  out[#out + 1] = redis.call('ZSCORE', KEYS[1], current[i]) or '0'
end
redis.call('DEL', KEYS[1])
return out
