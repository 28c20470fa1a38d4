-- Record one story event in the stories read model, atomically and idempotently.
-- KEYS: 1 the story's hash, 2 the live stream of changed stories,
--       3.. the listings the story is in (all stories, one per topic, one per language)
-- ARGV: the story record (JSON), its article count, the article's field and JSON,
--       the story's last activity (ms), the hash's TTL (s), the oldest activity kept (ms),
--       the story id, the live stream's length cap, the titles folded for search
local story, live = KEYS[1], KEYS[2]
local record, article_count = ARGV[1], tonumber(ARGV[2])
local article_field, article = ARGV[3], ARGV[4]
local activity_ms, ttl_seconds, oldest_ms = ARGV[5], ARGV[6], ARGV[7]
local story_id, live_cap, folded_titles = ARGV[8], ARGV[9], ARGV[10]

redis.call('HSET', story, article_field, article)
redis.call('EXPIRE', story, ttl_seconds)
-- a redelivered or late event of an older snapshot must not replace a newer one
local known = tonumber(redis.call('HGET', story, 'n') or '0')
if article_count < known then
  return 0
end
redis.call('HSET', story, 'r', record, 'n', article_count, 'f', folded_titles)
for i = 3, #KEYS do
  redis.call('ZADD', KEYS[i], activity_ms, story_id)
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. oldest_ms)
end
redis.call('XADD', live, 'MAXLEN', '~', live_cap, '*', 'story', story_id)
return 1
