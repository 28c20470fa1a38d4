"""The story index: bounded story summaries and their posting lists, in memory or in Redis.

Posting lists hold story numbers, not article ids: one entry per story under each of its
four 16-bit simhash bands and its rarest anchors, most recently written last, capped. A story
is one summary (`StoryState`: a few simhashes and content hashes, its top anchors) whatever
its size.

Both stores follow one optimistic protocol so `place_article` is the single decision path:
`lookup` returns candidate stories plus the commit sequence number it observed; `commit`
writes the decision only if it is still valid (a new story: no commit since then touched the
posting lists it read or writes; a join: the story was not rewritten since), else it reports a
conflict and the caller looks up again. What a commit writes is planned once for both
(`plan_write`). Both count anchors in statistics generations (`Generation`): a commit counts in
the generation of its time, a lookup reads that one and the one before, so the statistics cover
the last one to two periods and older counts are dropped whole. This module holds the
protocol, the planning and the in-memory store; the Redis store is
`redis_index.RedisStoryIndex` (its data format: `stored`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from contracts.messages import StoryMember, StorySnapshot
from services.detector.core import (
    BAND_BITS,
    DEFAULT_PARAMS,
    SIMHASH_BANDS,
    UNKNOWN_LANGUAGE,
    ArticleIn,
    Decision,
    Fingerprint,
    GroupingParams,
    StoryState,
    TokenStats,
    assign_story,
    fingerprint,
    hamming,
    merge_languages,
    new_anchors,
    posted_tokens,
    query_tokens,
    rank_candidates,
    simhash_bands,
    story_after_join,
)

POSTING_FETCH = 64
"""Most recent stories read from one posting list per lookup."""
POSTING_CAP = 64
"""Stories kept per posting list in memory; the least recently active fall off."""
MAX_PLACE_ATTEMPTS = 8
STATS_PERIOD_SECONDS = 7 * 24 * 3600
"""Length of a statistics generation, seconds (`NEWSMON_DETECTOR_STATS_PERIOD_SECONDS`): the
detector makes it at least the time a story stays open, so that an open story's anchors are
counted in a generation still read (its last write counted it) and it is found by them."""


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


@dataclass(frozen=True, slots=True)
class Generation:
    """A statistics generation: `period` seconds from `start` (epoch seconds, a multiple of
    `period`), so every replica names the one its clock is in alike, without coordination."""

    start: int
    period: int

    @property
    def previous(self) -> int:
        """The start of the generation before, which lookups read too (epoch seconds)."""
        return self.start - self.period

    def ttl(self, now: int) -> int:
        """Seconds from `now` (epoch seconds) until this generation is no longer read: until
        the end of the next one, when it stops being the previous one."""
        return self.start + 2 * self.period - now


def generation(now: datetime, period_seconds: int) -> Generation:
    """The statistics generation `now` falls in."""
    seconds = epoch(now)
    return Generation(seconds - seconds % period_seconds, period_seconds)


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


def epoch(moment: datetime) -> int:
    """Whole epoch seconds."""
    return int(moment.timestamp())


def story_member(fp: Fingerprint, decision: Decision, joined_at: datetime) -> StoryMember:
    """What a story keeps of one member."""
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


def story_snapshot(
    story_id: str, members: Sequence[StoryMember], window_hours: float
) -> StorySnapshot | None:
    """A story as its members show it (None without members)."""
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
class Write:
    """Everything one commit writes, computed once for both stores."""

    story: StoryState
    posting_keys: tuple[str, ...]
    guarded_keys: tuple[str, ...]
    """Posting lists that must be unchanged since the lookup for a new story to be created."""
    counted: bool
    """Whether the story counts once more in the statistics generation written: it is new, or
    written for the first time in this generation (it was counted in an earlier one)."""
    counted_tokens: tuple[str, ...]
    """Anchors whose story counts rise by one: those the story did not carry before, or all of
    them when the story counts once more."""


def plan_write(
    fp: Fingerprint, decision: Decision, lookup: Lookup, joined_at: datetime, counted_in: Generation
) -> Write:
    """What storing `decision` for `fp` writes, given the lookup it was decided on; its
    statistics go to `counted_in`. A story written again in a later generation is counted
    there again, so its anchors stay known (and it stays found by them) while it is open."""
    before = next((s for s in lookup.candidates if s.story_id == decision.story_id), None)
    if not decision.created and before is None:
        raise ValueError(f"story {decision.story_id} is not among the lookup's candidates")
    after = story_after_join(
        None if decision.created else before, decision.story_id, fp, joined_at, lookup.stats
    )
    keys = tuple(
        dict.fromkeys([*band_keys(fp.simhash), *map(token_key, posted_tokens(after, lookup.stats))])
    )
    counted = before is None or epoch(before.last_seen) < counted_in.start
    return Write(
        story=after,
        posting_keys=keys,
        guarded_keys=tuple(dict.fromkeys([*keys, *lookup.read_keys])),
        counted=counted,
        counted_tokens=tuple(new_anchors(None if counted else before, after)),
    )


def lookup_keys(fp: Fingerprint, queried: Sequence[str]) -> list[str]:
    """The posting lists a lookup for `fp` reads: its bands and its query tokens `queried`
    (`query_tokens`)."""
    return [*band_keys(fp.simhash), *(token_key(token) for token in queried)]


class _Statistics:
    """Token statistics in memory, kept as `count_token` in shared.lua keeps them in Redis: per
    token counted in the current generation, its story count over this generation and the one
    before, its languages, and its count in this generation alone; the previous generation's
    entries, which a token not yet counted in the current one is read from (its count alone)."""

    def __init__(self) -> None:
        self.generation: Generation | None = None
        self._current: dict[str, tuple[int, str, int]] = {}
        self._previous: dict[str, tuple[int, str, int]] = {}
        self._documents = [0, 0]
        """Stories counted in the current generation, in the previous one."""
        self._frequencies: dict[str, int] = {}
        self._languages: dict[str, str] = {}
        """What lookups read, per token (the current entry, else the previous one's)."""

    def rotate(self, at: Generation) -> Generation:
        """The generation counted in: `at` if it is a later one than the current (whose
        entries then become the previous ones; none are left after more than a period without
        a write), else the current one."""
        if self.generation is not None and at.start <= self.generation.start:
            return self.generation
        follows = self.generation is not None and at.previous == self.generation.start
        self._previous = self._current if follows else {}
        self._documents = [0, self._documents[0] if follows else 0]
        self._current = {}
        self._frequencies = {token: own for token, (_, _, own) in self._previous.items()}
        self._languages = {token: seen for token, (_, seen, _) in self._previous.items()}
        self.generation = at
        return at

    def read(self) -> TokenStats:
        """The statistics as a lookup reads them."""
        return TokenStats(sum(self._documents), self._frequencies, self._languages)

    def count_story(self, write: Write, language: str) -> None:
        """Count a story written: once more if `write.counted`, its counted tokens once more
        each, `language` for every one of its anchors."""
        self._documents[0] += write.counted
        counted = set(write.counted_tokens)
        for token, _ in write.story.anchors:
            add = int(token in counted)
            seen: str | None
            value = self._current.get(token)
            if value is not None:
                count, seen, own = value
            elif (before := self._previous.get(token)) is not None:
                count, seen, own = before[2], before[1], 0
            else:
                count, seen, own = 0, None, 0
            merged = merge_languages(seen, [language])
            if add or merged != seen:
                self._current[token] = (count + add, merged, own + add)
                self._frequencies[token] = count + add
                self._languages[token] = merged


class MemoryStoryIndex:
    """The story index in process memory: for tests and batch grouping (`newsmon group`).

    Same posting lists and ranking as the Redis index, so both decide alike: both read the
    64 most recent stories of a list (here each list keeps only those), and the same token
    statistics (`_Statistics`). An article dated before the latest statistics generation seen
    is counted in that one (a batch's dates need not be in order).
    """

    def __init__(
        self,
        *,
        window_hours: float = DEFAULT_PARAMS.window_hours,
        stats_period_seconds: int = STATS_PERIOD_SECONDS,
    ) -> None:
        self._window_hours = window_hours
        self._period = stats_period_seconds
        self._placements: dict[str, Decision] = {}
        self._stories: dict[int, StoryState] = {}
        self._numbers: dict[str, int] = {}
        self._postings: dict[str, dict[int, int]] = {}
        self._statistics = _Statistics()
        self._members: dict[str, list[StoryMember]] = {}
        self._version = 0

    def _recent(self, key: str) -> list[int]:
        return list(reversed(self._postings.get(key, {})))[:POSTING_FETCH]

    async def lookup(self, fp: Fingerprint, params: GroupingParams, now: datetime) -> Lookup:
        """Band hits within the near-duplicate distance, then the best anchor hits."""
        known = self._placements.get(fp.article_id)
        if known is not None:
            return Lookup(existing=replace(known, created=False), version=self._version)
        self._statistics.rotate(generation(now, self._period))
        stats = self._statistics.read()
        cutoff = epoch(now - timedelta(hours=params.window_hours))
        open_stories = {
            number: story
            for key in band_keys(fp.simhash)
            for number in self._recent(key)
            for story in [self._stories[number]]
            if epoch(story.last_seen) >= cutoff
        }
        chosen: list[int] = []
        for number, story in open_stories.items():
            distance = min(hamming(fp.simhash, value) for value in story.simhashes)
            if distance <= params.near_duplicate_max_distance:
                chosen.append(number)
        queried = query_tokens(fp, stats, params)
        postings = {token: self._recent(token_key(token)) for token in queried}
        for number in rank_candidates(postings, stats, params):
            if number not in chosen and epoch(self._stories[number].last_seen) >= cutoff:
                chosen.append(number)
        candidates = tuple(self._stories[number] for number in chosen)
        return Lookup(
            None,
            candidates,
            stats,
            self._version,
            {story.story_id: number for story, number in zip(candidates, chosen, strict=True)},
            tuple(lookup_keys(fp, queried)),
        )

    async def commit(
        self, fp: Fingerprint, decision: Decision, lookup: Lookup, joined_at: datetime
    ) -> Decision | None:
        """Store the article in its story; refuse when the lookup went stale."""
        known = self._placements.get(fp.article_id)
        if known is not None:
            return replace(known, created=False)
        counted_in = self._statistics.rotate(generation(joined_at, self._period))
        write = plan_write(fp, decision, lookup, joined_at, counted_in)
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
        self._statistics.count_story(write, fp.lang or UNKNOWN_LANGUAGE)
        self._placements[fp.article_id] = decision
        self._members.setdefault(decision.story_id, []).append(
            story_member(fp, decision, joined_at)
        )
        return decision

    async def snapshot(self, story_id: str) -> StorySnapshot | None:
        """The story as stored, or None."""
        return story_snapshot(story_id, self._members.get(story_id, []), self._window_hours)


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
