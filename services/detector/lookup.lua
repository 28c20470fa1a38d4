-- First step of a lookup: the article's placement if it was placed before; else the
-- statistics of its anchors, with the story count and the commit sequence number observed.
-- No writes. The adapter then reads the posting keys of the article's simhash bands and of
-- its rarest known anchors (one MGET), finds and ranks the candidates there, reads their
-- records and the statistics of their anchors (`token_stats.lua`).
-- Built by `lookup_call` in stored.py. Every key it reads is declared.
-- KEYS: 1 sequence number, 2-3 story counts of the current and the previous statistics
--       generation, 4 the article's placement, then the statistics hashes of the current and
--       the previous generation (STATS_BUCKETS each)
-- ARGV: 1 the article's anchors, space-separated (one argument: cheaper to send than one
--       each), 2 their statistics buckets, one byte each
-- Reply: {version, placement} when placed before, else
--        {version, false, story count, "count own languages" lines of the article's anchors
--        in the order of ARGV 1 (empty when unseen)}
local seq_key, article_key = KEYS[1], KEYS[4]
local tokens = ARGV[1] == '' and {} or split(ARGV[1], ' ')
local buckets = ARGV[2]

local version = tonumber(redis.call('GET', seq_key) or '0')
local existing = redis.call('GET', article_key)
if existing then return {version, existing} end
local documents = tonumber(redis.call('GET', KEYS[2]) or '0')
  + tonumber(redis.call('GET', KEYS[3]) or '0')

local lines = {}
for i, token in ipairs(tokens) do
  lines[i] = token_stats(token, stats_keys(5, buckets, i)) or ''
end
return {version, false, documents, table.concat(lines, '\n')}
