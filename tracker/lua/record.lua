-- Records the events of one shard (one hash slot) in one call.
-- KEYS[1]: the live hash; KEYS[2..]: the dedup and sketch keys the events name by index.
-- ARGV: now_ms, dedup window (s), when the day's sketches expire (Unix s), number of
-- events, then per event: dedup index, sketch index (0: none), reader, number of fields,
-- the fields (each +1); then metadata (field, value) pairs.
-- A repeat (its dedup key exists) adds nothing. Returns {counted, repeats}.
local live = KEYS[1]
local window = tonumber(ARGV[2])
local sketch_expires_at = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local i = 5
local counted, repeats, new_counters = 0, 0, 0
for _ = 1, n do
  local dedup = tonumber(ARGV[i])
  local sketch = tonumber(ARGV[i + 1])
  local nfields = tonumber(ARGV[i + 3])
  local fresh = true
  if dedup > 0 then
    fresh = redis.call('SET', KEYS[dedup], '1', 'NX', 'EX', window) ~= false
  end
  if fresh then
    counted = counted + 1
    for j = i + 4, i + 3 + nfields do
      -- 98 is 'b': a new hourly bucket field is one more counter to flush.
      if redis.call('HINCRBY', live, ARGV[j], 1) == 1 and string.byte(ARGV[j]) == 98 then
        new_counters = new_counters + 1
      end
    end
    if sketch > 0 then
      redis.call('PFADD', KEYS[sketch], ARGV[i + 2])
      redis.call('EXPIREAT', KEYS[sketch], sketch_expires_at)
    end
  else
    repeats = repeats + 1
  end
  i = i + 4 + nfields
end
if i <= #ARGV then
  redis.call('HSET', live, unpack(ARGV, i))
end
if counted > 0 then
  redis.call('HSETNX', live, '_first_ms', ARGV[1])
  redis.call('HINCRBY', live, '_events', counted)
end
if new_counters > 0 then
  redis.call('HINCRBY', live, '_counters', new_counters)
end
return {counted, repeats}
