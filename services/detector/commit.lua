-- Store one placement if the lookup it was decided on is still valid: a new story only when
-- no commit since the observed sequence number wrote a posting key it reads or writes; a
-- join only when the story's record still has the expected version. Then every write in one
-- step: story record, placement, member, close time, posting entries, token statistics.
-- Built by `commit_call` in stored.py.
-- KEYS: 1 sequence number, 2 story count of the current statistics generation, 3 the
--       article's placement, 4 the story's members, 5 open stories, then one statistics bucket
--       of the current generation per story anchor (as in ARGV), then the posting keys
--       written, then the posting keys only guarded (read by the lookup)
-- ARGV: 1 observed sequence number, 2 story number ('' = new story), 3 expected story
--       version, 4 story record (after its version), 5 placement (after the story number),
--       6 member JSON, 7 ttl (s), 8 language, 9 key tag ('{prefix}:'), 10 story id,
--       11 closes at (epoch s), 12 open-stories ttl (s), 13 the story's anchors,
--       space-separated (one argument: cheaper to send than one each), 14 their story count
--       increments (one digit per anchor), 15 statistics ttl (s: until the generation is no
--       longer read), 16 '1' when the story counts once more in the generation (new, or first
--       written in it), 17 the previous generation's statistics keys' prefix
--       ('{prefix}:d:<start>:'), then per posting key written (entry tag, check)
-- Keys only known here, under the key tag: the story record `r:<number>` (a new story's number
-- is the sequence number taken here), the records of the stories at the head of a posting
-- key (numbers read from it) that `post` checks for expiry, and the previous generation's
-- statistics buckets (read when a token is first counted in the current one).
-- Reply: {'ok', story number}, {'existing', placement} or {'conflict', ''}
local seq_key, stories_key, article_key = KEYS[1], KEYS[2], KEYS[3]
local members_key, open_key = KEYS[4], KEYS[5]
local observed, number, expected = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local story_record, placement, member = ARGV[4], ARGV[5], ARGV[6]
local ttl, language, tag = tonumber(ARGV[7]), ARGV[8], ARGV[9]
local story_id, closes_at, open_ttl = ARGV[10], tonumber(ARGV[11]), tonumber(ARGV[12])
local anchors = ARGV[13] == '' and {} or split(ARGV[13], ' ')
local increments, stats_ttl, counted = ARGV[14], tonumber(ARGV[15]), ARGV[16] == '1'
local previous_stats, written = ARGV[17], (#ARGV - 17) / 2
local first_stats, first_posting = 6, 6 + #anchors

-- Put the entry `entry_tag .. packed .. check` (`packed`: the story number) at the tail of a
-- packed posting string, after the header (the sequence number of its last write); `moved`:
-- drop the same entry written earlier first (a band entry with another check stays: it
-- stands for another of the story's simhashes). Over POSTING_KEY_CAP entries, or with
-- expired stories at the head, the head is cut.
local function post(key, entry_tag, packed, check, header, moved)
  local entry = entry_tag .. packed .. check
  local step = #entry
  local size = redis.call('STRLEN', key)
  local cut = false
  if size == 0 then
    redis.call('SET', key, header .. entry)
  elseif moved then
    local body, start = string.sub(redis.call('GET', key), 5), 1
    while true do
      local at = string.find(body, entry, start, true)
      if not at then break end
      if (at - 1) % step == 0 then
        body = string.sub(body, 1, at - 1) .. string.sub(body, at + step)
        break
      end
      start = at + 1
    end
    redis.call('SET', key, header .. body .. entry)
  elseif size < POSTING_SMALL_KEY then
    redis.call('SET', key, header .. string.sub(redis.call('GET', key), 5) .. entry)
  else
    redis.call('SETRANGE', key, 0, header)
    redis.call('APPEND', key, entry)
  end
  local count = (redis.call('STRLEN', key) - 4) / step
  local drop = math.max(0, count - POSTING_KEY_CAP)
  if count > 1 then
    local head = redis.call('GETRANGE', key, 4 + drop * step, 4 + drop * step + step - 1)
    if redis.call('EXISTS', tag .. 'r:' .. num(head, #entry_tag + 1)) == 0 then cut = true end
  end
  if drop > 0 or cut then
    local s = redis.call('GET', key)
    local checks = 0
    while cut and checks < POSTING_HEAD_CHECKS and drop < count - 1 do
      local n = num(s, 5 + drop * step + #entry_tag)
      if redis.call('EXISTS', tag .. 'r:' .. n) == 1 then break end
      drop = drop + 1
      checks = checks + 1
    end
    redis.call('SET', key, header .. string.sub(s, 5 + drop * step))
  end
  redis.call('EXPIRE', key, ttl)
end

local existing = redis.call('GET', article_key)
if existing then return {'existing', existing} end
if number == '' then
  for i = first_posting, #KEYS do
    local header = redis.call('GETRANGE', KEYS[i], 0, 3)
    if #header == 4 and num(header, 1) > observed then return {'conflict', ''} end
  end
else
  local record = redis.call('GET', tag .. 'r:' .. number)
  if not record or split(record, '\t')[1] ~= expected then return {'conflict', ''} end
end
local seq = redis.call('INCR', seq_key)
local moved = number ~= ''
if not moved then number = tostring(seq) end
if counted then redis.call('INCR', stories_key) end
redis.call('SET', tag .. 'r:' .. number, seq .. '\t' .. story_record, 'EX', ttl)
redis.call('SET', article_key, number .. '\t' .. placement, 'EX', ttl)
redis.call('RPUSH', members_key, member)
redis.call('EXPIRE', members_key, ttl)
redis.call('ZADD', open_key, closes_at, story_id)
redis.call('EXPIRE', open_key, open_ttl)
local header, packed = pack(seq), pack(tonumber(number))
for i = 0, written - 1 do
  local at = 18 + 2 * i
  post(KEYS[first_posting + i], ARGV[at], packed, ARGV[at + 1], header, moved)
end
for i, token in ipairs(anchors) do
  local add = tonumber(string.sub(increments, i, i))
  local key = KEYS[first_stats + i - 1]
  count_token(key, previous_stats .. string.sub(key, -3), token, add, language, stats_ttl)
end
redis.call('EXPIRE', seq_key, ttl)
redis.call('EXPIRE', stories_key, stats_ttl)
return {'ok', number}
