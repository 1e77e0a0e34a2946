-- Deletes the batch only if it is still the one this flusher applied (a stale flusher
-- must not delete a newer batch), takes what it held off the shard's pending activity,
-- and leaves the sketches it changed to be stored (sketches-due): all at once, so a
-- batch's changed sketches are either in the batch or in that set.
-- KEYS: batch, activity, sketches-due. ARGV: batch id (<epoch>:<gen>), the number n of
-- (article, what the batch held of it) pairs, the 2n values, then the `<day> <article>`
-- of each sketch the batch changed.
if redis.call('HGET', KEYS[1], '_id') ~= ARGV[1] then
  return 0
end
redis.call('UNLINK', KEYS[1])
local CHUNK = 1000 -- unpack's stack holds a few thousand values at most
local pairs_end = 2 + 2 * tonumber(ARGV[2])
-- An article whose activity was all in this batch (most) leaves the set: read a chunk's
-- scores at once and remove those in one command, rather than a command per article.
for start = 3, pairs_end - 1, 2 * CHUNK do
  local members = {}
  for i = start, math.min(start + 2 * CHUNK, pairs_end) - 1, 2 do
    members[#members + 1] = ARGV[i]
  end
  local scores = redis.call('ZMSCORE', KEYS[2], unpack(members))
  local gone = {}
  for j, member in ipairs(members) do
    local held = tonumber(ARGV[start + 2 * j - 1])
    local score = scores[j] and tonumber(scores[j])
    if score and score <= held then
      gone[#gone + 1] = member
    elseif score then
      redis.call('ZINCRBY', KEYS[2], -held, member)
    end
  end
  if #gone > 0 then
    redis.call('ZREM', KEYS[2], unpack(gone))
  end
end
for i = pairs_end + 1, #ARGV, CHUNK do
  redis.call('SADD', KEYS[3], unpack(ARGV, i, math.min(i + CHUNK - 1, #ARGV)))
end
return 1
