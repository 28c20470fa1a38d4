-- Move a statistics hash of an earlier layout (1,024 or 32 a generation) into today's
-- (STATS_BUCKETS a generation), merged with what was counted there since: a token counted
-- since then started from nothing, so its own count since adds to both of the earlier counts.
-- Built by `move_stats_calls` in stored.py.
-- KEYS: 1 the earlier hash, 2 today's hash its tokens belong in
-- Reply: the number of tokens moved
local entries = redis.call('HGETALL', KEYS[1])
if #entries == 0 then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
for i = 1, #entries, 2 do
  local token, value = entries[i], entries[i + 1]
  local since = redis.call('HGET', KEYS[2], token)
  if since then
    local count, languages, own = stat(value)
    local _, since_languages, since_own = stat(since)
    value = (count + since_own) .. ' ' .. (own + since_own) .. ' '
      .. merge_languages(languages, split(since_languages, ','))
  end
  redis.call('HSET', KEYS[2], token, value)
end
if ttl > redis.call('PTTL', KEYS[2]) then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('DEL', KEYS[1])
return #entries / 2
