-- Give a poll lease back, if it is still the holder's.
-- KEYS: 1 the source's poll lease
-- ARGV: the holder's token
-- Returns 1 if it was released.
local lease, token = KEYS[1], ARGV[1]

if redis.call('GET', lease) == token then
  return redis.call('DEL', lease)
end
return 0
