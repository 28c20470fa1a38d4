-- Bulk load of new stories whose numbers the caller reserved (`reserve_numbers.lua`):
-- the same records, packed posting entries and token statistics as `commit.lua` writes one
-- story at a time. Built by `bulk_call` in stored.py.
-- KEYS: 1 sequence number, 2 story count of the current statistics generation, 3 open
--       stories, then the statistics hashes of the current and the previous generation
--       (STATS_BUCKETS each), then per story (its record, its article's placement, its
--       members), then the posting keys
-- ARGV: 1 header (the packed sequence number of this load), 2 ttl (s), 3 open-stories ttl
--       (s), 4 number of stories, 5 number of posting keys, 6 statistics ttl (s: until the
--       generation is no longer read), 7 the statistics bucket of each token (one byte each,
--       in the order below), then per story (number, story record,
--       placement, story id, member JSON, closes at), then per posting key (packed entries,
--       entry size in bytes), then per token (token, story count increment, languages)
-- Every key is declared.
-- Reply: the number of stories
local seq_key, stories_key, open_key = KEYS[1], KEYS[2], KEYS[3]
local header, ttl, open_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local stories, postings, stats_ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local buckets, first_stats_key, first_story_key = ARGV[7], 4, 4 + 2 * STATS_BUCKETS
local first_posting_key, first_story_arg = first_story_key + 3 * stories, 8
local first_posting_arg = first_story_arg + 6 * stories
local first_token_arg = first_posting_arg + 2 * postings

local closing = {}
for i = 0, stories - 1 do
  local key, at = first_story_key + 3 * i, first_story_arg + 6 * i
  local number = ARGV[at]
  redis.call('SET', KEYS[key], number .. '\t' .. ARGV[at + 1], 'EX', ttl)
  redis.call('SET', KEYS[key + 1], number .. '\t' .. ARGV[at + 2], 'EX', ttl)
  redis.call('RPUSH', KEYS[key + 2], ARGV[at + 4])
  redis.call('EXPIRE', KEYS[key + 2], ttl)
  closing[#closing + 1] = ARGV[at + 5]
  closing[#closing + 1] = ARGV[at + 3]
end
for i = 1, #closing, 1000 do
  redis.call('ZADD', open_key, unpack(closing, i, math.min(#closing, i + 999)))
end
redis.call('EXPIRE', open_key, open_ttl)
for i = 0, postings - 1 do
  local key, entries = KEYS[first_posting_key + i], ARGV[first_posting_arg + 2 * i]
  local step = tonumber(ARGV[first_posting_arg + 2 * i + 1])
  local size = redis.call('STRLEN', key)
  if size >= POSTING_SMALL_KEY then
    redis.call('SETRANGE', key, 0, header)
    local drop = (redis.call('APPEND', key, entries) - 4) / step - POSTING_KEY_CAP
    if drop > 0 then
      redis.call('SET', key, header .. string.sub(redis.call('GET', key), 5 + drop * step))
    end
  else
    if size > 0 then entries = string.sub(redis.call('GET', key), 5) .. entries end
    local drop = math.max(0, #entries / step - POSTING_KEY_CAP)
    redis.call('SET', key, header .. string.sub(entries, 1 + drop * step))
  end
  redis.call('EXPIRE', key, ttl)
end
local counted_in = {}
for i = 0, #ARGV - first_token_arg, 3 do
  local at = first_token_arg + i
  local current, previous = stats_keys(first_stats_key, buckets, i / 3 + 1)
  local languages = split(ARGV[at + 2], ',')
  if count_token(current, previous, ARGV[at], tonumber(ARGV[at + 1]), languages) then
    counted_in[current] = true
  end
end
expire_each(counted_in, stats_ttl)
redis.call('INCRBY', stories_key, stories)
redis.call('EXPIRE', seq_key, ttl)
redis.call('EXPIRE', stories_key, stats_ttl)
return stories
