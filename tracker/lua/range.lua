-- What is pending in one shard for a range of hours, for reports: each piece's id with
-- its hourly counters in [first, end) and the article metadata it carries.
-- KEYS: live, batch, gen, epoch, sealed list. ARGV: an epoch candidate, the shard's key
-- base, the first hour, the end hour. Returns {{piece id, {field, value, ...}}, ...}.
local first, last = tonumber(ARGV[3]), tonumber(ARGV[4])

local function wanted(key)
  local found = {}
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local field = all[i]
    local kind = string.byte(field)
    if kind == 98 then -- 'b <hour> <metric> <article>'
      local hour = tonumber(string.match(field, '^b (%d+) '))
      if hour and hour >= first and hour < last then
        found[#found + 1] = field
        found[#found + 1] = all[i + 1]
      end
    elseif kind == 109 then -- 'm <article>'
      found[#found + 1] = field
      found[#found + 1] = all[i + 1]
    end
  end
  return found
end

redis.call('SET', KEYS[4], ARGV[1], 'NX')
local epoch = redis.call('GET', KEYS[4])
local gen = tonumber(redis.call('GET', KEYS[3]) or '0')
local pieces = {{epoch .. ':' .. (gen + 1), wanted(KEYS[1])}}
local batch_id = redis.call('HGET', KEYS[2], '_id')
if batch_id then
  pieces[#pieces + 1] = {batch_id, wanted(KEYS[2])}
end
for _, sealed_gen in ipairs(redis.call('LRANGE', KEYS[5], 0, -1)) do
  local key = ARGV[2] .. ':sealed:' .. sealed_gen
  pieces[#pieces + 1] = {redis.call('HGET', key, '_id'), wanted(key)}
end
return pieces
