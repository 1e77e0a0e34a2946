-- Records the events of one shard (one hash slot) in one call.
--
-- KEYS[1] the live hash, KEYS[2] the list of sealed pieces, KEYS[3] gen, KEYS[4] epoch;
-- KEYS[5..] the per-event keys the arguments name by index (0: none).
-- ARGV[1] now (ms), [2] dedup window (s), [3] readers counted per address and article
-- within the window (0: no bound), [4] ms between requests of one address at the rate
-- limit (0: no limit), [5] seal the live hash at this many fields (0: never), [6] an
-- epoch candidate, [7] the shard's key base, [8] number of requests; then per request:
-- its rate key, its number of events, and per event: event id key, dedup key, address
-- key, sketch key, trending kind ('v', 's' or '-'), article, reader, amount, weight (1:
-- counts as an event; 0: another counter of the event before it), number of fields, the
-- fields (each +amount); then metadata (field, value) pairs to the end.
-- A counted view or share also goes into the minute's trending set of its kind.
--
-- Every argument is checked before the first write, so a bad call changes nothing.
-- Returns {counted, repeats, address_limited, retried, {retry after (ms) per request}}:
-- events, each told by its first unit (weight 1), so that each event is one of the four.

local RATE_BURST_MS = 60000
local EVENT_ID_TTL_S = 86400
-- Trending reads compare the last 60 minutes with the 60 before.
local TRENDING_TTL_S = 2 * 3600 + 120
local CHUNK = 100 -- values per unpack(): Lua's stack holds some thousands at most

local function number_at(i)
  local value = tonumber(ARGV[i])
  if value == nil then
    error('record: argument ' .. i .. ' is not a number')
  end
  return value
end

local function key_index_at(i)
  local index = number_at(i)
  if index < 0 or index > #KEYS or index ~= math.floor(index) then
    error('record: argument ' .. i .. ' names no key')
  end
  return index
end

-- Checks: walk the whole layout once, remember where each request starts, and keep each
-- event's numbers (EVENT_NUMBERS of them from `parsed[base]` on) so they are read once.
local EVENT_NUMBERS = 7
local requests = {}
local parsed = {}
local n_requests = number_at(8)
local i = 9
for r = 1, n_requests do
  local rate_key = key_index_at(i)
  local n_events = number_at(i + 1)
  requests[r] = {rate_key, n_events, i + 2, #parsed}
  i = i + 2
  for _ = 1, n_events do
    local base = #parsed
    for j = 0, 3 do
      parsed[base + j + 1] = key_index_at(i + j)
    end
    parsed[base + 5] = number_at(i + 7)
    parsed[base + 6] = number_at(i + 8)
    local n_fields = number_at(i + 9)
    parsed[base + 7] = n_fields
    if ARGV[i + 6] == nil or i + 9 + n_fields > #ARGV then
      error('record: event at argument ' .. i .. ' is cut short')
    end
    i = i + 10 + n_fields
  end
end
local metadata_from = i
if (#ARGV - metadata_from + 1) % 2 ~= 0 then
  error('record: metadata comes in (field, value) pairs')
end

local live = KEYS[1]
local now = number_at(1)
local window = number_at(2)
local per_address = number_at(3)
local rate_interval = number_at(4)
local seal_at = number_at(5)

-- Generic cell rate algorithm: one key per address holds the time at which its bucket
-- is empty again; a burst of a minute's worth is allowed.
local function retry_after(key)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then
    tat = now
  end
  local next_tat = tat + rate_interval
  if next_tat - now > RATE_BURST_MS then
    return next_tat - now - RATE_BURST_MS
  end
  redis.call('SET', key, next_tat, 'PX', next_tat - now)
  return 0
end

local counted, repeats, address_limited, retried, new_counters = 0, 0, 0, 0, 0
local waits = {}
local minute = math.floor(now / 60000)
-- What counted events add is summed first, then written once per field, set and
-- article, sketch: a story read by many at once costs a few writes per call, not a few
-- per reader.
local trending = {}
local increments = {}
local sketch_readers = {}
for r, request in ipairs(requests) do
  local rate_key, n_events, at, base = request[1], request[2], request[3], request[4]
  local wait = 0
  if rate_key > 0 and rate_interval > 0 then
    wait = retry_after(KEYS[rate_key])
  end
  waits[r] = wait
  for _ = 1, n_events do
    local id_key, dedup, address, sketch = parsed[base + 1], parsed[base + 2], parsed[base + 3], parsed[base + 4]
    local amount, weight, n_fields = parsed[base + 5], parsed[base + 6], parsed[base + 7]
    base = base + EVENT_NUMBERS
    if wait == 0 then
      local fresh = true
      if id_key > 0 and not redis.call('SET', KEYS[id_key], '1', 'NX', 'EX', EVENT_ID_TTL_S) then
        fresh = false
        retried = retried + weight
      end
      if fresh and dedup > 0 and not redis.call('SET', KEYS[dedup], '1', 'NX', 'EX', window) then
        fresh = false
        repeats = repeats + weight
      end
      if fresh and address > 0 and per_address > 0 then
        local readers = redis.call('INCR', KEYS[address])
        if readers == 1 then
          redis.call('EXPIRE', KEYS[address], window)
        end
        if readers > per_address then
          fresh = false
          address_limited = address_limited + weight
        end
      end
      if fresh then
        counted = counted + weight
        local trend = ARGV[at + 4]
        if trend ~= '-' then
          local key = ARGV[7] .. ':tr:' .. trend .. ':' .. minute
          local articles = trending[key]
          if not articles then
            articles = {}
            trending[key] = articles
          end
          local article = ARGV[at + 5]
          articles[article] = (articles[article] or 0) + 1
        end
        for j = at + 10, at + 9 + n_fields do
          local name = ARGV[j]
          increments[name] = (increments[name] or 0) + amount
        end
        if sketch > 0 then
          local readers = sketch_readers[sketch]
          if not readers then
            readers = {}
            sketch_readers[sketch] = readers
          end
          readers[#readers + 1] = ARGV[at + 6]
        end
      end
    end
    at = at + 10 + n_fields
  end
end
for name, amount in pairs(increments) do
  -- 98 is 'b': a new hourly bucket field is one more counter to flush.
  if redis.call('HINCRBY', live, name, amount) == amount and string.byte(name) == 98 then
    new_counters = new_counters + 1
  end
end
for sketch, readers in pairs(sketch_readers) do
  local changed = 0
  for j = 1, #readers, CHUNK do
    changed = changed + redis.call('PFADD', KEYS[sketch], unpack(readers, j, math.min(j + CHUNK - 1, #readers)))
  end
  -- Changed since PostgreSQL stored it: it must not expire until it is stored again.
  -- (Unchanged, what PostgreSQL holds is what it holds.)
  if changed > 0 then
    redis.call('PERSIST', KEYS[sketch])
  end
end
for key, articles in pairs(trending) do
  for article, count in pairs(articles) do
    redis.call('ZINCRBY', key, count, article)
  end
  redis.call('EXPIRE', key, TRENDING_TTL_S)
end

for j = metadata_from, #ARGV, CHUNK do
  redis.call('HSET', live, unpack(ARGV, j, math.min(j + CHUNK - 1, #ARGV)))
end
if counted > 0 then
  redis.call('HSETNX', live, '_first_ms', ARGV[1])
  redis.call('HINCRBY', live, '_events', counted)
end
if new_counters > 0 then
  redis.call('HINCRBY', live, '_counters', new_counters)
end

-- A live hash past the bound is sealed as a piece with its own id, applied later in
-- order: no batch is larger than the bound, however long PostgreSQL was away.
if seal_at > 0 and redis.call('HLEN', live) >= seal_at then
  redis.call('SET', KEYS[4], ARGV[6], 'NX')
  local gen = redis.call('INCR', KEYS[3])
  redis.call('HSET', live, '_id', redis.call('GET', KEYS[4]) .. ':' .. gen)
  redis.call('RENAME', live, ARGV[7] .. ':sealed:' .. gen)
  redis.call('RPUSH', KEYS[2], gen)
end

return {counted, repeats, address_limited, retried, waits}
