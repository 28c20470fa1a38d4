-- Candidate stories for one article, ranked here so that only the top few summaries travel:
-- the open stories whose simhash is within `max_distance` bits (found through the four band
-- posting lists), then those sharing the most rare-anchor weight; with the statistics of
-- every token involved and the commit sequence number observed. No writes.
-- Built by `lookup_call` in stored.py.
-- KEYS: 1 sequence number, 2-3 story counts of the current and the previous statistics
--       generation, 4 the article's placement, 5-8 the packed posting keys of the simhash's
--       bands 0-3
-- ARGV: 1 max distance (bits), 2-3 simhash high/low 32 bits, 4 query tokens,
--       5 max candidates, 6 oldest open last-seen (epoch s), 7 key tag ('{prefix}:'),
--       8 the article's anchors, space-separated (one argument: cheaper to send than one each),
--       9-10 the current and the previous statistics generation (their starts, epoch s),
--       11 the fewest anchors a story must share with the article to be weighed
-- Keys named here under the key tag (so in the slot of KEYS), not declared: the token posting
-- keys `t:<bucket>` of the anchors queried (the rarest, by counts read here), the story
-- records `r:<number>` (numbers read from posting lists) and the statistics buckets
-- `d:<generation>:<bucket>` of both generations for the article's anchors and the candidates'
-- (read from their records). The article's buckets could be declared, but the family is named
-- here anyway, and one key argument per anchor (up to 160) costs the client more than hashing
-- them here.
-- Reply: {version, placement} when placed before, else
--        {version, false, story count, "token count own languages" lines,
--        {number, record}...}, counts over both generations
local seq_key, article_key = KEYS[1], KEYS[4]
local max_distance, hi, lo = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local query_tokens, max_candidates = tonumber(ARGV[4]), tonumber(ARGV[5])
local cutoff, tag = tonumber(ARGV[6]), ARGV[7]
local tokens = ARGV[8] == '' and {} or split(ARGV[8], ' ')
local min_shared = tonumber(ARGV[11])
local own = {}
for _, t in ipairs(tokens) do own[t] = true end
local current_stats, previous_stats = tag .. 'd:' .. ARGV[9] .. ':', tag .. 'd:' .. ARGV[10] .. ':'

local version = tonumber(redis.call('GET', seq_key) or '0')
local existing = redis.call('GET', article_key)
if existing then return {version, existing} end
local documents = tonumber(redis.call('GET', KEYS[2]) or '0')
  + tonumber(redis.call('GET', KEYS[3]) or '0')

-- pop8[x + 1]: the bits set in byte x (a literal: cheaper than a loop on every call)
local pop8 = {
  0,1,1,2,1,2,2,3,1,2,2,3,2,3,3,4,1,2,2,3,2,3,3,4,2,3,3,4,3,4,4,5,
  1,2,2,3,2,3,3,4,2,3,3,4,3,4,4,5,2,3,3,4,3,4,4,5,3,4,4,5,4,5,5,6,
  1,2,2,3,2,3,3,4,2,3,3,4,3,4,4,5,2,3,3,4,3,4,4,5,3,4,4,5,4,5,5,6,
  2,3,3,4,3,4,4,5,3,4,4,5,4,5,5,6,3,4,4,5,4,5,5,6,4,5,5,6,5,6,6,7,
  1,2,2,3,2,3,3,4,2,3,3,4,3,4,4,5,2,3,3,4,3,4,4,5,3,4,4,5,4,5,5,6,
  2,3,3,4,3,4,4,5,3,4,4,5,4,5,5,6,3,4,4,5,4,5,5,6,4,5,5,6,5,6,6,7,
  2,3,3,4,3,4,4,5,3,4,4,5,4,5,5,6,3,4,4,5,4,5,5,6,4,5,5,6,5,6,6,7,
  3,4,4,5,4,5,5,6,4,5,5,6,5,6,6,7,4,5,5,6,5,6,6,7,5,6,6,7,6,7,7,8
}
local function pop16(x) return pop8[bit.band(x, 255) + 1] + pop8[bit.rshift(x, 8) + 1] end
local function pop32(x)
  return pop8[bit.band(x, 255) + 1] + pop8[bit.band(bit.rshift(x, 8), 255) + 1]
    + pop8[bit.band(bit.rshift(x, 16), 255) + 1] + pop8[bit.rshift(x, 24) + 1]
end

-- Where the `limit` newest entries under `entry_tag` sit in a packed posting string (`step`
-- bytes an entry, after its 4-byte header), newest first, and the string. Scanned backwards
-- in growing chunks: a list with many entries costs its tail, not the whole key.
local function newest(key, entry_tag, step, limit)
  local s = redis.call('GET', key)
  local out = {}
  if not s then return out, '' end
  local stop, size = #s, step * 512
  while stop > 4 and #out < limit do
    local first = math.max(5, stop - size + 1)
    local region = string.sub(s, first, stop)
    local found, start = {}, 1
    while true do
      local at = string.find(region, entry_tag, start, true)
      if not at then break end
      if (at - 1) % step == 0 then
        found[#found + 1] = first + at - 1
        start = at + step
      else
        start = at + 1
      end
    end
    for i = #found, math.max(1, #found - (limit - #out) + 1), -1 do out[#out + 1] = found[i] end
    stop, size = first - 1, size * 4
  end
  return out, s
end

-- The `k` first items of `items` in the order `before` (a strict total order), in that order:
-- one pass that keeps the best `k` sorted, so most items cost one comparison (a full sort of
-- the hundreds of stories the query tokens' postings name costs several times more).
local function first(items, k, before)
  local best = {}
  for _, item in ipairs(items) do
    if #best < k or before(item, best[#best]) then
      local at = math.min(#best, k - 1) + 1
      while at > 1 and before(item, best[at - 1]) do
        best[at] = best[at - 1]
        at = at - 1
      end
      best[at] = item
    end
  end
  return best
end

-- A story's record split into fields (false when expired or closed before `cutoff`).
local parsed, raw = {}, {}
local function story(n)
  local f = parsed[n]
  if f == nil then
    local record = redis.call('GET', tag .. 'r:' .. n)
    f = false
    if record then
      f = split(record, '\t')
      if tonumber(f[4]) < cutoff then f = false else raw[n] = record end
    end
    parsed[n] = f
  end
  return f
end

-- A token's statistics as the current generation reads them ('count own languages'; false
-- when unseen in both generations), read once: the current generation's entry (it holds the
-- count over both), else what the previous one carries over.
local stats = {}
local function stats_of(token)
  local value = stats[token]
  if value == nil then
    local where = bucket(token)
    value = redis.call('HGET', current_stats .. where, token)
    if not value then
      value = redis.call('HGET', previous_stats .. where, token)
      if value then value = carried(value) end
    end
    stats[token] = value
  end
  return value
end

-- Whether one of a story's simhashes (its record's fields) is within `max_distance` bits.
local function near(f)
  for _, h in ipairs(split(f[6], ',')) do
    local d = pop32(bit.bxor(tonumber(string.sub(h, 1, 8), 16), hi))
      + pop32(bit.bxor(tonumber(string.sub(h, 9, 16), 16), lo))
    if d <= max_distance then return true end
  end
  return false
end

-- Near duplicates: band hits within `max_distance` bits of one of the story's simhashes.
local chosen, order = {}, {}
local bands = {lo % 65536, math.floor(lo / 65536), hi % 65536, math.floor(hi / 65536)}
for b = 1, 4 do
  local next1, next2 = bands[b % 4 + 1], bands[(b + 1) % 4 + 1]
  local band_tag = string.char(bands[b] % 256, math.floor(bands[b] / 256))
  local at_list, s = newest(KEYS[4 + b], band_tag, BAND_ENTRY_BYTES, POSTING_FETCH)
  for _, at in ipairs(at_list) do
    local n = num(s, at + 2)
    -- the entry's copy of the next two bands: more than `max_distance` bits off rules it out
    local c1, c2, c3, c4 = string.byte(s, at + 6, at + 9)
    local off = pop16(bit.bxor(c1 * 256 + c2, next1)) + pop16(bit.bxor(c3 * 256 + c4, next2))
    if not chosen[n] and off <= max_distance then
      local f = story(n)
      if f and near(f) then chosen[n] = true; order[#order + 1] = n end
    end
  end
end

-- Anchor hits: the rarest known anchors (`query_tokens` in core.py), their stories ranked by
-- shared IDF weight, then most recent (`rank_candidates` in core.py).
local dfs, known = {}, {}
for i, token in ipairs(tokens) do
  local value = stats_of(token)
  dfs[i] = value and tonumber(string.sub(value, 1, string.find(value, ' ', 1, true) - 1)) or 0
  if dfs[i] > 0 then known[#known + 1] = i end
end
known = first(known, query_tokens, function(a, b)
  if dfs[a] ~= dfs[b] then return dfs[a] < dfs[b] end
  return tokens[a] < tokens[b]
end)
local scores, ranked = {}, {}
for q = 1, #known do
  local i = known[q]
  local weight = idf(documents, dfs[i])
  local where, token_tag = slot(tokens[i])
  local at_list, s = newest(tag .. 't:' .. where, token_tag, #token_tag + 4, POSTING_FETCH)
  for _, at in ipairs(at_list) do
    local n = num(s, at + #token_tag)
    if not scores[n] then scores[n] = 0; ranked[#ranked + 1] = n end
    scores[n] = scores[n] + weight
  end
end
ranked = first(ranked, max_candidates, function(a, b)
  if scores[a] ~= scores[b] then return scores[a] > scores[b] end
  return a > b
end)
for rank = 1, #ranked do
  local n = ranked[rank]
  if not chosen[n] then
    chosen[n] = true
    if story(n) then order[#order + 1] = n end
  end
end

-- The reply: candidates' records, and the statistics of the article's anchors and of the
-- anchors of each candidate the article could join: one within `max_distance` bits, or one
-- sharing `min_shared` of its anchors (all of them when it has fewer: an exact copy). The
-- decision weighs no other story's anchors (`assign_story` in core.py), so their statistics
-- are not read.
local all, seen = {}, {}
for _, t in ipairs(tokens) do all[#all + 1] = t; seen[t] = true end
local enough = math.min(min_shared, #tokens)
local records = {}
for _, n in ipairs(order) do
  records[#records + 1] = n
  records[#records + 1] = raw[n]
  local f = parsed[n]
  local named, shared = {}, 0
  for t in string.gmatch(f[9], '([^ /]+)[^ ]*') do
    named[#named + 1] = t
    if own[t] then shared = shared + 1 end
  end
  if shared >= enough or near(f) then
    for _, t in ipairs(named) do
      if not seen[t] then seen[t] = true; all[#all + 1] = t end
    end
  end
end
-- one line per token, "token count own languages" (just the token when unseen): one reply string
-- rather than two elements a token, which the client would parse one by one
local lines = {}
for i, t in ipairs(all) do
  local value = stats_of(t)
  lines[i] = value and (t .. ' ' .. value) or t
end
return {version, false, documents, table.concat(lines, '\n'), records}
