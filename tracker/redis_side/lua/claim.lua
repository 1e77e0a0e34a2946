-- Cuts a shard's next batch to apply. In order: the batch a flusher that died left
-- behind (resumed), else the oldest sealed piece, else the live hash cut now.
--
-- KEYS: live, batch, gen, epoch, sealed list. ARGV: an epoch candidate, parts, the
-- sealed pieces' key prefix (keys.py), then (epoch, highest generation PostgreSQL applied) pairs.
--
-- Ids never repeat against PostgreSQL: if Redis comes back older than it was (a crash
-- with AOF everysec, a failover to a lagging replica), its generation counter is moved
-- past the highest one applied, and pieces sealed since get new ids (they were never
-- claimed, so never applied). Returns {state ('resumed', 'sealed' or 'live'), batch id,
-- rolled back (1/0)}, {'none', '', 1} when only a rollback was found, or nil.
local live, batch, gen_key, epoch_key, sealed = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local sealed_prefix = ARGV[3]

redis.call('SET', epoch_key, ARGV[1], 'NX')
local epoch = redis.call('GET', epoch_key)
local floor, known = 0, false
for i = 4, #ARGV - 1, 2 do
  if ARGV[i] == epoch then
    floor, known = tonumber(ARGV[i + 1]), true
  end
end

local rolled_back = 0
local gen = redis.call('GET', gen_key)
if tonumber(gen or '0') < floor then
  redis.call('SET', gen_key, floor)
  rolled_back = 1
elseif not gen and not known and #ARGV > 3 then
  -- PostgreSQL applied batches of this shard, but Redis has a new epoch and no
  -- generation: it lost its state (emptied, or restored from before it had an epoch).
  -- Ids cannot collide (the epoch is new); what it held again may be counted twice.
  rolled_back = 1
end
local pieces = redis.call('LRANGE', sealed, 0, -1)
if #pieces > 0 and tonumber(pieces[1]) <= floor then
  -- New ids for all of them, in order: pieces are applied in the order of their ids.
  for i, old_gen in ipairs(pieces) do
    local gen = redis.call('INCR', gen_key)
    local old_key = sealed_prefix .. old_gen
    redis.call('HSET', old_key, '_id', epoch .. ':' .. gen)
    redis.call('RENAME', old_key, sealed_prefix .. gen)
    redis.call('LSET', sealed, i - 1, gen)
  end
  rolled_back = 1
end

local batch_id = redis.call('HGET', batch, '_id')
if batch_id then
  return {'resumed', batch_id, rolled_back}
end
local oldest = redis.call('LPOP', sealed)
if oldest then
  redis.call('RENAME', sealed_prefix .. oldest, batch)
  redis.call('HSETNX', batch, '_parts', ARGV[2])
  return {'sealed', redis.call('HGET', batch, '_id'), rolled_back}
end
if redis.call('EXISTS', live) == 0 then
  if rolled_back == 1 then
    return {'none', '', 1}
  end
  return false
end
local gen = redis.call('INCR', gen_key)
batch_id = epoch .. ':' .. gen
redis.call('HSET', live, '_id', batch_id, '_parts', ARGV[2])
redis.call('RENAME', live, batch)
return {'live', batch_id, rolled_back}
