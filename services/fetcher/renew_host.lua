-- Extend a request's host slot lease to `lease_ms` from now, unless it ran out already.
-- KEYS: 1 the host's request leases (sorted set: token -> lease end, ms)
-- ARGV: the request's token, the lease (ms)
-- Returns 1 if the lease was extended, 0 if it had run out.
local leases = KEYS[1]
local token, lease_ms = ARGV[1], tonumber(ARGV[2])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = tonumber(redis.call('ZSCORE', leases, token) or '0')
if until_ms <= now then
  return 0
end
redis.call('ZADD', leases, now + lease_ms, token)
if redis.call('PTTL', leases) < lease_ms then
  redis.call('PEXPIRE', leases, lease_ms)
end
return 1
