-- Take a poll lease that is free or already ours (a process taking back the lease it held
-- when Redis went away).
-- KEYS: 1 the source's poll lease
-- ARGV: the holder's token, the lease (ms)
-- Returns 1 if taken.
local lease = KEYS[1]
local token, lease_ms = ARGV[1], tonumber(ARGV[2])

local holder = redis.call('GET', lease)
if holder and holder ~= token then
  return 0
end
redis.call('SET', lease, token, 'PX', lease_ms)
return 1
