-- Pieces shared by the story index's scripts. Redis has no `require`: `load_script` in
-- redis_index.py puts the constants (`local NAME = value` lines from stored.py) and this file
-- in front of each script. Each piece names its Python twin, which follows the same rule.

-- `text` cut at each plain (not pattern) `sep`.
local function split(text, sep)
  local out, start = {}, 1
  while true do
    local at = string.find(text, sep, start, true)
    if not at then out[#out + 1] = string.sub(text, start); return out end
    out[#out + 1] = string.sub(text, start, at - 1)
    start = at + 1
  end
end

-- A 4-byte big-endian number (story number, sequence number) at byte `at` of `s`.
local function num(s, at)
  local a, b, c, d = string.byte(s, at, at + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- The first entry-aligned place at or after byte `start` of a packed posting string `s` where
-- `needle` begins (entries are `step` bytes, the first at byte `first`), or nil.
local function aligned_find(s, needle, start, first, step)
  while true do
    local at = string.find(s, needle, start, true)
    if not at or (at - first) % step == 0 then return at end
    start = at + 1
  end
end

-- The inverse of `num`.
local function pack(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256)
end

-- A token's statistics as stored in a generation ('count own languages', or nil): its story
-- count over this generation and the one before (what lookups read), the stories counted in
-- this generation alone (what the next one carries over), and its languages.
-- `_Statistics` in index.py keeps the same three in memory.
local function stat(value)
  if not value then return 0, nil, 0 end
  local first = string.find(value, ' ', 1, true)
  local second = string.find(value, ' ', first + 1, true)
  return tonumber(string.sub(value, 1, first - 1)), string.sub(value, second + 1),
    tonumber(string.sub(value, first + 1, second - 1))
end

-- A token's statistics in the previous generation as the current one reads them: the
-- stories counted there alone as its count.
local function carried(value)
  local first = string.find(value, ' ', 1, true)
  local second = string.find(value, ' ', first + 1, true)
  return string.sub(value, first + 1, second - 1) .. string.sub(value, first)
end

-- The statistics hashes of the current and the previous generation holding the token whose
-- bucket is byte `i` of `buckets` (`stats_buckets` in stored.py), among the 2 x STATS_BUCKETS
-- keys from KEYS[first] on (`KeySpace.stats_keys`).
local function stats_keys(first, buckets, i)
  local b = string.byte(buckets, i)
  return KEYS[first + b], KEYS[first + STATS_BUCKETS + b]
end

-- A token's statistics as a lookup in the current generation reads them ('count own
-- languages', or false when unseen in both): its entry in `current_key` (the current
-- generation's bucket: it holds the count over both), else what `previous_key` carries over.
local function token_stats(token, current_key, previous_key)
  local value = redis.call('HGET', current_key, token)
  if value then return value end
  value = redis.call('HGET', previous_key, token)
  return value and carried(value)
end

-- Whether `language` is one of the comma-separated `seen` (found in place: no string made).
local function has_language(seen, language)
  local start = 1
  while true do
    local first, last = string.find(seen, language, start, true)
    if not first then return false end
    if (first == 1 or string.byte(seen, first - 1) == 44)
        and (last == #seen or string.byte(seen, last + 1) == 44) then
      return true
    end
    start = first + 1
  end
end

-- A token's languages (comma-separated; nil: none yet) once also seen in `languages` (a list):
-- the new ones appended in order; and whether that changed them. `merge_languages` in core.py.
local function merge_languages(seen, languages)
  local changed = false
  for _, language in ipairs(languages) do
    if not seen then
      seen = language; changed = true
    elseif not has_language(seen, language) then
      seen = seen .. ',' .. language; changed = true
    end
  end
  return seen, changed
end

-- Raise a token's story count by `add` and merge `languages` (a list) into its languages, in
-- the statistics hash `key` of the current generation; a token not yet there starts from what
-- `previous_key` (the previous generation's hash) carries over. Written only when that changes
-- something: until then lookups read the previous generation's hash. `_Statistics` in index.py
-- counts alike in memory. Returns whether it wrote `key` (the caller sets its expiry, once
-- per key).
local function count_token(key, previous_key, token, add, languages)
  local count, seen, own = stat(redis.call('HGET', key, token) or nil)
  if not seen then
    local _, before, before_own = stat(redis.call('HGET', previous_key, token) or nil)
    count, seen = before_own, before
  end
  local merged, changed = merge_languages(seen, languages)
  if add > 0 or changed then
    redis.call('HSET', key, token, (count + add) .. ' ' .. (own + add) .. ' ' .. merged)
    return true
  end
  return false
end

-- Set `ttl` (s) on each key of `keys` (a set: key -> true) once.
local function expire_each(keys, ttl)
  for key in pairs(keys) do redis.call('EXPIRE', key, ttl) end
end
