-- The sketches to store now: those taken before and not yet stored (a flusher died
-- meanwhile), else all that are due, taken at once so what changes later waits for the
-- next time. KEYS: sketches-due, sketches-taking. Returns their `<day> <article>`.
if redis.call('EXISTS', KEYS[2]) == 0 then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    return {}
  end
  redis.call('RENAME', KEYS[1], KEYS[2])
end
return redis.call('SMEMBERS', KEYS[2])
