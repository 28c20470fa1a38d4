"""The story index in Redis, shared by detector replicas: the adapter that runs the scripts.

In Redis many posting lists share one packed string key (4 bytes a story number, plus a 2- or
4-byte tag naming the list, plus 4 more bytes of the simhash in a band list), so the index
costs tens of bytes per story, not a key per list; a sweep cuts the entries of expired
stories from the head of each key, and lookups read a long list from its newest end. Every
script names in KEYS every key it reads or writes, all under one {hash tag}, so the index
runs on Redis Cluster as on one server. A lookup is up to four round trips: `lookup.lua`
reads the statistics of the article's anchors; one MGET reads the posting keys of its
simhash bands and rarest known anchors, in which the detector finds and ranks the candidates
(`found_in_postings`: the scan and the ranking run in the replica, which scales out, not in
Redis, which every replica shares); then their records; then the statistics of the other
anchors of those the article could join (`token_stats.lua`; `joinable` in core.py). A
commit is one script call (`commit.lua`), its story's number reserved ahead in blocks
(`reserve_numbers.lua`). The data format and each script's KEYS and ARGV are in `stored`;
the scripts are the `.lua` files beside this file.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from importlib.resources import files

import redis.asyncio

from contracts.messages import StoryMember, StorySnapshot
from services.detector.core import (
    DEFAULT_PARAMS,
    Decision,
    Fingerprint,
    GroupingParams,
    TokenStats,
    query_tokens,
)
from services.detector.index import (
    STATS_PERIOD_SECONDS,
    Generation,
    Lookup,
    generation,
    story_snapshot,
)
from services.detector.stored import (
    EARLIER_POSTINGS_MOVED,
    EARLIER_STATS_MOVED,
    SCRIPT_CONSTANTS,
    STATS_MOVE_CHUNK,
    KeySpace,
    as_bytes,
    as_text,
    bulk_call,
    commit_call,
    decode_placement,
    earlier_posting_keys,
    earlier_stats_hashes,
    found_in_postings,
    head_range,
    hits_from_reply,
    lookup_call,
    lookup_from,
    move_call,
    move_stats_call,
    open_candidates,
    own_stats,
    plan_bulk,
    posting_reads,
    record_keys,
    reserve_call,
    stats_call,
    stats_from_lines,
    sweep_call,
)

SHARED_LUA = "shared.lua"
NUMBER_BLOCK = 32
"""Story numbers a replica reserves at a time: numbers order stories by creation within a
replica (the lookup's tie-break: most recent first), and by block across replicas."""


def script_source(body: str) -> str:
    """A story index script as Redis runs it. Redis has no `require`, so the pieces are
    concatenated: one `local NAME = value` line per constant of `SCRIPT_CONSTANTS`, then
    `shared.lua` (the helpers every script may use), then `body`."""
    shared = files("services.detector").joinpath(SHARED_LUA).read_text("utf-8")
    declared = [f"local {key} = {value}" for key, value in SCRIPT_CONSTANTS.items()]
    return "\n".join([*declared, shared, body])


def load_script(name: str) -> str:
    """The script `name` (a `.lua` file of this package) as Redis runs it."""
    return script_source(files("services.detector").joinpath(name).read_text("utf-8"))


class RedisStoryIndex:
    """The story index in Redis, shared by detector replicas.

    Every key shares the hash tag `{prefix}` (layout: `stored`). Story records, placements and
    member lists expire `story_ttl_seconds` after their last write; posting entries of expired
    stories are cut from the head of a key by `sweep_postings`, and every key is capped.
    Token statistics are counted in generations of `stats_period_seconds` (`Generation`, from
    the time given to each call) and expire when no longer read.
    """

    def __init__(
        self,
        redis: redis.asyncio.Redis,
        *,
        prefix: str = "newsmon:detector",
        story_ttl_seconds: int = 7 * 24 * 3600,
        window_hours: float = DEFAULT_PARAMS.window_hours,
        stats_period_seconds: int = STATS_PERIOD_SECONDS,
    ) -> None:
        self._redis = redis
        self._space = KeySpace.of(prefix)
        self._ttl = story_ttl_seconds
        self._period = stats_period_seconds
        self._window_hours = window_hours
        self._window_seconds = math.ceil(window_hours * 3600)
        self._lookup = redis.register_script(load_script("lookup.lua"))
        self._stats = redis.register_script(load_script("token_stats.lua"))
        self._commit = redis.register_script(load_script("commit.lua"))
        self._bulk = redis.register_script(load_script("bulk.lua"))
        self._move = redis.register_script(load_script("move_postings.lua"))
        self._reserve = redis.register_script(load_script("reserve_numbers.lua"))
        self._sweep = redis.register_script(load_script("sweep_postings.lua"))
        self._move_stats = redis.register_script(load_script("move_stats.lua"))
        self._numbers: deque[int] = deque()

    async def lookup(self, fp: Fingerprint, params: GroupingParams, now: datetime) -> Lookup:
        """Up to four round trips, each naming every key it reads: the statistics of the
        article's anchors (`lookup.lua`); the posting keys of its bands and rarest known
        anchors, in which the candidates are found and ranked here; the candidates' records;
        the statistics of the other anchors of those it could join."""
        counted = generation(now, self._period)
        keys, args = lookup_call(self._space, fp, counted)
        hits = hits_from_reply(await self._lookup(keys=keys, args=args))
        if hits.existing is not None:
            return Lookup(existing=hits.existing, version=hits.version)
        own = own_stats(hits, fp)
        queried = query_tokens(fp, own, params)
        names = posting_reads(fp, queried)
        values = await self._redis.mget([self._space.key(name) for name in names])
        found = found_in_postings(fp, queried, dict(zip(names, values, strict=True)), own, params)
        numbers = found.numbers
        records = await self._redis.mget(record_keys(self._space, numbers)) if numbers else []
        candidates = open_candidates(found, records, fp, own, params, now)
        unread_lines = ""
        if candidates.unread_tokens:
            keys, args = stats_call(self._space, candidates.unread_tokens, counted)
            unread_lines = as_text(await self._stats(keys=keys, args=args))
        return lookup_from(hits, candidates, own, unread_lines, fp, queried)

    async def commit(
        self, fp: Fingerprint, decision: Decision, lookup: Lookup, joined_at: datetime
    ) -> Decision | None:
        """One script call: idempotency check, conflict check, then every write (including
        the story's close time in the open-stories set). A new story takes the next number
        this replica reserved; one already taken (by a replica of the earlier version, or a
        counter lost) is skipped."""
        while True:
            keys, args = commit_call(
                self._space,
                fp,
                decision,
                lookup,
                joined_at,
                new_number=await self._next_number() if decision.created else 0,
                ttl_seconds=self._ttl,
                window_seconds=self._window_seconds,
                generation=generation(joined_at, self._period),
            )
            outcome, payload = await self._commit(keys=keys, args=args)
            status = as_text(outcome)
            if status != "taken":
                break
        if status == "conflict":
            return None
        if status == "existing":
            return decode_placement(as_text(payload))
        return decision

    async def _next_number(self) -> int:
        """The next story number of this replica's block, reserving a block when none is left
        (`NUMBER_BLOCK` at a time)."""
        if not self._numbers:
            self._numbers.extend(await self._reserve_numbers(NUMBER_BLOCK))
        return self._numbers.popleft()

    async def _reserve_numbers(self, count: int) -> range:
        """`count` story numbers no other replica holds."""
        keys, args = reserve_call(self._space, count, self._ttl)
        last = int(await self._reserve(keys=keys, args=args))
        return range(last - count + 1, last + 1)

    async def create_stories(self, fps: Sequence[Fingerprint], at: datetime) -> None:
        """Bulk load: one new story per fingerprint, with the same keys and values as the
        commit script would write, in four round trips per batch (the story counts of the
        batch's anchors, so each story keeps and posts its rarest ones as a commit would;
        a sequence number; story numbers; one script call). For backfills and benchmarks;
        placements of the same articles by a replica at the same time would race."""
        if not fps:
            return
        counted = generation(at, self._period)
        stats = await self._story_counts({token for fp in fps for token, _ in fp.anchors}, counted)
        sequence = int(await self._redis.incr(self._space.key("seq")))
        numbers = await self._reserve_numbers(len(fps))
        plan = plan_bulk(
            fps,
            at,
            first_number=numbers.start,
            stats=stats,
            window_seconds=self._window_seconds,
            generation=counted,
        )
        keys, args = bulk_call(
            self._space,
            plan,
            at,
            sequence=sequence,
            ttl_seconds=self._ttl,
            window_seconds=self._window_seconds,
            generation=counted,
        )
        await self._bulk(keys=keys, args=args)

    async def _story_counts(self, tokens: set[str], counted: Generation) -> TokenStats:
        """How many stories carry each token, and how many stories there are, as a lookup in
        the generation `counted` reads them."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(self._space.story_count(counted.start))
        pipe.get(self._space.story_count(counted.previous))
        current, previous = await pipe.execute()
        if not tokens:
            return TokenStats(int(current or 0) + int(previous or 0))
        ordered = sorted(tokens)
        keys, args = stats_call(self._space, ordered, counted)
        lines = as_text(await self._stats(keys=keys, args=args))
        return stats_from_lines(int(current or 0) + int(previous or 0), ordered, lines)

    async def move_earlier_postings(self) -> int:
        """Move the posting keys of the layout before 2026-12 (`earlier_posting_keys`) into
        today's keys, so stories open across an upgrade are still found; how many keys were
        moved. Once per index (a mark records it); replicas starting together move each key
        once, and a key an earlier replica writes meanwhile is read again."""
        mark = self._space.key(EARLIER_POSTINGS_MOVED)
        if await self._redis.exists(mark):
            return 0
        moved = 0
        for name in earlier_posting_keys():
            key = self._space.key(name)
            while (value := await self._redis.get(key)) is not None:
                keys, args = move_call(self._space, name, as_bytes(value))
                if await self._move(keys=keys, args=args):
                    moved += 1
                    break
        await self._redis.set(mark, 1)
        return moved

    async def sweep_postings(self, names: Sequence[str]) -> int:
        """Cut the entries of expired stories from the head of the posting keys `names` (of
        `posting_keys`): one pipeline reading their heads, then a script call per key that
        has entries; how many entries were cut."""
        pipe = self._redis.pipeline(transaction=False)
        for name in names:
            pipe.getrange(self._space.key(name), *head_range(name))
        cut = 0
        for name, head in zip(names, await pipe.execute(), strict=True):
            if head:
                keys, args = sweep_call(self._space, name, as_bytes(head))
                cut += int(await self._sweep(keys=keys, args=args))
        return cut

    async def move_earlier_stats(self, now: datetime, chunk: int = STATS_MOVE_CHUNK) -> int:
        """Move the statistics hashes of the earlier layouts (`earlier_stats_hashes`) that
        the generation of `now` reads into today's, so the counts go on across an upgrade; how
        many tokens were moved. Once per index (a mark records it). Each hash is read in
        one pass of HSCAN, about `chunk` tokens a step, each step moved by one script call (a
        token an earlier replica writes during the pass may stay behind, and expires)."""
        mark = self._space.key(EARLIER_STATS_MOVED)
        if await self._redis.exists(mark):
            return 0
        moved = 0
        for earlier, today in earlier_stats_hashes(self._space, generation(now, self._period)):
            cursor = 0
            while True:
                cursor, entries = await self._redis.hscan(earlier, cursor, count=chunk)
                if entries:
                    keys, args = move_stats_call(earlier, today, list(entries))
                    moved += int(await self._move_stats(keys=keys, args=args))
                if cursor == 0:
                    break
        await self._redis.set(mark, 1)
        return moved

    async def snapshot(self, story_id: str) -> StorySnapshot | None:
        """The story's members in join order, or None once expired."""
        raw_members = await self._redis.lrange(self._space.members(story_id), 0, -1)
        members = [StoryMember.model_validate_json(raw) for raw in raw_members]
        return story_snapshot(story_id, members, self._window_hours)
