-- Sketches stored in PostgreSQL may expire: KEYS[i] at the Unix time ARGV[i].
for i, key in ipairs(KEYS) do
  redis.call('EXPIREAT', key, ARGV[i])
end
return #KEYS
