"""The story index: bounded story summaries and their posting lists, in memory or in Redis.

Posting lists hold story numbers, not article ids: one entry per story under each of its
four 16-bit simhash bands and its rarest anchors, most recently written last, capped. In
Redis many lists share one packed string key (4 bytes a story number, plus a 2- or 4-byte tag
naming the list, plus 4 more bytes of the simhash in a band list), so the index costs tens of
bytes per story, not a key per list; entries of expired stories are cut when their key is next
written, and lookups read a long list from its newest end. A story is one summary
(`StoryState`: a few simhashes and content hashes, its top anchors) whatever its size.

Both stores follow one optimistic protocol so `place_article` is the single decision path:
`lookup` returns candidate stories plus the commit sequence number it observed; `commit`
writes the decision only if it is still valid (a new story: no commit since then touched the
posting lists it read or writes; a join: the story was not rewritten since), else it reports a
conflict and the caller looks up again. In Redis, lookup and commit are one Lua script each
(one round trip each) over keys sharing a {hash tag}: the lookup ranks candidates server-side
and returns only the top few summaries, so its cost does not grow with the number of stories.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from contracts.messages import JoinReason, StoryMember, StorySnapshot
from services.detector.core import (
    BAND_BITS,
    DEFAULT_PARAMS,
    IDF_PRIOR_DOCUMENTS,
    SIMHASH_BANDS,
    ArticleIn,
    Decision,
    Fingerprint,
    GroupingParams,
    StoryState,
    TokenStats,
    assign_story,
    fingerprint,
    hamming,
    new_anchors,
    new_story_id,
    posted_tokens,
    query_tokens,
    rank_candidates,
    simhash_bands,
    story_after_join,
)

if TYPE_CHECKING:
    import redis.asyncio

POSTING_FETCH = 64
"""Most recent stories read from one posting list per lookup."""
POSTING_CAP = 64
"""Stories kept per posting list in memory; the least recently active fall off."""
POSTING_KEY_CAP = 16_384
"""Entries kept per packed Redis posting key (many lists share one); the oldest fall off."""
POSTING_SMALL_KEY = 4096
"""Packed posting keys shorter than this (bytes) are rewritten whole rather than appended to:
APPEND reserves as much again as the string holds, which doubles a small index's memory."""
BAND_KEY_PREFIX = "s"
"""Packed band keys are named `s<band>:<high byte>`; the `b` keys of the 5-byte entry layout
before are no longer read and expire with their TTL."""
BAND_ENTRY_BYTES = 10
"""A band posting entry: the band's value (2 bytes, little-endian), the story number (4
bytes), the next two bands of the simhash (4 bytes)."""
POSTING_HEAD_CHECKS = 64
"""Entries at the head of a packed posting key checked for expired stories per write."""
MAX_PLACE_ATTEMPTS = 8
UNKNOWN_LANGUAGE = "?"


class PlacementConflictError(RuntimeError):
    """Other writers kept changing the same posting lists; the article was not placed."""


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the index knows that is relevant to one fingerprint, at commit sequence `version`."""

    existing: Decision | None
    candidates: tuple[StoryState, ...] = ()
    stats: TokenStats = field(default_factory=TokenStats)
    version: int = 0
    numbers: dict[str, int] = field(default_factory=dict)
    """Story id -> story number (its key in the index) of every candidate."""
    read_keys: tuple[str, ...] = ()
    """Posting lists the lookup read: a commit since then to one of them may change the answer."""


class StoryIndex(Protocol):
    """Storage of stories and of the inverted index used to find candidates."""

    async def lookup(self, fp: Fingerprint, params: GroupingParams, now: datetime) -> Lookup:
        """Candidate stories open at `now` for `fp` (or its existing placement); no writes."""
        ...

    async def commit(
        self, fp: Fingerprint, decision: Decision, lookup: Lookup, joined_at: datetime
    ) -> Decision | None:
        """Store the decision atomically; None when a concurrent commit invalidated `lookup`."""
        ...

    async def snapshot(self, story_id: str) -> StorySnapshot | None:
        """The story with its members, or None when unknown (or expired)."""
        ...


def band_keys(simhash: int) -> list[str]:
    """Posting lists of stories sharing one 16-bit simhash band."""
    return [f"b{band}:{value:04x}" for band, value in enumerate(simhash_bands(simhash))]


def token_key(token: str) -> str:
    """Posting list of stories carrying an anchor."""
    return "t:" + token


@functools.lru_cache(maxsize=1 << 16)
def token_slot(token: str) -> tuple[str, bytes]:
    """Where a token's postings live in Redis: its bucket (3 hex digits of its sha1, 4,096
    posting keys) and its 4-byte tag in that bucket's postings (the next 8 hex digits)."""
    digest = hashlib.sha1(token.encode("utf-8"), usedforsecurity=False).hexdigest()
    return digest[:3], bytes.fromhex(digest[3:11])


def stats_bucket(token: str) -> str:
    """The statistics hash holding a token's story count: one of 1,024 (the top 10 bits of
    its sha1, as 3 hex digits). Fewer than the posting keys: a hash of up to 128 fields stays
    compact (listpack), and each hash costs about 100 bytes of key overhead."""
    return f"{int(token_slot(token)[0], 16) >> 2:03x}"


def posting_slot(logical_key: str) -> tuple[str, bytes]:
    """The packed Redis posting key holding a logical posting list, and the list's tag there:
    band lists share a key per band and high byte (tag: the band's 2 bytes, low byte first:
    every entry of the key has the same high byte, and a byte search stops wherever the
    tag's first byte occurs), token lists a key per bucket (tag: 4 bytes of the token's
    sha1)."""
    if logical_key.startswith("t:"):
        bucket, tag = token_slot(logical_key[2:])
        return "t:" + bucket, tag
    band, value = logical_key[1:].split(":")
    number = int(value, 16)
    return f"{BAND_KEY_PREFIX}{band}:{number >> 8:02x}", number.to_bytes(2, "little")


def posting_check(logical_key: str, simhash: int) -> bytes:
    """What a packed posting entry carries after the story number: for a band list, the next
    two bands of the story's simhash (4 bytes), so a lookup rules out the stories that share
    one band by chance (at 1M stories, about 60 a lookup) without reading their records;
    nothing for a token list."""
    if logical_key.startswith("t:"):
        return b""
    band = int(logical_key[1 : logical_key.index(":")])
    values = simhash_bands(simhash)
    return b"".join(values[(band + step) % SIMHASH_BANDS].to_bytes(2, "big") for step in (1, 2))


def _member(fp: Fingerprint, decision: Decision, joined_at: datetime) -> StoryMember:
    return StoryMember(
        article_id=fp.article_id,
        lang=fp.lang,
        source=fp.source or "unknown",
        url=fp.url,
        title=fp.title,
        reason=decision.reason,
        similarity=min(1.0, max(0.0, decision.similarity)),
        joined_at=joined_at,
    )


def _snapshot(
    story_id: str, members: Sequence[StoryMember], window_hours: float
) -> StorySnapshot | None:
    if not members:
        return None
    languages = tuple(dict.fromkeys(m.lang for m in members if m.lang))
    sources = tuple(dict.fromkeys(m.source for m in members))
    times = [m.joined_at for m in members]
    return StorySnapshot(
        story_id=story_id,
        members=tuple(members),
        languages=languages,
        sources=sources,
        first_seen=min(times),
        last_seen=max(times),
        closes_at=max(times) + timedelta(hours=window_hours),
    )


@dataclass(frozen=True, slots=True)
class _Write:
    """Everything one commit writes, computed once for both stores."""

    story: StoryState
    posting_keys: tuple[str, ...]
    guarded_keys: tuple[str, ...]
    """Posting lists that must be unchanged since the lookup for a new story to be created."""
    new_tokens: tuple[str, ...]


def _plan(fp: Fingerprint, decision: Decision, lookup: Lookup, joined_at: datetime) -> _Write:
    before = next((s for s in lookup.candidates if s.story_id == decision.story_id), None)
    if not decision.created and before is None:
        raise ValueError(f"story {decision.story_id} is not among the lookup's candidates")
    after = story_after_join(
        None if decision.created else before, decision.story_id, fp, joined_at, lookup.stats
    )
    keys = tuple(
        dict.fromkeys([*band_keys(fp.simhash), *map(token_key, posted_tokens(after, lookup.stats))])
    )
    return _Write(
        story=after,
        posting_keys=keys,
        guarded_keys=tuple(dict.fromkeys([*keys, *lookup.read_keys])),
        new_tokens=tuple(new_anchors(before, after)),
    )


def _lookup_keys(fp: Fingerprint, stats: TokenStats, params: GroupingParams) -> list[str]:
    return [*band_keys(fp.simhash), *(token_key(t) for t in query_tokens(fp, stats, params))]


class MemoryStoryIndex:
    """The story index in process memory: for tests and batch grouping (`newsmon group`).

    Same posting lists and ranking as the Redis index, so both decide alike: both read the
    64 most recent stories of a list (here each list keeps only those).
    """

    def __init__(self, *, window_hours: float = DEFAULT_PARAMS.window_hours) -> None:
        self._window_hours = window_hours
        self._placements: dict[str, Decision] = {}
        self._stories: dict[int, StoryState] = {}
        self._numbers: dict[str, int] = {}
        self._postings: dict[str, dict[int, int]] = {}
        self._frequencies: dict[str, int] = {}
        self._languages: dict[str, str] = {}
        self._members: dict[str, list[StoryMember]] = {}
        self._documents = 0
        self._version = 0

    def _recent(self, key: str) -> list[int]:
        return list(reversed(self._postings.get(key, {})))[:POSTING_FETCH]

    async def lookup(self, fp: Fingerprint, params: GroupingParams, now: datetime) -> Lookup:
        """Band hits within the near-duplicate distance, then the best anchor hits."""
        known = self._placements.get(fp.article_id)
        if known is not None:
            return Lookup(existing=replace(known, created=False), version=self._version)
        stats = TokenStats(self._documents, self._frequencies, self._languages)
        cutoff = _epoch(now - timedelta(hours=params.window_hours))
        open_stories = {
            number: story
            for key in band_keys(fp.simhash)
            for number in self._recent(key)
            for story in [self._stories[number]]
            if _epoch(story.last_seen) >= cutoff
        }
        chosen: list[int] = []
        for number, story in open_stories.items():
            distance = min(hamming(fp.simhash, value) for value in story.simhashes)
            if distance <= params.near_duplicate_max_distance:
                chosen.append(number)
        queried = query_tokens(fp, stats, params)
        postings = {token: self._recent(token_key(token)) for token in queried}
        for number in rank_candidates(postings, stats, params):
            if number not in chosen and _epoch(self._stories[number].last_seen) >= cutoff:
                chosen.append(number)
        candidates = tuple(self._stories[number] for number in chosen)
        return Lookup(
            None,
            candidates,
            stats,
            self._version,
            {story.story_id: number for story, number in zip(candidates, chosen, strict=True)},
            tuple(_lookup_keys(fp, stats, params)),
        )

    async def commit(
        self, fp: Fingerprint, decision: Decision, lookup: Lookup, joined_at: datetime
    ) -> Decision | None:
        """Store the article in its story; refuse when the lookup went stale."""
        known = self._placements.get(fp.article_id)
        if known is not None:
            return replace(known, created=False)
        write = _plan(fp, decision, lookup, joined_at)
        if decision.created:
            if any(
                next(reversed(self._postings[key].values())) > lookup.version
                for key in write.guarded_keys
                if key in self._postings
            ):
                return None
            number = self._version + 1
        else:
            number = lookup.numbers[decision.story_id]
            if self._stories[number].version != write.story.version:
                return None
        self._version += 1
        self._stories[number] = replace(write.story, version=self._version)
        self._numbers[decision.story_id] = number
        for key in write.posting_keys:
            posting = self._postings.setdefault(key, {})
            posting.pop(number, None)
            posting[number] = self._version
            if len(posting) > POSTING_CAP:
                del posting[next(iter(posting))]
        self._documents += decision.created
        for token in write.new_tokens:
            self._frequencies[token] = self._frequencies.get(token, 0) + 1
        language = fp.lang or UNKNOWN_LANGUAGE
        for token, _ in write.story.anchors:
            seen_in = self._languages.get(token)
            if seen_in is None:
                self._languages[token] = language
            elif language not in seen_in.split(","):
                self._languages[token] = seen_in + "," + language
        self._placements[fp.article_id] = decision
        self._members.setdefault(decision.story_id, []).append(_member(fp, decision, joined_at))
        return decision

    async def snapshot(self, story_id: str) -> StorySnapshot | None:
        """The story as stored, or None."""
        return _snapshot(story_id, self._members.get(story_id, []), self._window_hours)


_LUA_HELPERS = """
local function split(text, sep)
  local out, start = {}, 1
  while true do
    local at = string.find(text, sep, start, true)
    if not at then out[#out + 1] = string.sub(text, start); return out end
    out[#out + 1] = string.sub(text, start, at - 1)
    start = at + 1
  end
end
-- 4-byte big-endian story numbers and sequence numbers
local function num(s, at)
  local a, b, c, d = string.byte(s, at, at + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end
local function pack(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256)
end
-- a token's statistics hash: `stats_bucket` in Python
local function bucket(token)
  return string.format('%03x', math.floor(tonumber(string.sub(redis.sha1hex(token), 1, 3), 16) / 4))
end
-- a token's bucket and its 4-byte tag in that bucket's postings
local function slot(token)
  local digest = redis.sha1hex(token)
  local tag = string.gsub(string.sub(digest, 4, 11), '..', function(h)
    return string.char(tonumber(h, 16))
  end)
  return string.sub(digest, 1, 3), tag
end
-- 'count languages' as stored in a statistics bucket
local function stat(value)
  if not value then return 0, nil end
  local at = string.find(value, ' ', 1, true)
  return tonumber(string.sub(value, 1, at - 1)), string.sub(value, at + 1)
end
"""

_LOOKUP_SCRIPT = (
    (
        _LUA_HELPERS
        + """
-- KEYS: 1 seq, 2 stories, 3 article
-- ARGV: 1 max distance, 2-3 simhash high/low 32 bits, 4 query tokens, 5 max candidates,
--       6 idf prior, 7 posting fetch, 8 oldest open last-seen (epoch s), 9 key prefix,
--       10.. the article's anchors
-- Posting keys, statistics buckets and story records are derived here from the prefix; all
-- share the prefix's hash tag, so they live in the slot of KEYS.
local version = tonumber(redis.call('GET', KEYS[1]) or '0')
local existing = redis.call('GET', KEYS[3])
if existing then return {version, existing} end
local documents = tonumber(redis.call('GET', KEYS[2]) or '0')
local maxd, hi, lo = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local nquery, ncand = tonumber(ARGV[4]), tonumber(ARGV[5])
local prior, fetch, cutoff = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local prefix = ARGV[9]
local tokens = {}
for i = 10, #ARGV do tokens[#tokens + 1] = ARGV[i] end
local pop8 = {POP8}
local function pop32(x)
  return pop8[bit.band(x, 255) + 1] + pop8[bit.band(bit.rshift(x, 8), 255) + 1]
    + pop8[bit.band(bit.rshift(x, 16), 255) + 1] + pop8[bit.rshift(x, 24) + 1]
end
-- Where the `limit` newest entries under `tag` sit in a packed posting string (`step` bytes
-- an entry, after its 4-byte header), newest first, and the string. Scanned backwards in
-- growing chunks: a list with many entries costs its tail, not the whole key.
local function newest(key, tag, step, limit)
  local s = redis.call('GET', key)
  local out = {}
  if not s then return out, '' end
  local stop, size = #s, step * 512
  while stop > 4 and #out < limit do
    local first = math.max(5, stop - size + 1)
    local region = string.sub(s, first, stop)
    local found, start = {}, 1
    while true do
      local at = string.find(region, tag, start, true)
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
local parsed, raw = {}, {}
local function story(n)
  local f = parsed[n]
  if f == nil then
    local record = redis.call('GET', prefix .. 'r:' .. n)
    f = false
    if record then
      f = split(record, '\\t')
      if tonumber(f[4]) < cutoff then f = false else raw[n] = record end
    end
    parsed[n] = f
  end
  return f
end
local stats = {}
local function stats_of(token)
  local value = stats[token]
  if value == nil then
    value = redis.call('HGET', prefix .. 'd:' .. bucket(token), token) or false
    stats[token] = value
  end
  return value
end
local chosen, order = {}, {}
local bands = {lo % 65536, math.floor(lo / 65536), hi % 65536, math.floor(hi / 65536)}
local function pop16(x) return pop8[bit.band(x, 255) + 1] + pop8[bit.rshift(x, 8) + 1] end
for b = 1, 4 do
  local high = string.format('%02x', math.floor(bands[b] / 256))
  local key = prefix .. 'BAND_KEY' .. (b - 1) .. ':' .. high
  local next1, next2 = bands[b % 4 + 1], bands[(b + 1) % 4 + 1]
  local tag = string.char(bands[b] % 256, math.floor(bands[b] / 256))
  local at_list, s = newest(key, tag, BAND_ENTRY, fetch)
  for _, at in ipairs(at_list) do
    local n = num(s, at + 2)
    -- the entry's copy of the next two bands: more than `maxd` bits off rules the story out
    local c1, c2, c3, c4 = string.byte(s, at + 6, at + 9)
    local off = pop16(bit.bxor(c1 * 256 + c2, next1)) + pop16(bit.bxor(c3 * 256 + c4, next2))
    if not chosen[n] and off <= maxd then
      local f = story(n)
      if f then
        for _, h in ipairs(split(f[6], ',')) do
          local d = pop32(bit.bxor(tonumber(string.sub(h, 1, 8), 16), hi))
            + pop32(bit.bxor(tonumber(string.sub(h, 9, 16), 16), lo))
          if d <= maxd then chosen[n] = true; order[#order + 1] = n; break end
        end
      end
    end
  end
end
local dfs, known = {}, {}
for i, token in ipairs(tokens) do
  dfs[i] = stat(stats_of(token))
  if dfs[i] > 0 then known[#known + 1] = i end
end
table.sort(known, function(a, b)
  if dfs[a] ~= dfs[b] then return dfs[a] < dfs[b] end
  return tokens[a] < tokens[b]
end)
local scores, ranked = {}, {}
for q = 1, math.min(nquery, #known) do
  local i = known[q]
  local weight = math.log((documents + prior + 1) / (dfs[i] + 0.5))
  local where, tag = slot(tokens[i])
  local at_list, s = newest(prefix .. 't:' .. where, tag, #tag + 4, fetch)
  for _, at in ipairs(at_list) do
    local n = num(s, at + #tag)
    if not scores[n] then scores[n] = 0; ranked[#ranked + 1] = n end
    scores[n] = scores[n] + weight
  end
end
table.sort(ranked, function(a, b)
  if scores[a] ~= scores[b] then return scores[a] > scores[b] end
  return a > b
end)
for rank = 1, math.min(ncand, #ranked) do
  local n = ranked[rank]
  if not chosen[n] then
    chosen[n] = true
    if story(n) then order[#order + 1] = n end
  end
end
local all, seen = {}, {}
for _, t in ipairs(tokens) do all[#all + 1] = t; seen[t] = true end
local records = {}
for _, n in ipairs(order) do
  records[#records + 1] = n
  records[#records + 1] = raw[n]
  local field = parsed[n][9]
  if field ~= '' then
    for _, item in ipairs(split(field, ' ')) do
      local t = string.match(item, '^[^/]+')
      if not seen[t] then seen[t] = true; all[#all + 1] = t end
    end
  end
end
-- one line per token, "token count languages" (just the token when unseen): one reply string
-- rather than two elements a token, which the client would parse one by one
local lines = {}
for i, t in ipairs(all) do
  local value = stats_of(t)
  lines[i] = value and (t .. ' ' .. value) or t
end
return {version, false, documents, table.concat(lines, '\\n'), records}
"""
    )
    .replace("{POP8}", "{" + ",".join(str(byte.bit_count()) for byte in range(256)) + "}")
    .replace("BAND_ENTRY", str(BAND_ENTRY_BYTES))
    .replace("BAND_KEY", BAND_KEY_PREFIX)
)

_WRITE_HELPERS = """
-- Put the entry `tag .. packed .. check` (`packed`: the story number) at the tail of a packed
-- posting string, after the header (the sequence number of its last write); `moved`: drop
-- the same entry written earlier first (a band entry with another check stays: it stands
-- for another of the story's simhashes). Over `cap` entries, or with expired stories at the
-- head, the head is cut.
local function post(key, tag, packed, check, header, moved, cap, ttl, prefix)
  local entry = tag .. packed .. check
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
  elseif size < SMALL_KEY then
    redis.call('SET', key, header .. string.sub(redis.call('GET', key), 5) .. entry)
  else
    redis.call('SETRANGE', key, 0, header)
    redis.call('APPEND', key, entry)
  end
  local count = (redis.call('STRLEN', key) - 4) / step
  local drop = math.max(0, count - cap)
  if count > 1 then
    local head = redis.call('GETRANGE', key, 4 + drop * step, 4 + drop * step + step - 1)
    if redis.call('EXISTS', prefix .. 'r:' .. num(head, #tag + 1)) == 0 then cut = true end
  end
  if drop > 0 or cut then
    local s = redis.call('GET', key)
    local checks = 0
    while cut and checks < HEAD_CHECKS and drop < count - 1 do
      local n = num(s, 5 + drop * step + #tag)
      if redis.call('EXISTS', prefix .. 'r:' .. n) == 1 then break end
      drop = drop + 1
      checks = checks + 1
    end
    redis.call('SET', key, header .. string.sub(s, 5 + drop * step))
  end
  redis.call('EXPIRE', key, ttl)
end
-- Raise a token's story count by `add` and note `languages` (comma-separated) for it.
local function count_token(prefix, token, add, languages, ttl)
  local stats = prefix .. 'd:' .. bucket(token)
  local count, seen = stat(redis.call('HGET', stats, token))
  local changed = add > 0
  for _, language in ipairs(split(languages, ',')) do
    if not seen then
      seen = language; changed = true
    elseif not string.find(',' .. seen .. ',', ',' .. language .. ',', 1, true) then
      seen = seen .. ',' .. language; changed = true
    end
  end
  if changed then
    redis.call('HSET', stats, token, (count + add) .. ' ' .. seen)
    redis.call('EXPIRE', stats, ttl)
  end
end
"""

_COMMIT_SCRIPT = (
    _LUA_HELPERS
    + _WRITE_HELPERS.replace("HEAD_CHECKS", str(POSTING_HEAD_CHECKS)).replace(
        "SMALL_KEY", str(POSTING_SMALL_KEY)
    )
    + """
-- KEYS: 1 seq, 2 stories, 3 article, 4 members, 5 open stories, then the posting keys
--       written, then the posting keys only guarded
-- ARGV: 1 observed version, 2 story number ('' = new story), 3 expected story version,
--       4 story record (after its version), 5 article record (after the story number),
--       6 member JSON, 7 ttl (s), 8 posting cap, 9 language, 10 key prefix,
--       11 number of written posting keys, 12 story id, 13 closes at (epoch s),
--       14 open-stories ttl (s), 15 number of new tokens, then one tag per written key,
--       then one check per written key, then the new tokens, then the story's anchors
local existing = redis.call('GET', KEYS[3])
if existing then return {'existing', existing} end
local observed, ttl, cap = tonumber(ARGV[1]), tonumber(ARGV[7]), tonumber(ARGV[8])
local prefix, written, fresh = ARGV[10], tonumber(ARGV[11]), tonumber(ARGV[15])
local number = ARGV[2]
if number == '' then
  for i = 6, #KEYS do
    local header = redis.call('GETRANGE', KEYS[i], 0, 3)
    if #header == 4 and num(header, 1) > observed then return {'conflict', ''} end
  end
else
  local record = redis.call('GET', prefix .. 'r:' .. number)
  if not record or split(record, '\\t')[1] ~= ARGV[3] then return {'conflict', ''} end
end
local seq = redis.call('INCR', KEYS[1])
local moved = number ~= ''
if not moved then
  number = tostring(seq)
  redis.call('INCR', KEYS[2])
end
redis.call('SET', prefix .. 'r:' .. number, seq .. '\\t' .. ARGV[4], 'EX', ttl)
redis.call('SET', KEYS[3], number .. '\\t' .. ARGV[5], 'EX', ttl)
redis.call('RPUSH', KEYS[4], ARGV[6])
redis.call('EXPIRE', KEYS[4], ttl)
redis.call('ZADD', KEYS[5], tonumber(ARGV[13]), ARGV[12])
redis.call('EXPIRE', KEYS[5], tonumber(ARGV[14]))
local header, packed = pack(seq), pack(tonumber(number))
for i = 1, written do
  post(KEYS[5 + i], ARGV[15 + i], packed, ARGV[15 + written + i], header, moved, cap, ttl, prefix)
end
local new = {}
for i = 16 + 2 * written, 15 + 2 * written + fresh do new[ARGV[i]] = true end
for i = 16 + 2 * written + fresh, #ARGV do
  count_token(prefix, ARGV[i], new[ARGV[i]] and 1 or 0, ARGV[9], ttl)
end
for i = 1, 2 do redis.call('EXPIRE', KEYS[i], ttl) end
return {'ok', number}
"""
)

_BULK_SCRIPT = (
    _LUA_HELPERS
    + """
-- Bulk load of new stories whose numbers the caller reserved (INCRBY seq): the same records,
-- packed posting entries and token counts as the commit script writes one story at a time.
-- ARGV: 1 key prefix, 2 header (packed last sequence number), 3 posting cap, 4 ttl (s),
--       5 open-stories ttl (s), 6 number of stories, 7 number of posting keys, then per story
--       (number, story record, article id, article record, story id, member JSON, closes at),
--       then per posting key (key suffix, packed entries, entry size), then per token
--       (token, its bucket, story count, languages)
local prefix, header, cap, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local open_ttl, stories, keys = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local first_key = 8 + 7 * stories
local closing = {}
for i = 8, first_key - 1, 7 do
  redis.call('SET', prefix .. 'r:' .. ARGV[i], ARGV[i] .. '\t' .. ARGV[i + 1], 'EX', ttl)
  redis.call('SET', prefix .. 'a:' .. ARGV[i + 2], ARGV[i] .. '\t' .. ARGV[i + 3], 'EX', ttl)
  local members = prefix .. 'm:' .. ARGV[i + 4]
  redis.call('RPUSH', members, ARGV[i + 5])
  redis.call('EXPIRE', members, ttl)
  closing[#closing + 1] = ARGV[i + 6]
  closing[#closing + 1] = ARGV[i + 4]
end
for i = 1, #closing, 1000 do
  redis.call('ZADD', prefix .. 'open', unpack(closing, i, math.min(#closing, i + 999)))
end
redis.call('EXPIRE', prefix .. 'open', open_ttl)
for i = first_key, first_key - 1 + 3 * keys, 3 do
  local key, step = prefix .. ARGV[i], tonumber(ARGV[i + 2])
  local size = redis.call('STRLEN', key)
  if size >= SMALL_KEY then
    redis.call('SETRANGE', key, 0, header)
    local drop = (redis.call('APPEND', key, ARGV[i + 1]) - 4) / step - cap
    if drop > 0 then
      redis.call('SET', key, header .. string.sub(redis.call('GET', key), 5 + drop * step))
    end
  elseif size > 0 then
    local entries = string.sub(redis.call('GET', key), 5) .. ARGV[i + 1]
    local drop = math.max(0, #entries / step - cap)
    redis.call('SET', key, header .. string.sub(entries, 1 + drop * step))
  else
    local drop = math.max(0, #ARGV[i + 1] / step - cap)
    redis.call('SET', key, header .. string.sub(ARGV[i + 1], 1 + drop * step))
  end
  redis.call('EXPIRE', key, ttl)
end
for i = first_key + 3 * keys, #ARGV, 4 do
  local stats = prefix .. 'd:' .. ARGV[i + 1]
  local count, seen = stat(redis.call('HGET', stats, ARGV[i]))
  for _, language in ipairs(split(ARGV[i + 3], ',')) do
    if not seen then
      seen = language
    elseif not string.find(',' .. seen .. ',', ',' .. language .. ',', 1, true) then
      seen = seen .. ',' .. language
    end
  end
  redis.call('HSET', stats, ARGV[i], (count + tonumber(ARGV[i + 2])) .. ' ' .. seen)
  redis.call('EXPIRE', stats, ttl)
end
redis.call('INCRBY', KEYS[2], stories)
for i = 1, 2 do redis.call('EXPIRE', KEYS[i], ttl) end
return stories
""".replace("SMALL_KEY", str(POSTING_SMALL_KEY))
)


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _from_epoch(seconds: str) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC)


def encode_story(story: StoryState) -> str:
    """A story summary as stored after its version: tab-separated, compact, and readable by
    the Lua lookup (field 4 last seen, 6 simhashes, 9 anchors)."""
    anchors = " ".join(
        token if count == 1 else f"{token}/{count}" for token, count in story.anchors
    )
    return "\t".join(
        [
            story.story_id,
            str(_epoch(story.first_seen)),
            str(_epoch(story.last_seen)),
            ",".join(story.languages),
            ",".join(f"{value:016x}" for value in story.simhashes),
            ",".join(story.content_hashes),
            str(story.members),
            anchors,
        ]
    )


def decode_story(record: str) -> StoryState:
    """The inverse of `encode_story`, with the version the commit script put in front."""
    version, story_id, first, last, languages, simhashes, hashes, members, anchors = record.split(
        "\t"
    )
    items = [item.partition("/") for item in anchors.split(" ") if item]
    return StoryState(
        story_id=story_id,
        first_seen=_from_epoch(first),
        last_seen=_from_epoch(last),
        languages=tuple(languages.split(",")),
        simhashes=tuple(int(value, 16) for value in simhashes.split(",")),
        content_hashes=tuple(hashes.split(",")),
        anchors=tuple((token, int(count or 1)) for token, _, count in items),
        members=int(members),
        version=int(version),
    )


def _encode_placement(decision: Decision) -> str:
    return "\t".join([decision.story_id, decision.reason, repr(decision.similarity)])


def _decode_placement(record: str) -> Decision:
    # records written before 2026-12 hold a fifth, always empty field
    _number, story_id, reason, similarity = record.split("\t")[:4]
    join_reason: JoinReason
    if reason == "exact":
        join_reason = "exact"
    elif reason == "near_duplicate":
        join_reason = "near_duplicate"
    elif reason == "translation":
        join_reason = "translation"
    else:
        join_reason = "new"
    return Decision(story_id, False, join_reason, float(similarity))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


class RedisStoryIndex:
    """The story index in Redis, shared by detector replicas.

    Every key shares the hash tag `{prefix}` so each script runs on one Cluster slot. Posting
    lists are packed strings in a bounded number of keys (1,024 band keys, 4,096 token
    buckets): a 4-byte header (sequence number of the key's last write, for the optimistic
    check) then entries of a tag (a band's 2 bytes, or 4 bytes of the token's sha1), a
    4-byte story number and, in a band key, the story simhash's next two bands (4 bytes), oldest
    first. Token statistics ("count languages") live in 1,024 small hashes. Story records,
    placements and member lists expire `story_ttl_seconds` after their last write; posting
    entries of expired stories are cut from the head of a key when it is next written, and
    every key is capped.
    """

    def __init__(
        self,
        redis: redis.asyncio.Redis,
        *,
        prefix: str = "newsmon:detector",
        story_ttl_seconds: int = 7 * 24 * 3600,
        window_hours: float = DEFAULT_PARAMS.window_hours,
    ) -> None:
        self._redis = redis
        self._tag = "{" + prefix + "}:"
        self._ttl = story_ttl_seconds
        self._window_hours = window_hours
        self._lookup = redis.register_script(_LOOKUP_SCRIPT)
        self._commit = redis.register_script(_COMMIT_SCRIPT)
        self._bulk = redis.register_script(_BULK_SCRIPT)

    def _key(self, suffix: str) -> str:
        return self._tag + suffix

    def _members_key(self, story_id: str) -> str:
        return self._key("m:" + story_id)

    def _counters(self, article_id: str) -> list[str]:
        return [self._key("seq"), self._key("stories"), self._key("a:" + article_id)]

    async def lookup(self, fp: Fingerprint, params: GroupingParams, now: datetime) -> Lookup:
        """One script call: candidate stories ranked server-side, with the frequencies."""
        cutoff = now - timedelta(hours=params.window_hours)
        args: list[str | int | float] = [
            params.near_duplicate_max_distance,
            fp.simhash >> 32,
            fp.simhash & 0xFFFFFFFF,
            params.query_tokens,
            params.max_candidates,
            IDF_PRIOR_DOCUMENTS,
            POSTING_FETCH,
            _epoch(cutoff),
            self._tag,
            *(token for token, _ in fp.anchors),
        ]
        reply = await self._lookup(keys=self._counters(fp.article_id), args=args)
        version = int(reply[0])
        if reply[1] is not None:
            return Lookup(existing=_decode_placement(_text(reply[1])), version=version)
        _, _, documents, token_lines, records = reply
        frequencies: dict[str, int] = {}
        languages: dict[str, str] = {}
        for line in _text(token_lines).split("\n"):
            token, _, value = line.partition(" ")
            if value:
                count, _, seen_in = value.partition(" ")
                languages[token] = seen_in
                if int(count) > 0:
                    frequencies[token] = int(count)
        stats = TokenStats(int(documents), frequencies, languages)
        candidates = tuple(decode_story(_text(raw)) for raw in records[1::2])
        numbers = {
            story.story_id: int(number)
            for story, number in zip(candidates, records[0::2], strict=True)
        }
        return Lookup(
            None,
            candidates,
            stats,
            version,
            numbers,
            tuple(_lookup_keys(fp, stats, params)),
        )

    def _commit_call(
        self, fp: Fingerprint, decision: Decision, lookup: Lookup, joined_at: datetime
    ) -> tuple[list[str], list[str | int | bytes]]:
        write = _plan(fp, decision, lookup, joined_at)
        written = [posting_slot(k) for k in write.posting_keys]
        guarded = dict.fromkeys(
            posting_slot(k)[0] for k in write.guarded_keys if k not in write.posting_keys
        )
        keys = [
            *self._counters(fp.article_id),
            self._members_key(decision.story_id),
            self._key("open"),
            *(self._key(key) for key, _ in written),
            *(self._key(key) for key in guarded),
        ]
        number = "" if decision.created else str(lookup.numbers[decision.story_id])
        window_seconds = math.ceil(self._window_hours * 3600)
        args: list[str | int | bytes] = [
            lookup.version,
            number,
            "" if decision.created else str(write.story.version),
            encode_story(write.story),
            _encode_placement(decision),
            _member(fp, decision, joined_at).model_dump_json(),
            self._ttl,
            POSTING_KEY_CAP,
            fp.lang or UNKNOWN_LANGUAGE,
            self._tag,
            len(written),
            decision.story_id,
            _epoch(write.story.last_seen) + window_seconds,
            window_seconds,
            len(write.new_tokens),
            *(tag for _, tag in written),
            *(posting_check(key, fp.simhash) for key in write.posting_keys),
            *write.new_tokens,
            *(token for token, _ in write.story.anchors),
        ]
        return keys, args

    async def commit(
        self, fp: Fingerprint, decision: Decision, lookup: Lookup, joined_at: datetime
    ) -> Decision | None:
        """One script call: idempotency check, conflict check, then every write (including
        the story's close time in the open-stories set)."""
        keys, args = self._commit_call(fp, decision, lookup, joined_at)
        outcome, payload = await self._commit(keys=keys, args=args)
        status = _text(outcome)
        if status == "conflict":
            return None
        if status == "existing":
            return _decode_placement(_text(payload))
        return decision

    async def create_stories(self, fps: Sequence[Fingerprint], at: datetime) -> None:
        """Bulk load: one new story per fingerprint, with the same keys and values as the
        commit script would write, in three round trips per batch (the story counts of the
        batch's anchors, so each story keeps and posts its rarest ones as a commit would;
        reserve story numbers; one script call). For backfills and benchmarks; placements of
        the same articles by a replica at the same time would race."""
        if not fps:
            return
        frequencies, documents = await self._story_counts(
            {token for fp in fps for token, _ in fp.anchors}
        )
        base = int(await self._redis.incrby(self._key("seq"), len(fps))) - len(fps)
        window_seconds = math.ceil(self._window_hours * 3600)
        stories: list[str | int | bytes] = []
        entries: dict[str, list[bytes]] = {}
        counts: dict[str, int] = {}
        languages: dict[str, dict[str, None]] = {}
        for offset, fp in enumerate(fps):
            number = base + offset + 1
            decision = Decision(new_story_id(fp.article_id), True, "new", 0.0)
            so_far = Lookup(None, (), TokenStats(documents + offset, frequencies), version=0)
            write = _plan(fp, decision, so_far, at)
            for token in write.new_tokens:
                frequencies[token] = frequencies.get(token, 0) + 1
            packed = number.to_bytes(4, "big")
            for logical_key in write.posting_keys:
                key, tag = posting_slot(logical_key)
                check = posting_check(logical_key, fp.simhash)
                entries.setdefault(key, []).append(tag + packed + check)
            language = fp.lang or UNKNOWN_LANGUAGE
            for token, _ in write.story.anchors:
                counts[token] = counts.get(token, 0) + 1
                languages.setdefault(token, {})[language] = None
            stories += [
                number,
                encode_story(write.story),
                fp.article_id,
                _encode_placement(decision),
                decision.story_id,
                _member(fp, decision, at).model_dump_json(),
                _epoch(write.story.last_seen) + window_seconds,
            ]
        args: list[str | int | bytes] = [
            self._tag,
            (base + len(fps)).to_bytes(4, "big"),
            POSTING_KEY_CAP,
            self._ttl,
            window_seconds,
            len(fps),
            len(entries),
            *stories,
        ]
        for key, chunk in entries.items():
            args += [key, b"".join(chunk), len(chunk[0])]
        for token, count in counts.items():
            args += [token, stats_bucket(token), count, ",".join(languages[token])]
        await self._bulk(keys=self._counters(""), args=args)

    async def _story_counts(self, tokens: set[str]) -> tuple[dict[str, int], int]:
        """How many stories carry each token, and how many stories there are, as stored."""
        by_bucket: dict[str, list[str]] = {}
        for token in tokens:
            by_bucket.setdefault(stats_bucket(token), []).append(token)
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(self._key("stories"))
        for bucket, names in by_bucket.items():
            pipe.hmget(self._key("d:" + bucket), names)
        documents, *replies = await pipe.execute()
        frequencies: dict[str, int] = {}
        for names, values in zip(by_bucket.values(), replies, strict=True):
            for token, value in zip(names, values, strict=True):
                if value is not None:
                    frequencies[token] = int(_text(value).partition(" ")[0])
        return frequencies, int(documents or 0)

    async def snapshot(self, story_id: str) -> StorySnapshot | None:
        """The story's members in join order, or None once expired."""
        raw_members = await self._redis.lrange(self._members_key(story_id), 0, -1)
        members = [StoryMember.model_validate_json(raw) for raw in raw_members]
        return _snapshot(story_id, members, self._window_hours)


async def place_article(
    index: StoryIndex,
    article: ArticleIn,
    now: datetime,
    *,
    params: GroupingParams = DEFAULT_PARAMS,
) -> Decision:
    """Fingerprint, look up candidates, decide, commit; look up again if a rival commit won.

    Idempotent: an article placed before keeps its story and comes back with created=False.
    """
    fp = fingerprint(article)
    for _ in range(MAX_PLACE_ATTEMPTS):
        lookup = await index.lookup(fp, params, now)
        if lookup.existing is not None:
            return lookup.existing
        decision = assign_story(fp, lookup.candidates, now, stats=lookup.stats, params=params)
        placement = await index.commit(fp, decision, lookup, now)
        if placement is not None:
            return placement
    raise PlacementConflictError(
        f"article {article.article_id} lost {MAX_PLACE_ATTEMPTS} commits in a row"
    )


class BandTable:
    """In-process near-duplicate lookup over 64-bit simhashes: four 16-bit band tables, so any
    two hashes within 3 bits share a band exactly (the layout of the Redis band postings).

    The four tables are one list of 4 x 65,536 slots (band number in bits 16-17 of the slot,
    band value below): a slot holds the distinct simhashes carrying that band value, and keys
    hang off the simhash. A lookup is four list reads (no hashing; 2 MB of slots, reused),
    one tuple of candidates and one bit count per candidate.
    """

    def __init__(self) -> None:
        self._slots: list[tuple[int, ...]] = [()] * (SIMHASH_BANDS << BAND_BITS)
        self._keys: dict[int, tuple[str, ...]] = {}

    def add(self, key: str, simhash: int) -> None:
        """Index `simhash` under `key`."""
        keys = self._keys.get(simhash)
        if keys is not None:
            self._keys[simhash] = (*keys, key)
            return
        self._keys[simhash] = (key,)
        slots = self._slots
        for band, value in enumerate(simhash_bands(simhash)):
            slot = band << BAND_BITS | value
            slots[slot] = (*slots[slot], simhash)

    def near(self, simhash: int, max_distance: int = 3) -> set[str]:
        """Keys whose simhash is within `max_distance` bits (exact for up to 3 bits)."""
        slots = self._slots
        candidates = (
            slots[simhash & 0xFFFF]
            + slots[0x10000 | (simhash >> 16) & 0xFFFF]
            + slots[0x20000 | (simhash >> 32) & 0xFFFF]
            + slots[0x30000 | simhash >> 48]
        )
        keys = self._keys
        found: set[str] = set()
        for value in candidates:
            if (value ^ simhash).bit_count() <= max_distance:
                found.update(keys[value])
        return found
