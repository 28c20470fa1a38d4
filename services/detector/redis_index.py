"""The story index in Redis, shared by detector replicas: the adapter that runs the scripts.

In Redis many posting lists share one packed string key (4 bytes a story number, plus a 2- or
4-byte tag naming the list, plus 4 more bytes of the simhash in a band list), so the index
costs tens of bytes per story, not a key per list; entries of expired stories are cut when
their key is next written, and lookups read a long list from its newest end. Lookup and
commit are one Lua script each (one round trip each) over keys sharing a {hash tag}: the
lookup ranks candidates server-side and returns only the top few summaries, so its cost does
not grow with the number of stories. The data format and each script's KEYS and ARGV are in
`stored`; the scripts are `lookup.lua`, `commit.lua` and `bulk.lua` beside this file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from importlib.resources import files

import redis.asyncio

from contracts.messages import StoryMember, StorySnapshot
from services.detector.core import DEFAULT_PARAMS, Decision, Fingerprint, GroupingParams, TokenStats
from services.detector.index import (
    STATS_PERIOD_SECONDS,
    Generation,
    Lookup,
    epoch,
    generation,
    story_snapshot,
)
from services.detector.stored import (
    EARLIER_POSTINGS_MOVED,
    SCRIPT_CONSTANTS,
    KeySpace,
    as_bytes,
    as_text,
    bulk_call,
    commit_call,
    decode_placement,
    earlier_posting_keys,
    lookup_call,
    lookup_from_reply,
    move_call,
    plan_bulk,
)

SHARED_LUA = "shared.lua"


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
    stories are cut from the head of a key when it is next written, and every key is capped.
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
        self._commit = redis.register_script(load_script("commit.lua"))
        self._bulk = redis.register_script(load_script("bulk.lua"))
        self._move = redis.register_script(load_script("move_postings.lua"))

    async def lookup(self, fp: Fingerprint, params: GroupingParams, now: datetime) -> Lookup:
        """One script call: candidate stories ranked server-side, with the frequencies."""
        oldest = epoch(now - timedelta(hours=params.window_hours))
        keys, args = lookup_call(self._space, fp, params, oldest, generation(now, self._period))
        return lookup_from_reply(await self._lookup(keys=keys, args=args), fp, params)

    async def commit(
        self, fp: Fingerprint, decision: Decision, lookup: Lookup, joined_at: datetime
    ) -> Decision | None:
        """One script call: idempotency check, conflict check, then every write (including
        the story's close time in the open-stories set)."""
        keys, args = commit_call(
            self._space,
            fp,
            decision,
            lookup,
            joined_at,
            ttl_seconds=self._ttl,
            window_seconds=self._window_seconds,
            generation=generation(joined_at, self._period),
        )
        outcome, payload = await self._commit(keys=keys, args=args)
        status = as_text(outcome)
        if status == "conflict":
            return None
        if status == "existing":
            return decode_placement(as_text(payload))
        return decision

    async def create_stories(self, fps: Sequence[Fingerprint], at: datetime) -> None:
        """Bulk load: one new story per fingerprint, with the same keys and values as the
        commit script would write, in three round trips per batch (the story counts of the
        batch's anchors, so each story keeps and posts its rarest ones as a commit would;
        reserve story numbers; one script call). For backfills and benchmarks; placements of
        the same articles by a replica at the same time would race."""
        if not fps:
            return
        counted = generation(at, self._period)
        stats = await self._story_counts({token for fp in fps for token, _ in fp.anchors}, counted)
        last = int(await self._redis.incrby(self._space.key("seq"), len(fps)))
        plan = plan_bulk(
            fps,
            at,
            first_number=last - len(fps) + 1,
            stats=stats,
            window_seconds=self._window_seconds,
            generation=counted,
        )
        keys, args = bulk_call(
            self._space,
            plan,
            at,
            ttl_seconds=self._ttl,
            window_seconds=self._window_seconds,
            generation=counted,
        )
        await self._bulk(keys=keys, args=args)

    async def _story_counts(self, tokens: set[str], counted: Generation) -> TokenStats:
        """How many stories carry each token, and how many stories there are, as a lookup in
        the generation `counted` reads them: a token's entry there, else the stories the
        previous generation counted alone."""
        by_key: dict[str, list[str]] = {}
        for token in tokens:
            by_key.setdefault(self._space.stats(token, counted.start), []).append(token)
            by_key.setdefault(self._space.stats(token, counted.previous), []).append(token)
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(self._space.story_count(counted.start))
        pipe.get(self._space.story_count(counted.previous))
        for key, names in by_key.items():
            pipe.hmget(key, names)
        current, previous, *replies = await pipe.execute()
        carried: dict[str, int] = {}
        frequencies: dict[str, int] = {}
        for key, names, values in zip(by_key, by_key.values(), replies, strict=True):
            now = key.startswith(self._space.stats_prefix(counted.start))
            for token, value in zip(names, values, strict=True):
                if value is not None:
                    fields = as_text(value).split(" ")
                    if now:
                        frequencies[token] = int(fields[0])
                    else:
                        carried[token] = int(fields[1])
        return TokenStats(int(current or 0) + int(previous or 0), carried | frequencies)

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

    async def snapshot(self, story_id: str) -> StorySnapshot | None:
        """The story's members in join order, or None once expired."""
        raw_members = await self._redis.lrange(self._space.members(story_id), 0, -1)
        members = [StoryMember.model_validate_json(raw) for raw in raw_members]
        return story_snapshot(story_id, members, self._window_hours)
