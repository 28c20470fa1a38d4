"""The story index: bounded story summaries and their posting lists, in memory or in Redis.

Posting lists hold story numbers, not article ids: one entry per story under each of its
four 16-bit simhash bands and its most shared anchors, scored by the commit sequence number
of the story's last write, capped, and expiring with the story. A story is one summary
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

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from contracts.messages import JoinReason, StoryMember, StorySnapshot
from services.detector.core import (
    DEFAULT_PARAMS,
    IDF_PRIOR_DOCUMENTS,
    ArticleIn,
    Decision,
    Fingerprint,
    GroupingParams,
    Placement,
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
"""Stories kept per posting list; the least recently active fall off."""
MAX_PLACE_ATTEMPTS = 8
UNKNOWN_LANGUAGE = "?"


class PlacementConflictError(RuntimeError):
    """Other writers kept changing the same posting lists; the article was not placed."""


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the index knows that is relevant to one fingerprint, at commit sequence `version`."""

    existing: Placement | None
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
    ) -> Placement | None:
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


def _placement(decision: Decision) -> Placement:
    return Placement(
        story_id=decision.story_id,
        created=decision.created,
        reason=decision.reason,
        similarity=decision.similarity,
        matched_article_id=decision.matched_article_id,
    )


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

    Same posting lists, caps and ranking as the Redis index, so both decide alike.
    """

    def __init__(self, *, window_hours: float = DEFAULT_PARAMS.window_hours) -> None:
        self._window_hours = window_hours
        self._placements: dict[str, Placement] = {}
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
        stats = TokenStats(
            self._documents,
            MappingProxyType(self._frequencies),
            MappingProxyType(self._languages),
        )
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
    ) -> Placement | None:
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
        placement = _placement(decision)
        self._placements[fp.article_id] = placement
        self._members.setdefault(decision.story_id, []).append(_member(fp, decision, joined_at))
        return placement

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
"""

_LOOKUP_SCRIPT = (
    _LUA_HELPERS
    + """
-- KEYS: 1 seq, 2 df, 3 languages, 4 stories, 5 article, 6-9 bands, 10.. token postings
-- ARGV: 1 max distance, 2-3 simhash high/low 32 bits, 4 query tokens, 5 max candidates,
--       6 idf prior, 7 posting fetch, 8 oldest open last-seen (epoch s), 9 record key prefix,
--       10.. the article's anchors (aligned with KEYS 10..)
local version = tonumber(redis.call('GET', KEYS[1]) or '0')
local existing = redis.call('GET', KEYS[5])
if existing then return {version, existing} end
local documents = tonumber(redis.call('GET', KEYS[4]) or '0')
local maxd, hi, lo = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local nquery, ncand = tonumber(ARGV[4]), tonumber(ARGV[5])
local prior, fetch, cutoff = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local rprefix = ARGV[9]
local tokens = {}
for i = 10, #ARGV do tokens[#tokens + 1] = ARGV[i] end
local pop8 = {POP8}
local function pop32(x)
  return pop8[bit.band(x, 255) + 1] + pop8[bit.band(bit.rshift(x, 8), 255) + 1]
    + pop8[bit.band(bit.rshift(x, 16), 255) + 1] + pop8[bit.rshift(x, 24) + 1]
end
local parsed, raw = {}, {}
local function story(n)
  local f = parsed[n]
  if f == nil then
    local record = redis.call('GET', rprefix .. n)
    f = false
    if record then
      f = split(record, '\\t')
      if tonumber(f[4]) < cutoff then f = false else raw[n] = record end
    end
    parsed[n] = f
  end
  return f
end
local chosen, order = {}, {}
for b = 6, 9 do
  for _, id in ipairs(redis.call('ZREVRANGE', KEYS[b], 0, fetch - 1)) do
    local n = tonumber(id)
    if not chosen[n] then
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
local dfs = {}
if #tokens > 0 then dfs = redis.call('HMGET', KEYS[2], unpack(tokens)) end
local known = {}
for i = 1, #tokens do if dfs[i] then known[#known + 1] = i end end
table.sort(known, function(a, b)
  local da, db = tonumber(dfs[a]), tonumber(dfs[b])
  if da ~= db then return da < db end
  return tokens[a] < tokens[b]
end)
local scores, ranked = {}, {}
for q = 1, math.min(nquery, #known) do
  local i = known[q]
  local weight = math.log((documents + prior + 1) / (tonumber(dfs[i]) + 0.5))
  for _, id in ipairs(redis.call('ZREVRANGE', KEYS[9 + i], 0, fetch - 1)) do
    local n = tonumber(id)
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
local frequencies, languages = {}, {}
if #all > 0 then
  frequencies = redis.call('HMGET', KEYS[2], unpack(all))
  languages = redis.call('HMGET', KEYS[3], unpack(all))
end
return {version, false, documents, all, frequencies, languages, records}
"""
).replace("{POP8}", "{" + ",".join(str(byte.bit_count()) for byte in range(256)) + "}")

_COMMIT_SCRIPT = (
    _LUA_HELPERS
    + """
-- KEYS: 1 seq, 2 df, 3 languages, 4 stories, 5 article, 6 members, then the posting lists
--       written, then the posting lists only guarded
-- ARGV: 1 observed version, 2 story number ('' = new story), 3 expected story version,
--       4 story record (after its version), 5 article record (after the story number),
--       6 member JSON, 7 ttl (s), 8 posting cap, 9 language, 10 record key prefix,
--       11 number of written posting lists, 12 number of new tokens, then the new tokens,
--       then the story's anchors
local existing = redis.call('GET', KEYS[5])
if existing then return {'existing', existing} end
local observed, ttl, cap = tonumber(ARGV[1]), tonumber(ARGV[7]), tonumber(ARGV[8])
local written = tonumber(ARGV[11])
local number = ARGV[2]
if number == '' then
  for i = 7, #KEYS do
    local top = redis.call('ZREVRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    if top[2] and tonumber(top[2]) > observed then return {'conflict', ''} end
  end
else
  local record = redis.call('GET', ARGV[10] .. number)
  if not record or split(record, '\\t')[1] ~= ARGV[3] then return {'conflict', ''} end
end
local seq = redis.call('INCR', KEYS[1])
if number == '' then
  number = tostring(seq)
  redis.call('INCR', KEYS[4])
end
redis.call('SET', ARGV[10] .. number, seq .. '\\t' .. ARGV[4], 'EX', ttl)
redis.call('SET', KEYS[5], number .. '\\t' .. ARGV[5], 'EX', ttl)
redis.call('RPUSH', KEYS[6], ARGV[6])
redis.call('EXPIRE', KEYS[6], ttl)
for i = 7, 6 + written do
  redis.call('ZADD', KEYS[i], seq, number)
  redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -(cap + 1))
  redis.call('EXPIRE', KEYS[i], ttl)
end
local fresh = tonumber(ARGV[12])
for i = 13, 12 + fresh do redis.call('HINCRBY', KEYS[2], ARGV[i], 1) end
local language = ARGV[9]
local anchors = {}
for i = 13 + fresh, #ARGV do anchors[#anchors + 1] = ARGV[i] end
if #anchors > 0 then
  local seen_in = redis.call('HMGET', KEYS[3], unpack(anchors))
  local updates = {}
  for i, token in ipairs(anchors) do
    local seen = seen_in[i]
    if not seen then
      updates[#updates + 1] = token; updates[#updates + 1] = language
    elseif not string.find(',' .. seen .. ',', ',' .. language .. ',', 1, true) then
      updates[#updates + 1] = token; updates[#updates + 1] = seen .. ',' .. language
    end
  end
  if #updates > 0 then redis.call('HSET', KEYS[3], unpack(updates)) end
end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
return {'ok', number}
"""
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
    return "\t".join(
        [
            decision.story_id,
            decision.reason,
            repr(decision.similarity),
            decision.matched_article_id or "",
        ]
    )


def _decode_placement(record: str) -> Placement:
    _number, story_id, reason, similarity, matched = record.split("\t")
    join_reason: JoinReason
    if reason == "exact":
        join_reason = "exact"
    elif reason == "near_duplicate":
        join_reason = "near_duplicate"
    elif reason == "translation":
        join_reason = "translation"
    else:
        join_reason = "new"
    return Placement(story_id, False, join_reason, float(similarity), matched or None)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


class RedisStoryIndex:
    """The story index in Redis, shared by detector replicas.

    Every key shares the hash tag `{prefix}` so each script runs on one Cluster slot, and
    every key expires `story_ttl_seconds` after its last write. Anchor story frequencies and
    languages are two hashes bounded by the vocabulary of (four-letter) names and numbers.
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

    def _key(self, suffix: str) -> str:
        return self._tag + suffix

    def _members_key(self, story_id: str) -> str:
        return self._key("m:" + story_id)

    def _counters(self, article_id: str) -> list[str]:
        return [
            self._key("seq"),
            self._key("df"),
            self._key("lang"),
            self._key("stories"),
            self._key("a:" + article_id),
        ]

    async def lookup(self, fp: Fingerprint, params: GroupingParams, now: datetime) -> Lookup:
        """One script call: candidate stories ranked server-side, with the frequencies."""
        tokens = [token for token, _ in fp.anchors]
        cutoff = now - timedelta(hours=params.window_hours)
        keys = [
            *self._counters(fp.article_id),
            *(self._key(k) for k in band_keys(fp.simhash)),
            *(self._key(token_key(t)) for t in tokens),
        ]
        args: list[str | int | float] = [
            params.near_duplicate_max_distance,
            fp.simhash >> 32,
            fp.simhash & 0xFFFFFFFF,
            params.query_tokens,
            params.max_candidates,
            IDF_PRIOR_DOCUMENTS,
            POSTING_FETCH,
            _epoch(cutoff),
            self._key("r:"),
            *tokens,
        ]
        reply = await self._lookup(keys=keys, args=args)
        version = int(reply[0])
        if reply[1] is not None:
            return Lookup(existing=_decode_placement(_text(reply[1])), version=version)
        _, _, documents, all_tokens, counts, seen_in, records = reply
        names = [_text(t) for t in all_tokens]
        frequencies = {t: int(c) for t, c in zip(names, counts, strict=True) if c is not None}
        languages = {t: _text(s) for t, s in zip(names, seen_in, strict=True) if s is not None}
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
    ) -> tuple[list[str], list[str | int]]:
        write = _plan(fp, decision, lookup, joined_at)
        guarded_only = [k for k in write.guarded_keys if k not in write.posting_keys]
        keys = [
            *self._counters(fp.article_id),
            self._members_key(decision.story_id),
            *(self._key(k) for k in write.posting_keys),
            *(self._key(k) for k in guarded_only),
        ]
        number = "" if decision.created else str(lookup.numbers[decision.story_id])
        args: list[str | int] = [
            lookup.version,
            number,
            "" if decision.created else str(write.story.version),
            encode_story(write.story),
            _encode_placement(decision),
            _member(fp, decision, joined_at).model_dump_json(),
            self._ttl,
            POSTING_CAP,
            fp.lang or UNKNOWN_LANGUAGE,
            self._key("r:"),
            len(write.posting_keys),
            len(write.new_tokens),
            *write.new_tokens,
            *(token for token, _ in write.story.anchors),
        ]
        return keys, args

    async def commit(
        self, fp: Fingerprint, decision: Decision, lookup: Lookup, joined_at: datetime
    ) -> Placement | None:
        """One script call: idempotency check, conflict check, then every write."""
        keys, args = self._commit_call(fp, decision, lookup, joined_at)
        outcome, payload = await self._commit(keys=keys, args=args)
        status = _text(outcome)
        if status == "conflict":
            return None
        if status == "existing":
            return _decode_placement(_text(payload))
        return _placement(decision)

    async def create_stories(self, fps: Sequence[Fingerprint], at: datetime) -> None:
        """Bulk load: one new story per fingerprint, through the commit script (so with the
        same keys as in service), pipelined; for backfills and benchmarks on an index that
        no replica writes at the same time."""
        lookup = Lookup(None, (), TokenStats(), version=1 << 52)
        pipe = self._redis.pipeline(transaction=False)
        for fp in fps:
            decision = Decision(new_story_id(fp.article_id), True, "new", 0.0)
            keys, args = self._commit_call(fp, decision, lookup, at)
            await self._commit(keys=keys, args=args, client=pipe)
        await pipe.execute()

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
) -> Placement:
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

    Each band table maps a band value to the distinct simhashes carrying it; keys hang off the
    simhash, so a lookup touches four small lists and one bit count per candidate.
    """

    def __init__(self) -> None:
        self._bands: tuple[dict[int, list[int]], ...] = ({}, {}, {}, {})
        self._keys: dict[int, tuple[str, ...]] = {}

    def add(self, key: str, simhash: int) -> None:
        """Index `simhash` under `key`."""
        keys = self._keys.get(simhash)
        if keys is not None:
            self._keys[simhash] = (*keys, key)
            return
        self._keys[simhash] = (key,)
        for table, band in zip(self._bands, simhash_bands(simhash), strict=True):
            table.setdefault(band, []).append(simhash)

    def near(self, simhash: int, max_distance: int = 3) -> set[str]:
        """Keys whose simhash is within `max_distance` bits (exact for up to 3 bits)."""
        first, second, third, fourth = self._bands
        keys = self._keys
        return {
            key
            for value in (
                *first.get(simhash & 0xFFFF, ()),
                *second.get((simhash >> 16) & 0xFFFF, ()),
                *third.get((simhash >> 32) & 0xFFFF, ()),
                *fourth.get(simhash >> 48, ()),
            )
            if (value ^ simhash).bit_count() <= max_distance
            for key in keys[value]
        }
