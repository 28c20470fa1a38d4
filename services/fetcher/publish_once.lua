-- Mark the article seen and publish it in one step: a crash never leaves one without the
-- other, and two replicas racing on one item publish it once. Seen ids older than the
-- retention leave the set as new ones arrive (time: the server's clock, ms).
-- KEYS: 1 the seen ids (sorted set, scored by when seen), 2 articles.raw
-- ARGV: the article id, the stream's data field, the message, the retention (ms)
local seen, stream = KEYS[1], KEYS[2]
local article_id, field, message = ARGV[1], ARGV[2], ARGV[3]
local retention_ms = tonumber(ARGV[4])

if redis.call('ZSCORE', seen, article_id) then
  return false
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', seen, now_ms, article_id)
redis.call('ZREMRANGEBYSCORE', seen, '-inf', '(' .. string.format('%.0f', now_ms - retention_ms))
return redis.call('XADD', stream, '*', field, message)
