-- Take one of a host's request slots if one is free and the host's rate allows.
-- Time is Redis's, the one clock every replica shares; leases expire if a replica dies.
-- KEYS: 1 the host's request leases (sorted set: token -> lease end, ms),
--       2 the earliest time of the host's next request (ms)
-- ARGV: the request's token, the host's slots, the lease (ms), the host's interval (ms)
-- Returns 0 (taken), -1 (every slot busy) or the milliseconds to wait for the rate.
local leases, next_key = KEYS[1], KEYS[2]
local token, slots = ARGV[1], tonumber(ARGV[2])
local lease_ms, interval_ms = tonumber(ARGV[3]), tonumber(ARGV[4])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
if redis.call('ZCARD', leases) >= slots then
  return -1
end
local next_at = tonumber(redis.call('GET', next_key) or '0')
if next_at > now then
  return next_at - now
end
redis.call('ZADD', leases, now + lease_ms, token)
redis.call('PEXPIRE', leases, lease_ms)
if interval_ms > 0 then
  redis.call('SET', next_key, now + interval_ms, 'PX', interval_ms)
end
return 0
