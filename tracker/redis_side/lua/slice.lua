-- What one shard holds pending for a report, read atomically, at a cost set by the
-- articles asked about, not by all that is pending: each piece's id and first event
-- (ms), the `top` articles with the most pending activity (an upper bound of any of
-- their pending counts) with the next one's as the bound for all others, and for those
-- and the asked articles their pending counters of the given metrics in [first, end).
--
-- KEYS: live, batch, gen, epoch, sealed list, activity. ARGV: an epoch candidate, the
-- sealed pieces' key prefix, the sketches' key prefix (keys.py), first hour, end hour, the current hour, top, by hour (1: per hour;
-- 0: a piece all of whose hours are in the range gives its totals), number of metrics,
-- the metrics, number of days, the days whose reader sketches to count, number of
-- metadata fields, the fields, then the asked articles.
-- Returns {pieces {{id, first ms}, ...}, {article, activity, ...}, bound, articles
-- with activity, {per piece {article, metric, hour (-1: the piece's total), count, ...}},
-- {article, day, readers, ...}, {article, field, the newest piece's value, ...}}.
local sealed_prefix, sketch_prefix = ARGV[2], ARGV[3]
local first, last, now_hour = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local top, by_hour, n_metrics = tonumber(ARGV[7]), ARGV[8] == '1', tonumber(ARGV[9])
local metrics = {}
for i = 1, n_metrics do
  metrics[i] = ARGV[9 + i]
end

local ranked = {}
local candidates = redis.call('ZREVRANGE', KEYS[6], 0, top, 'WITHSCORES')
local bound = 0
local wanted, articles = {}, {}
for i = 1, #candidates, 2 do
  if (i + 1) / 2 > top then
    bound = tonumber(candidates[i + 1])
  else
    ranked[#ranked + 1] = candidates[i]
    ranked[#ranked + 1] = candidates[i + 1]
    if not wanted[candidates[i]] then
      wanted[candidates[i]] = true
      articles[#articles + 1] = candidates[i]
    end
  end
end
local n_days = tonumber(ARGV[10 + n_metrics])
local days = {}
for i = 1, n_days do
  days[i] = ARGV[10 + n_metrics + i]
end
local at = 11 + n_metrics + n_days
local n_fields = tonumber(ARGV[at])
local meta_fields = {}
for i = 1, n_fields do
  meta_fields[i] = ARGV[at + i]
end
for i = at + n_fields + 1, #ARGV do
  if not wanted[ARGV[i]] then
    wanted[ARGV[i]] = true
    articles[#articles + 1] = ARGV[i]
  end
end

-- Oldest first: the batch, the sealed pieces in order, the live hash.
local pieces = {}
local batch_id = redis.call('HGET', KEYS[2], '_id')
if batch_id then
  pieces[#pieces + 1] = {KEYS[2], batch_id}
end
for _, sealed_gen in ipairs(redis.call('LRANGE', KEYS[5], 0, -1)) do
  local key = sealed_prefix .. sealed_gen
  pieces[#pieces + 1] = {key, redis.call('HGET', key, '_id')}
end
redis.call('SET', KEYS[4], ARGV[1], 'NX')
local gen = tonumber(redis.call('GET', KEYS[3]) or '0')
pieces[#pieces + 1] = {KEYS[1], redis.call('GET', KEYS[4]) .. ':' .. (gen + 1)}

-- One piece's counters of the articles: its totals when every hour it can hold is in
-- the range (an hour's margin for clocks that lag), else per hour.
local function counters(key, first_ms)
  local out = {}
  local first_hour = math.floor(tonumber(first_ms) / 3600000) - 1
  local hours = {}
  if not by_hour and first_hour >= first and last >= now_hour + 1 then
    hours = {-1}
  else
    for hour = math.max(first, first_hour), math.min(last, now_hour + 2) - 1 do
      hours[#hours + 1] = hour
    end
  end
  for _, article in ipairs(articles) do
    for _, hour in ipairs(hours) do
      local names = {}
      for j, metric in ipairs(metrics) do
        if hour < 0 then
          names[j] = 't ' .. metric .. ' ' .. article
        else
          names[j] = 'b ' .. hour .. ' ' .. metric .. ' ' .. article
        end
      end
      local values = redis.call('HMGET', key, unpack(names))
      for j, value in ipairs(values) do
        if value then
          out[#out + 1] = article
          out[#out + 1] = metrics[j]
          out[#out + 1] = hour
          out[#out + 1] = value
        end
      end
    end
  end
  return out
end

local found, values = {}, {}
for _, piece in ipairs(pieces) do
  local first_ms = redis.call('HGET', piece[1], '_first_ms')
  if first_ms then
    found[#found + 1] = {piece[2], first_ms}
    values[#values + 1] = counters(piece[1], first_ms)
  end
end
local metas, seen = {}, {}
for p = #pieces, 1, -1 do -- newest first
  for _, article in ipairs(articles) do
    for _, name in ipairs(meta_fields) do
      local value = redis.call('HGET', pieces[p][1], 'm' .. name .. ' ' .. article)
      if value and not seen[article .. ' ' .. name] then
        seen[article .. ' ' .. name] = true
        metas[#metas + 1] = article
        metas[#metas + 1] = name
        metas[#metas + 1] = value
      end
    end
  end
end
local readers = {}
for _, article in ipairs(articles) do
  for _, day in ipairs(days) do
    local name = string.sub(redis.sha1hex(article), 1, 16) -- keys.sketch_name
    local count = redis.call('PFCOUNT', sketch_prefix .. day .. ':' .. name)
    if count > 0 then
      readers[#readers + 1] = article
      readers[#readers + 1] = day
      readers[#readers + 1] = count
    end
  end
end
return {found, ranked, tostring(bound), redis.call('ZCARD', KEYS[6]), values, readers, metas}
