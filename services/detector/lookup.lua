-- First step of a lookup: the article's placement if it was placed before; else the story
-- numbers of its candidates: the open stories close by simhash (band hits whose entry's copy
-- of the next two bands is within `max_distance` bits) and those sharing the most rare-anchor
-- weight, ranked here so that only the best few travel; with the statistics of the article's
-- anchors and the commit sequence number observed. No writes. The adapter then reads the
-- candidates' records and the statistics of their anchors (`token_stats.lua`).
-- Built by `lookup_call` in stored.py. Every key it reads is declared.
-- KEYS: 1 sequence number, 2-3 story counts of the current and the previous statistics
--       generation, 4 the article's placement, 5-8 the packed posting keys of the simhash's
--       bands 0-3, then the statistics hashes of the current and the previous generation
--       (STATS_BUCKETS each), then per anchor (in the order of ARGV 6) its packed posting key
-- ARGV: 1 max distance (bits), 2-3 simhash high/low 32 bits, 4 query tokens, 5 max candidates,
--       6 the article's anchors, space-separated (one argument: cheaper to send than one each),
--       7 their posting tags, 4 bytes each, 8 their statistics buckets, one byte each
-- Reply: {version, placement} when placed before, else
--        {version, false, story count, "count own languages" lines of the article's anchors
--        in the order of ARGV 6 (empty when unseen), band hits (story numbers), anchor hits
--        (story numbers, best first)}
local seq_key, article_key = KEYS[1], KEYS[4]
local max_distance, hi, lo = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local query_tokens, max_candidates = tonumber(ARGV[4]), tonumber(ARGV[5])
local tokens = ARGV[6] == '' and {} or split(ARGV[6], ' ')
local tags, buckets = ARGV[7], ARGV[8]
local first_stats_key, first_token_key = 9, 9 + 2 * STATS_BUCKETS

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

-- Where the `limit` newest entries under `entry_tag` sit in a packed posting string (`step`
-- bytes an entry, after its 4-byte header), newest first, and the string. Scanned backwards
-- in growing chunks: a list with many entries costs its tail, not the whole key. The chunks
-- are searched in place, not cut out: Redis's Lua hashes every byte of every string it makes.
local function newest(key, entry_tag, step, limit)
  local s = redis.call('GET', key)
  local out = {}
  if not s then return out, '' end
  local stop, size = #s, step * 512
  while stop > 4 and #out < limit do
    local first = math.max(5, stop - size + 1)
    local found = {}
    local at = aligned_find(s, entry_tag, first, first, step)
    while at and at <= stop do
      found[#found + 1] = at
      at = aligned_find(s, entry_tag, at + step, first, step)
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

-- Band hits: entries whose copy of the next two bands is within `max_distance` bits (the
-- adapter checks the whole simhash against the story's record).
local band_hits, seen_band = {}, {}
local bands = {lo % 65536, math.floor(lo / 65536), hi % 65536, math.floor(hi / 65536)}
for b = 1, 4 do
  local next1, next2 = bands[b % 4 + 1], bands[(b + 1) % 4 + 1]
  local band_tag = string.char(bands[b] % 256, math.floor(bands[b] / 256))
  local at_list, s = newest(KEYS[4 + b], band_tag, BAND_ENTRY_BYTES, POSTING_FETCH)
  for _, at in ipairs(at_list) do
    local n = num(s, at + 2)
    local c1, c2, c3, c4 = string.byte(s, at + 6, at + 9)
    local off = pop16(bit.bxor(c1 * 256 + c2, next1)) + pop16(bit.bxor(c3 * 256 + c4, next2))
    if not seen_band[n] and off <= max_distance then
      seen_band[n] = true; band_hits[#band_hits + 1] = n
    end
  end
end

-- The article's anchors' statistics; anchor hits: the rarest known anchors (`query_tokens` in
-- core.py), their stories ranked by shared IDF weight, then most recent (`rank_candidates`).
local lines, dfs, known = {}, {}, {}
for i, token in ipairs(tokens) do
  local value = token_stats(token, stats_keys(first_stats_key, buckets, i))
  lines[i] = value or ''
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
  local token_tag = string.sub(tags, 4 * i - 3, 4 * i)
  local at_list, s = newest(KEYS[first_token_key + i - 1], token_tag, 8, POSTING_FETCH)
  for _, at in ipairs(at_list) do
    local n = num(s, at + 4)
    if not scores[n] then scores[n] = 0; ranked[#ranked + 1] = n end
    scores[n] = scores[n] + weight
  end
end
ranked = first(ranked, max_candidates, function(a, b)
  if scores[a] ~= scores[b] then return scores[a] > scores[b] end
  return a > b
end)
return {version, false, documents, table.concat(lines, '\n'), band_hits, ranked}
