-- Save a source's state unless the source was deleted lately: a poll that ends after its
-- source was deleted (here or on another replica) must not bring its key back.
-- KEYS: 1 the source's state hash, 2 the source's deletion mark
-- ARGV: field, value, ...
local state, deleted = KEYS[1], KEYS[2]

if redis.call('EXISTS', deleted) == 1 then
  return 0
end
redis.call('HSET', state, unpack(ARGV))
return 1
