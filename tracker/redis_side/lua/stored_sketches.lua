-- Sketches stored in PostgreSQL may expire, and leave the take. KEYS[1] sketches-taking,
-- KEYS[2..] the stored sketches, KEYS[i] to expire at ARGV[i - 1] (Unix time); the ARGV
-- after those: the `<day> <article>` of the take's sketches this call ends (stored, or
-- gone), removed from it. Redis deletes the set with its last member: the take ends once
-- all of it is stored, and one another flusher took meanwhile loses only what was stored.
local stored = #KEYS - 1
for i = 2, #KEYS do
  redis.call('EXPIREAT', KEYS[i], ARGV[i - 1])
end
if #ARGV > stored then
  redis.call('SREM', KEYS[1], unpack(ARGV, stored + 1, #ARGV))
end
return stored
