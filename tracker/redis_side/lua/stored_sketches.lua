-- Sketches stored in PostgreSQL may expire: KEYS[i + 1] at the Unix time ARGV[i]. The
-- last call of a take also ends it (ARGV[#KEYS]: 1 deletes KEYS[1], sketches-taking).
-- KEYS: sketches-taking, then the sketches.
for i = 2, #KEYS do
  redis.call('EXPIREAT', KEYS[i], ARGV[i - 1])
end
if ARGV[#KEYS] == '1' then
  redis.call('DEL', KEYS[1])
end
return #KEYS - 1
