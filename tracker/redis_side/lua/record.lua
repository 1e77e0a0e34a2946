-- Records the events of one shard (one hash slot) in one call.
--
-- KEYS[1] the live hash, KEYS[2] the list of sealed pieces, KEYS[3] gen, KEYS[4] epoch,
-- KEYS[5] the pending activity per article (a sorted set); KEYS[6..] the per-event keys
-- the records name by index (0: none).
--
-- The layout is record_call.py's; this script reads it by name. ARGV[1] is one
-- MessagePack map: `head` the call's values (now_ms, the windows and limits, the key
-- prefixes keys.py makes), `layout` the field names of a request, an event and a unit
-- record in the order they are sent (each record's list last), and `metas` the metadata
-- texts (JSON objects). ARGV[2] the number of requests; then the records, each its
-- fields in layout order, its list as a count followed by its items: per request its
-- rate key and events; per event its state key (the address's readers on the article),
-- sketch key, trending kind ('v', 's' or '-'), article, reader, metadata (index of a
-- text, 0: none), event id ('' none) and units; per unit its de-duplication name (''
-- none), kind ('v' a view; 's' engaged seconds, 'r' an engaged reader or quarter, both
-- only after the reader's counted view; 'p' other), amount, id part, and the fields it
-- adds to (each +amount). Readers and ids are bytes: they travel as arguments, which
-- MessagePack in Redis could not carry.
--
-- Every argument is checked before the first write, so a bad call changes nothing.
-- Returns {counted, repeats, address_limited, retried, no_view, engaged_limit,
-- {retry after (ms) per request}}: events, each told by its first unit.

local RATE_BURST_MS = 60000
-- Trending reads compare the last 60 minutes with the 60 before.
local TRENDING_TTL_S = 2 * 3600 + 600
local CHUNK = 100 -- values per unpack(): Lua's stack holds some thousands at most

local function number_of(value, what)
  if type(value) ~= 'number' then
    error('record: ' .. what .. ' is not a number')
  end
  return value
end

local function text_of(value, what)
  if type(value) ~= 'string' then
    error('record: ' .. what .. ' is not a string')
  end
  return value
end

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

local function text_at(i)
  if ARGV[i] == nil then
    error('record: argument ' .. i .. ' is missing')
  end
  return ARGV[i]
end

local ok, call = pcall(cmsgpack.unpack, ARGV[1] or '')
if not ok or type(call) ~= 'table' or type(call.head) ~= 'table'
  or type(call.layout) ~= 'table' or type(call.metas) ~= 'table' then
  error('record: argument 1 is not a record call')
end
local head = call.head

-- A record's field name -> its offset in the record, from the layout sent; its list
-- (named `list`) must come last, its items following the record's own values.
local function offsets(what, list)
  local names = call.layout[what]
  if type(names) ~= 'table' or names[#names] ~= list then
    error('record: the layout of ' .. what .. ' does not end with ' .. list)
  end
  local at = {}
  for place, name in ipairs(names) do
    at[text_of(name, 'a field name of ' .. what)] = place - 1
  end
  return at
end
local R, E, U = offsets('request', 'events'), offsets('event', 'units'), offsets('unit', 'fields')

local now = number_of(head.now_ms, 'now_ms')
-- A reader's state keeps times in seconds (what its windows are counted in): shorter.
local now_s = math.floor(now / 1000)
local window = number_of(head.window_s, 'window_s')
local per_address = number_of(head.readers_per_address, 'readers_per_address')
local event_cost = number_of(head.event_cost_ms, 'event_cost_ms')
local seal_at = number_of(head.seal_at_fields, 'seal_at_fields')
local state_ttl = number_of(head.state_ttl_s, 'state_ttl_s')
local max_engaged = number_of(head.max_engaged_s, 'max_engaged_s')
local trending_keep = number_of(head.trending_keep, 'trending_keep')
local bucket = math.floor(now / number_of(head.trending_bucket_ms, 'trending_bucket_ms'))
local epoch_candidate = text_of(head.epoch_candidate, 'epoch_candidate')
local sealed_prefix = text_of(head.sealed_prefix, 'sealed_prefix')
local trending_prefix = text_of(head.trending_prefix, 'trending_prefix')
if type(head.first_claim) ~= 'boolean' then
  error('record: first_claim is not a boolean')
end
local first_claim = head.first_claim
local meta_texts = call.metas
for m, text in ipairs(meta_texts) do
  text_of(text, 'metas[' .. m .. ']')
end

-- Checks: walk the whole layout once, into plain tables, so the writes below read
-- each value once and never meet a bad one.
local requests = {}
local i = 2
local n_requests = number_at(i)
i = i + 1
for r = 1, n_requests do
  local request = {rate = key_index_at(i + R.rate_key), events = {}}
  local n_events = number_at(i + R.events)
  i = i + R.events + 1
  for e = 1, n_events do
    local meta = number_at(i + E.metadata)
    if meta < 0 or meta > #meta_texts or meta ~= math.floor(meta) then
      error('record: argument ' .. (i + E.metadata) .. ' names no metadata')
    end
    local event = {
      state = key_index_at(i + E.state_key), sketch = key_index_at(i + E.sketch_key),
      trend = text_at(i + E.trend), article = text_at(i + E.article_id),
      reader = text_at(i + E.reader), meta = meta, id = text_at(i + E.event_id), units = {},
    }
    local n_units = number_at(i + E.units)
    i = i + E.units + 1
    for u = 1, n_units do
      local unit = {dedup = text_at(i + U.dedup), kind = text_at(i + U.kind),
        amount = number_at(i + U.amount), part = text_at(i + U.part), fields = {}}
      local n_fields = number_at(i + U.fields)
      i = i + U.fields + 1
      for f = 1, n_fields do
        unit.fields[f] = text_at(i + f - 1)
      end
      event.units[u] = unit
      i = i + n_fields
    end
    request.events[e] = event
  end
  requests[r] = request
end
if i ~= #ARGV + 1 then
  error('record: ' .. (#ARGV + 1 - i) .. ' arguments past the last event')
end

-- Generic cell rate algorithm: one key per address holds the time at which its bucket
-- is empty again; a burst of a minute's worth is allowed. Each event costs its share.
local function retry_after(key, events)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then
    tat = now
  end
  local next_tat = tat + event_cost * events
  if next_tat - now > RATE_BURST_MS then
    return next_tat - now - RATE_BURST_MS
  end
  redis.call('SET', key, next_tat, 'PX', next_tat - now)
  return 0
end

-- What the script keeps of readers on an article, per address (one key serves the
-- address's bound and its readers' repeats): 'w' the window's start and the readers
-- admitted in it ("ms:readers"); per reader (fields prefixed with 8 bytes of its id) 'v' its counted
-- view and the engaged seconds granted since ("ms:seconds"), when each other
-- de-duplicated metric last counted, and 'i<id><part>' its counted event ids. A reader
-- that counted in the window was admitted in it. Read once per event, written once.
local function read_state(state, event)
  local me = string.sub(event.reader, 1, 8)
  local names = {'w', me .. 'v'}
  for _, unit in ipairs(event.units) do
    if unit.dedup ~= '' then
      names[#names + 1] = me .. unit.dedup
    end
    if event.id ~= '' then
      names[#names + 1] = me .. 'i' .. event.id .. unit.part
    end
  end
  local values = redis.call('HMGET', state, unpack(names))
  local found = {me = me}
  for j, name in ipairs(names) do
    found[name] = values[j]
  end
  local view = found[me .. 'v']
  if view then
    local at, granted = string.match(view, '^(%d+):(%d+)$')
    found.view, found.granted = tonumber(at), tonumber(granted)
  end
  if found.w then
    local start, readers = string.match(found.w, '^(%d+):(%d+)$')
    found.start, found.readers = tonumber(start), tonumber(readers)
  end
  return found
end

-- Whether the reader may count from its address: admitted once per window (it counted
-- in it: its view, or the metric asked about), while fewer than per_address readers were.
local function admitted(found, changes, last)
  if per_address <= 0 then
    return true
  end
  if not found.start or now_s - found.start >= window then
    found.start, found.readers = now_s, 0
  end
  if math.max(found.view or -1, last or -1) >= found.start then
    return true
  end
  if found.readers >= per_address then
    return false
  end
  found.readers = found.readers + 1
  changes.w = found.start .. ':' .. found.readers
  return true
end

-- What one unit adds (its amount; engaged seconds cut to what the reader's counted view
-- allows), or nil and why not; what it changes of the state goes into `changes`.
local function outcome(found, changes, unit, id_field)
  if id_field and found[id_field] then
    return nil, 'retried'
  end
  local kind, amount, me = unit.kind, unit.amount, found.me
  local last = nil
  if kind == 'v' then
    last = found.view
  elseif unit.dedup ~= '' then
    last = tonumber(found[me .. unit.dedup] or '-1')
  end
  if last and last >= 0 and window > 0 and unit.dedup ~= '' and now_s - last < window then
    return nil, 'repeat'
  end
  if kind == 'v' or kind == 'p' then
    if not admitted(found, changes, last) then
      return nil, 'address'
    end
    if kind == 'v' then
      found.view, found.granted = now_s, 0
      changes[me .. 'v'] = now_s .. ':0'
    elseif unit.dedup ~= '' then
      changes[me .. unit.dedup] = now_s
    end
  elseif not found.view then
    return nil, 'no_view'
  else
    if kind == 's' then
      local since_view = math.max(0, now_s - found.view)
      amount = math.min(amount, math.min(since_view, max_engaged) - found.granted)
      if amount <= 0 then
        return nil, 'engaged'
      end
      found.granted = found.granted + amount
      changes[me .. 'v'] = found.view .. ':' .. found.granted
    end
    if unit.dedup ~= '' then
      found[me .. unit.dedup] = now_s
      changes[me .. unit.dedup] = now_s
    end
  end
  -- A retry of a unit that repeats count no more is caught as a repeat: its id is kept
  -- only where nothing else would catch it (engaged seconds, or no window).
  if id_field and (unit.dedup == '' or window <= 0) then
    found[id_field] = 1
    changes[id_field] = 1
  end
  return amount
end

local told = {counted = 0, ['repeat'] = 0, address = 0, retried = 0, no_view = 0, engaged = 0}
local waits = {}
local new_counters = 0
-- What counted events add is summed first, then written once per field, set, article
-- and sketch: a story read by many at once costs a few writes per call, not per reader.
local trending = {}
local increments = {}
local activity = {}
local sketch_readers = {}
local metas = {}
local decoded = {}
-- What a counted unit of an event adds to the call's sums.
local function add(event, unit, amount, first)
  if first and event.trend ~= '-' then
    local key = trending_prefix .. event.trend .. ':' .. bucket
    local articles = trending[key]
    if not articles then
      articles = {}
      trending[key] = articles
    end
    articles[event.article] = (articles[event.article] or 0) + 1
  end
  for _, name in ipairs(unit.fields) do
    increments[name] = (increments[name] or 0) + amount
    if string.byte(name) == 116 then -- 't <metric> <article>': a metric's total
      activity[event.article] = (activity[event.article] or 0) + amount
    end
  end
  if first and event.meta > 0 then
    local given = decoded[event.meta]
    if not given then
      given = cjson.decode(meta_texts[event.meta])
      decoded[event.meta] = given
    end
    local meta = metas[event.article]
    if not meta then
      meta = {}
      metas[event.article] = meta
    end
    for name, value in pairs(given) do
      if not (first_claim and meta[name]) then
        meta[name] = value
      end
    end
  end
  if event.sketch > 0 and unit.kind == 'v' then
    local readers = sketch_readers[event.sketch]
    if not readers then
      readers = {}
      sketch_readers[event.sketch] = readers
    end
    readers[#readers + 1] = event.reader
  end
end

local function record(event)
  local state = event.state > 0 and KEYS[event.state]
  local found = state and read_state(state, event) or {}
  local changes = {}
  for u, unit in ipairs(event.units) do
    local id_field = state and event.id ~= '' and (found.me .. 'i' .. event.id .. unit.part) or nil
    local amount, why
    if state then
      amount, why = outcome(found, changes, unit, id_field)
    elseif unit.kind == 'v' or unit.kind == 'p' then
      amount = unit.amount -- nothing kept of this reader: no window, no id
    else
      why = 'no_view'
    end
    if u == 1 then
      local as = amount and 'counted' or why
      told[as] = told[as] + 1
    end
    if amount then
      add(event, unit, amount, u == 1)
    end
  end
  local flat = {}
  for name, value in pairs(changes) do
    flat[#flat + 1] = name
    flat[#flat + 1] = value
  end
  if #flat > 0 then
    redis.call('HSET', state, unpack(flat))
    redis.call('EXPIRE', state, state_ttl)
  end
end

for r, request in ipairs(requests) do
  local wait = 0
  if request.rate > 0 and event_cost > 0 then
    wait = retry_after(KEYS[request.rate], math.max(1, #request.events))
  end
  waits[r] = wait
  if wait == 0 then
    for _, event in ipairs(request.events) do
      record(event)
    end
  end
end

local live = KEYS[1]
for name, amount in pairs(increments) do
  -- 98 is 'b': a new hourly bucket field is one more counter to flush.
  if redis.call('HINCRBY', live, name, amount) == amount and string.byte(name) == 98 then
    new_counters = new_counters + 1
  end
end
for article, amount in pairs(activity) do
  redis.call('ZINCRBY', KEYS[5], amount, article)
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
  -- A bucket's long tail is cut: what trending ranks is its head, and one address
  -- naming new articles endlessly must not grow it without bound.
  if redis.call('ZCARD', key) > trending_keep * 1.5 then
    redis.call('ZREMRANGEBYRANK', key, 0, -trending_keep - 1)
  end
end
-- Each field of an article's metadata apart ('m<field> <article>'): a claim keeps the
-- piece's first value of each, trusted senders' latest wins.
for article, meta in pairs(metas) do
  for name, value in pairs(meta) do
    local field = 'm' .. name .. ' ' .. article
    if first_claim then
      redis.call('HSETNX', live, field, value)
    else
      redis.call('HSET', live, field, value)
    end
  end
end
if told.counted > 0 then
  redis.call('HSETNX', live, '_first_ms', string.format('%d', now))
  redis.call('HINCRBY', live, '_events', told.counted)
end
if new_counters > 0 then
  redis.call('HINCRBY', live, '_counters', new_counters)
end

-- A live hash past the bound is sealed as a piece with its own id, applied later in
-- order: no batch is larger than the bound, however long PostgreSQL was away.
if seal_at > 0 and redis.call('HLEN', live) >= seal_at then
  redis.call('SET', KEYS[4], epoch_candidate, 'NX')
  local gen = redis.call('INCR', KEYS[3])
  redis.call('HSET', live, '_id', redis.call('GET', KEYS[4]) .. ':' .. gen)
  redis.call('RENAME', live, sealed_prefix .. gen)
  redis.call('RPUSH', KEYS[2], gen)
end

return {told.counted, told['repeat'], told.address, told.retried, told.no_view, told.engaged, waits}
