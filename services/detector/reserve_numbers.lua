-- Reserve story numbers for the new stories of one replica: a block at a time, so a commit
-- names its story's record among its keys without a round trip of its own. Numbers once
-- came from the sequence number: a block starts above it. Built by `reserve_call` in stored.py.
-- KEYS: 1 the story number counter, 2 the sequence number
-- ARGV: 1 how many numbers, 2 ttl (s)
-- Reply: the last number reserved
local count = tonumber(ARGV[1])
local last = redis.call('INCRBY', KEYS[1], count)
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
if last - count < seq then
  last = seq + count
  redis.call('SET', KEYS[1], last)
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return last
