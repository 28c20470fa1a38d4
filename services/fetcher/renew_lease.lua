-- Extend a poll lease to `lease_ms` from now, if it is still the holder's.
-- KEYS: 1 the source's poll lease
-- ARGV: the holder's token, the lease (ms)
-- Returns 1 if it was extended.
local lease, token, lease_ms = KEYS[1], ARGV[1], ARGV[2]

if redis.call('GET', lease) == token then
  return redis.call('PEXPIRE', lease, lease_ms)
end
return 0
