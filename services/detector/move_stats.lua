-- Move tokens of a statistics hash of an earlier layout (1,024 or 32 a generation) into
-- today's (STATS_BUCKETS a generation), merged with what was counted there since: a token counted
-- since then started from nothing, so its own count since adds to both of the earlier counts.
-- A chunk of tokens a call (the adapter reads them with HSCAN), so that no call keeps Redis
-- from other work for long however large the earlier hash: one of the 32-hash layout holds a
-- thirty-second of a generation's distinct tokens (about 2,400 in the bench's synthetic index
-- of a million stories; a real week of news has many more distinct tokens).
-- Built by `move_stats_call` in stored.py.
-- KEYS: 1 the earlier hash, 2 today's hash its tokens belong in
-- ARGV: the tokens to move
-- Reply: the number of tokens moved
local ttl = redis.call('PTTL', KEYS[1])
local moved = 0
for _, token in ipairs(ARGV) do
  local value = redis.call('HGET', KEYS[1], token)
  if value then
    local since = redis.call('HGET', KEYS[2], token)
    if since then
      local count, languages, own = stat(value)
      local _, since_languages, since_own = stat(since)
      value = (count + since_own) .. ' ' .. (own + since_own) .. ' '
        .. merge_languages(languages, split(since_languages, ','))
    end
    redis.call('HSET', KEYS[2], token, value)
    redis.call('HDEL', KEYS[1], token)
    moved = moved + 1
  end
end
if moved > 0 and ttl > redis.call('PTTL', KEYS[2]) then redis.call('PEXPIRE', KEYS[2], ttl) end
return moved
