-- Records the events of one shard (one hash slot) in one call.
--
-- KEYS[1] the live hash, KEYS[2] the list of sealed pieces, KEYS[3] gen, KEYS[4] epoch,
-- KEYS[5] the pending activity per article (a sorted set). The keys events name are
-- made here: the head's prefixes (keys.py's, each with the shard's hash tag) followed by
-- the names the records send.
--
-- ARGV[1], the whole call, one MessagePack map (record_call.py's): `head` the call's
-- values (now_ms, the windows and limits, the prefixes), `layout` the field names of a
-- request, an event, a unit and a field group in the order their arrays hold them,
-- `metas` the metadata texts (JSON objects), `units` the kinds of unit (per kind its
-- de-duplication name ('' none), kind ('v' a view; 's' engaged seconds, 'r' an engaged
-- reader or quarter, both only after the reader's counted view; 'p' other), amount, id
-- part and trending kind ('v', 's' or '-', an event's first unit's)), `groups` what a
-- unit adds to for an article (its article, the day's sketch its reader joins ('' none)
-- and the live hash's fields, each +amount) and `requests`: per request its rate key's
-- name and events; per event its state's name (the address's readers on the article),
-- reader, metadata (index of a text, 0: none), event id ('' none) and units (per unit
-- the index of its kind and of its group).
--
-- Every value is checked before the first write, so a bad call changes nothing.
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

local function list_of(value, what)
  if type(value) ~= 'table' then
    error('record: ' .. what .. ' is not a list')
  end
  return value
end

if #ARGV ~= 1 then
  error('record: ' .. #ARGV .. ' arguments, not one')
end
local ok, call = pcall(cmsgpack.unpack, ARGV[1])
if not ok or type(call) ~= 'table' or type(call.head) ~= 'table'
  or type(call.layout) ~= 'table' or type(call.metas) ~= 'table'
  or type(call.groups) ~= 'table' or type(call.requests) ~= 'table' then
  error('record: argument 1 is not a record call')
end
local head = call.head

-- A record's field name -> its place in the record's array, from the layout sent.
local function places(what)
  local names = list_of(call.layout[what], 'the layout of ' .. what)
  local at = {}
  for place, name in ipairs(names) do
    at[text_of(name, 'a field name of ' .. what)] = place
  end
  return at
end
local R, E, U, G = places('request'), places('event'), places('unit'), places('group')

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
local state_prefix = text_of(head.state_prefix, 'state_prefix')
local hash_state_prefix = text_of(head.hash_state_prefix, 'hash_state_prefix')
local rate_prefix = text_of(head.rate_prefix, 'rate_prefix')
local sketch_prefix = text_of(head.sketch_prefix, 'sketch_prefix')
if type(head.first_claim) ~= 'boolean' then
  error('record: first_claim is not a boolean')
end
local first_claim = head.first_claim
local meta_texts = call.metas
for m, text in ipairs(meta_texts) do
  text_of(text, 'metas[' .. m .. ']')
end
local unit_kinds = call.units
for n, unit in ipairs(list_of(unit_kinds, 'units')) do
  if type(unit) ~= 'table' or type(unit[U.dedup]) ~= 'string'
    or type(unit[U.kind]) ~= 'string' or type(unit[U.amount]) ~= 'number'
    or type(unit[U.part]) ~= 'string' or type(unit[U.trend]) ~= 'string' then
    error('record: units[' .. n .. '] is not a well-formed unit')
  end
end
local groups = call.groups
for g, group in ipairs(list_of(groups, 'groups')) do
  if type(group) ~= 'table' or type(group[G.article_id]) ~= 'string'
    or type(group[G.sketch]) ~= 'string' or type(group[G.fields]) ~= 'table' then
    error('record: groups[' .. g .. '] is not a well-formed group')
  end
  for _, field in ipairs(group[G.fields]) do
    if type(field) ~= 'string' then
      error('record: groups[' .. g .. '] has a field that is not a string')
    end
  end
end

-- Checks: every value of every record, once, so the writes below never meet a bad one.
-- One test per record, no call per value: the checks cost less than a tenth of the call.
local function bad(what, r, e)
  local at = 'requests[' .. r .. ']'
  if e then
    at = at .. '.events[' .. e .. ']'
  end
  error('record: ' .. at .. ' is not a well-formed ' .. what)
end
local n_metas, n_units, n_groups = #meta_texts, #unit_kinds, #groups
local function names_none(index, bound)
  return type(index) ~= 'number' or index < 1 or index > bound or index ~= math.floor(index)
end
local requests = call.requests
for r, request in ipairs(requests) do
  if type(request) ~= 'table' or type(request[R.rate]) ~= 'string'
    or type(request[R.events]) ~= 'table' then
    bad('request', r)
  end
  for e, event in ipairs(request[R.events]) do
    if type(event) ~= 'table' or type(event[E.state]) ~= 'string'
      or type(event[E.reader]) ~= 'string' or type(event[E.event_id]) ~= 'string'
      or type(event[E.units]) ~= 'table' or #event[E.units] % 2 ~= 0 then
      bad('event', r, e)
    end
    local meta = event[E.metadata]
    if meta ~= 0 and names_none(meta, n_metas) then
      bad('event (its metadata names no text)', r, e)
    end
    local units = event[E.units]
    for u = 1, #units, 2 do
      if names_none(units[u], n_units) or names_none(units[u + 1], n_groups) then
        bad('event (its units name no unit and group)', r, e)
      end
    end
  end
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
-- address's bound and its readers' repeats), one MessagePack map: `w` the window's start
-- and `n` the readers admitted in it; per reader (keyed by 8 bytes of its id) a map of
-- `v` its counted view and `g` the engaged seconds granted since, when each other
-- de-duplicated metric last counted (by its name), and 'i<id><part>' its counted event
-- ids. A reader that counted in the window was admitted in it. Times in seconds.
--
-- The states of a call's events are read in one MGET and each changed one written once
-- (SET with its expiry): three commands per event were most of the call's time.

-- Before, a state was a hash of text fields, under another prefix (a process of the
-- version before, during a rolling upgrade, never meets a state of this one as a type it
-- cannot read): 'w' "start:readers", per reader (8 bytes of its id followed by) 'v'
-- "view:granted", a metric's name its last time, 'i<id><part>' "1". Read as such until
-- the last expires (state_ttl_s after the upgrade); never written.
local function from_hash(fields)
  local state = {}
  for j = 1, #fields, 2 do
    local field, value = fields[j], fields[j + 1]
    if field == 'w' then
      local start, readers = string.match(value, '^(%d+):(%d+)$')
      state.w, state.n = tonumber(start), tonumber(readers)
    elseif #field > 8 then
      local me, name = string.sub(field, 1, 8), string.sub(field, 9)
      local reader = state[me] or {}
      state[me] = reader
      if name == 'v' then
        local at, granted = string.match(value, '^(%d+):(%d+)$')
        reader.v, reader.g = tonumber(at), tonumber(granted)
      else
        reader[name] = tonumber(value)
      end
    end
  end
  return state
end

local STATES_PER_READ = 1000 -- keys per MGET (unpack's stack)
-- The states of the call's events, by name, each read once.
local function read_states()
  local names, states = {}, {}
  for _, request in ipairs(requests) do
    for _, event in ipairs(request[R.events]) do
      local name = event[E.state]
      if name ~= '' and not states[name] then
        states[name] = {}
        names[#names + 1] = name
      end
    end
  end
  local missing = {}
  for j = 1, #names, STATES_PER_READ do
    local keys = {}
    for n = j, math.min(j + STATES_PER_READ - 1, #names) do
      keys[#keys + 1] = state_prefix .. names[n]
    end
    local values = redis.call('MGET', unpack(keys))
    for n = 1, #keys do
      if values[n] then
        states[names[j + n - 1]] = cmsgpack.unpack(values[n])
      else
        missing[#missing + 1] = names[j + n - 1]
      end
    end
  end
  -- A state not found may be kept as it was before, a hash under hash_state_prefix.
  for j = 1, #missing, STATES_PER_READ do
    local keys = {}
    for n = j, math.min(j + STATES_PER_READ - 1, #missing) do
      keys[#keys + 1] = hash_state_prefix .. missing[n]
    end
    if redis.call('EXISTS', unpack(keys)) > 0 then
      for n, key in ipairs(keys) do
        states[missing[j + n - 1]] = from_hash(redis.call('HGETALL', key))
      end
    end
  end
  return states
end

-- Whether the reader may count from its address: admitted once per window (it counted
-- in it: its view, or the metric asked about), while fewer than per_address readers were.
local function admitted(state, reader, last)
  if per_address <= 0 then
    return true
  end
  if not state.w or now_s - state.w >= window then
    state.w, state.n = now_s, 0
  end
  if math.max(reader.v or -1, last or -1) >= state.w then
    return true
  end
  if state.n >= per_address then
    return false
  end
  state.n = state.n + 1
  return true
end

-- What one unit adds (its amount; engaged seconds cut to what the reader's counted view
-- allows), or nil and why not; what it changes it changes in the state.
local function outcome(state, reader, unit, id_field)
  if id_field and reader[id_field] then
    return nil, 'retried'
  end
  local kind, amount, dedup = unit[U.kind], unit[U.amount], unit[U.dedup]
  local last = nil
  if kind == 'v' then
    last = reader.v
  elseif dedup ~= '' then
    last = reader[dedup]
  end
  if last and window > 0 and dedup ~= '' and now_s - last < window then
    return nil, 'repeat'
  end
  if kind == 'v' or kind == 'p' then
    if not admitted(state, reader, last) then
      return nil, 'address'
    end
    if kind == 'v' then
      reader.v, reader.g = now_s, 0
    elseif dedup ~= '' then
      reader[dedup] = now_s
    end
  elseif not reader.v then
    return nil, 'no_view'
  else
    if kind == 's' then
      local since_view = math.max(0, now_s - reader.v)
      amount = math.min(amount, math.min(since_view, max_engaged) - reader.g)
      if amount <= 0 then
        return nil, 'engaged'
      end
      reader.g = reader.g + amount
    end
    if dedup ~= '' then
      reader[dedup] = now_s
    end
  end
  -- A retry of a unit that repeats count no more is caught as a repeat: its id is kept
  -- only where nothing else would catch it (engaged seconds, or no window).
  if id_field and (dedup == '' or window <= 0) then
    reader[id_field] = 1
  end
  return amount
end

local told = {counted = 0, ['repeat'] = 0, address = 0, retried = 0, no_view = 0, engaged = 0}
local waits = {}
local new_counters = 0
-- What counted events add is summed first (per field group), then written once per
-- field, set, article and sketch: a story read by many at once costs a few writes per
-- call, not per reader.
local trending = {}
local sums = {}
local sketch_readers = {}
local metas = {}
local decoded = {}
-- What a counted unit of an event adds to the call's sums.
local function add(event, unit, g, amount, first)
  local group = groups[g]
  local article = group[G.article_id]
  local trend = unit[U.trend]
  if first and trend ~= '-' then
    local articles = trending[trend]
    if not articles then
      articles = {}
      trending[trend] = articles
    end
    articles[article] = (articles[article] or 0) + 1
  end
  sums[g] = (sums[g] or 0) + amount
  local meta_index = event[E.metadata]
  if first and meta_index > 0 then
    local given = decoded[meta_index]
    if not given then
      given = cjson.decode(meta_texts[meta_index])
      decoded[meta_index] = given
    end
    local meta = metas[article]
    if not meta then
      meta = {}
      metas[article] = meta
    end
    for name, value in pairs(given) do
      if not (first_claim and meta[name]) then
        meta[name] = value
      end
    end
  end
  local sketch = group[G.sketch]
  if sketch ~= '' then
    local readers = sketch_readers[sketch]
    if not readers then
      readers = {}
      sketch_readers[sketch] = readers
    end
    readers[#readers + 1] = event[E.reader]
  end
end

local states = read_states()
local changed_states = {}

local function record(event)
  local units = event[E.units]
  local name = event[E.state]
  local state = name ~= '' and states[name]
  local reader, id
  if state then
    local me = string.sub(event[E.reader], 1, 8)
    reader = state[me]
    if not reader then
      reader = {}
      state[me] = reader
    end
    id = event[E.event_id]
  end
  for u = 1, #units, 2 do
    local unit, group = unit_kinds[units[u]], units[u + 1]
    local amount, why
    local kind = unit[U.kind]
    if state then
      local id_field = id ~= '' and ('i' .. id .. unit[U.part]) or nil
      amount, why = outcome(state, reader, unit, id_field)
      -- (A state changes only as a unit counts.)
      if amount then
        changed_states[name] = state
      end
    elseif kind == 'v' or kind == 'p' then
      amount = unit[U.amount] -- nothing kept of this reader: no window, no id
    else
      why = 'no_view'
    end
    if u == 1 then
      local as = amount and 'counted' or why
      told[as] = told[as] + 1
    end
    if amount then
      add(event, unit, group, amount, u == 1)
    end
  end
end

for r, request in ipairs(requests) do
  local wait = 0
  local events = request[R.events]
  if request[R.rate] ~= '' and event_cost > 0 then
    wait = retry_after(rate_prefix .. request[R.rate], math.max(1, #events))
  end
  waits[r] = wait
  if wait == 0 then
    for _, event in ipairs(events) do
      record(event)
    end
  end
end
for name, state in pairs(changed_states) do
  redis.call('SET', state_prefix .. name, cmsgpack.pack(state), 'EX', state_ttl)
end

-- The groups' sums, per field (groups may share one: an article's total) and article.
local increments = {}
local activity = {}
for g, amount in pairs(sums) do
  local group = groups[g]
  local article = group[G.article_id]
  for _, field in ipairs(group[G.fields]) do
    increments[field] = (increments[field] or 0) + amount
    if string.byte(field) == 116 then -- 't <metric> <article>': a metric's total
      activity[article] = (activity[article] or 0) + amount
    end
  end
end

local live = KEYS[1]
for field, amount in pairs(increments) do
  -- 98 is 'b': a new hourly bucket field is one more counter to flush.
  if redis.call('HINCRBY', live, field, amount) == amount and string.byte(field) == 98 then
    new_counters = new_counters + 1
  end
end
for article, amount in pairs(activity) do
  redis.call('ZINCRBY', KEYS[5], amount, article)
end
for sketch, readers in pairs(sketch_readers) do
  local key = sketch_prefix .. sketch
  local changed = 0
  for j = 1, #readers, CHUNK do
    changed = changed + redis.call('PFADD', key, unpack(readers, j, math.min(j + CHUNK - 1, #readers)))
  end
  -- Changed since PostgreSQL stored it: it must not expire until it is stored again.
  -- (Unchanged, what PostgreSQL holds is what it holds.)
  if changed > 0 then
    redis.call('PERSIST', key)
  end
end
for trend, articles in pairs(trending) do
  local key = trending_prefix .. trend .. ':' .. bucket
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
