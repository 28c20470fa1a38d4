-- Store one placement if the lookup it was decided on is still valid: a new story only when
-- no commit since the observed sequence number wrote a posting key it reads or writes; a
-- join only when the story's record still has the expected version. Then every write in one
-- step: story record, placement, member, close time, posting entries, token statistics.
-- Built by `commit_call` in stored.py.
-- KEYS: 1 sequence number, 2 story count of the current statistics generation, 3 the
--       article's placement, 4 the story's members, 5 open stories, 6 the story's record,
--       7 the story number counter, then the statistics hashes of the current and the
--       previous generation (STATS_BUCKETS each), then the posting keys written, then the
--       posting keys only guarded (read by the lookup)
-- ARGV: 1 observed sequence number, 2 story number (a new story's: reserved from the counter),
--       3 expected story version ('' = new story), 4 story record (after its version),
--       5 placement (after the story number), 6 member JSON, 7 ttl (s), 8 language, 9 story id,
--       10 closes at (epoch s), 11 open-stories ttl (s), 12 the story's anchors,
--       space-separated (one argument: cheaper to send than one each), 13 their story count
--       increments (one digit per anchor), 14 their statistics buckets (one byte each),
--       15 statistics ttl (s: until the generation is no longer read), 16 '1' when the story
--       counts once more in the generation (new, or first written in it), then per posting
--       key written (entry tag, check)
-- Every key is declared. Entries of expired stories are cut by `sweep_postings.lua`.
-- Reply: {'ok', story number}, {'existing', placement}, {'conflict', ''}, or {'taken', ''}
--        when a new story's number is another story's (reserve another)
local seq_key, stories_key, article_key = KEYS[1], KEYS[2], KEYS[3]
local members_key, open_key, record_key, numbers_key = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local observed, number, expected = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local story_record, placement, member = ARGV[4], ARGV[5], ARGV[6]
local ttl, languages, story_id = tonumber(ARGV[7]), {ARGV[8]}, ARGV[9]
local closes_at, open_ttl = tonumber(ARGV[10]), tonumber(ARGV[11])
local anchors = ARGV[12] == '' and {} or split(ARGV[12], ' ')
local increments, buckets = ARGV[13], ARGV[14]
local stats_ttl, counted = tonumber(ARGV[15]), ARGV[16] == '1'
local written = (#ARGV - 16) / 2
local first_stats, first_posting = 8, 8 + 2 * STATS_BUCKETS

-- Put the entry `entry_tag .. packed .. check` (`packed`: the story number) at the tail of a
-- packed posting string, after the header (the sequence number of its last write); `moved`:
-- the same entry written earlier moves there (a band entry with another check stays: it
-- stands for another of the story's simhashes). Over POSTING_KEY_CAP entries, the head is cut.
-- Redis's Lua hashes every byte of every string it makes, so the key is changed in place
-- (SETRANGE, APPEND), not rebuilt in Lua.
local function post(key, entry_tag, packed, check, header, moved)
  local entry = entry_tag .. packed .. check
  local step = #entry
  local size = redis.call('STRLEN', key)
  if size == 0 then
    redis.call('SET', key, header .. entry)
    size = 4 + step
  else
    local s = moved and redis.call('GET', key)
    local at = s and aligned_find(s, entry, 5, 5, step)
    if at then
      -- the entries after it shift forward by one: the string keeps its size
      redis.call('SETRANGE', key, at - 1, string.sub(s, at + step) .. entry)
    else
      redis.call('APPEND', key, entry)
      -- APPEND may reserve as much again as the string holds (Redis 6 does from a script),
      -- which would double a small index's memory: BITOP of the key alone makes it anew,
      -- exactly as long
      if size < POSTING_SMALL_KEY then redis.call('BITOP', 'OR', key, key) end
      size = size + step
    end
    redis.call('SETRANGE', key, 0, header)
  end
  local drop = (size - 4) / step - POSTING_KEY_CAP
  if drop > 0 then
    redis.call('SET', key, header .. string.sub(redis.call('GET', key), 5 + drop * step))
  end
  redis.call('EXPIRE', key, ttl)
end

local existing = redis.call('GET', article_key)
if existing then return {'existing', existing} end
local moved = expected ~= ''
if not moved then
  for i = first_posting, #KEYS do
    local header = redis.call('GETRANGE', KEYS[i], 0, 3)
    if #header == 4 and num(header, 1) > observed then return {'conflict', ''} end
  end
  if redis.call('EXISTS', record_key) == 1 then return {'taken', ''} end
else
  local record = redis.call('GET', record_key)
  if not record or split(record, '\t')[1] ~= expected then return {'conflict', ''} end
end
local seq = redis.call('INCR', seq_key)
if counted then redis.call('INCR', stories_key) end
redis.call('SET', record_key, seq .. '\t' .. story_record, 'EX', ttl)
redis.call('SET', article_key, number .. '\t' .. placement, 'EX', ttl)
redis.call('RPUSH', members_key, member)
redis.call('EXPIRE', members_key, ttl)
redis.call('ZADD', open_key, closes_at, story_id)
redis.call('EXPIRE', open_key, open_ttl)
local header, packed = pack(seq), pack(tonumber(number))
for i = 0, written - 1 do
  local at = 17 + 2 * i
  post(KEYS[first_posting + i], ARGV[at], packed, ARGV[at + 1], header, moved)
end
local counted_in = {}
for i, token in ipairs(anchors) do
  local add = tonumber(string.sub(increments, i, i))
  local current, previous = stats_keys(first_stats, buckets, i)
  if count_token(current, previous, token, add, languages) then counted_in[current] = true end
end
expire_each(counted_in, stats_ttl)
redis.call('EXPIRE', seq_key, ttl)
redis.call('EXPIRE', numbers_key, ttl)
redis.call('EXPIRE', stories_key, stats_ttl)
return {'ok', number}
