"""The stories read model in Redis: what `GET /stories`, the web page and `newsmon stories`
read. Every key shares one hash tag, so the record script runs on one node of a cluster:

- `{P}:s:<story id>` hash: `r` the `StoryRecord` (JSON), `n` its article count, `f` its
  titles folded for search (one a line), and `a:<article id>` each `StoryArticle` (JSON);
  it expires `retention` after the last write;
- `{P}:all`, `{P}:t:<topic slug>`, `{P}:l:<lang>` sorted sets of story ids by last activity
  (ms): the listings, newest first; entries older than the retention are cut on each write;
- `{P}:live` a capped stream of the ids of stories that changed, for the live page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from typing import cast

import redis.asyncio as aioredis

from contracts import StoryEvent
from contracts.stories import StoryArticle, StoryRecord
from contracts.streams import topic_slug
from services.alerter.views import (
    StoryQuery,
    activity_ms,
    encode_cursor,
    has_words,
    searchable_titles,
    story_article,
    story_record,
    wanted,
)

SCAN_BUDGET = 1000
"""Most listing entries one page request reads; a page cut short by it still has a cursor."""
LIVE_STREAM_CAP = 1000
"""Changes kept on the live stream: what a page reconnecting after a short break catches up."""
_RECORD_STORY = files("services.alerter").joinpath("record_story.lua").read_text("utf-8")


@dataclass(frozen=True, slots=True)
class Listing:
    """A page of stories and where the next one starts (None: nothing older)."""

    records: tuple[StoryRecord, ...]
    next_cursor: str | None


class StoryView:
    """Writes and reads the stories read model."""

    def __init__(self, redis: aioredis.Redis, *, key_prefix: str, retention_seconds: float) -> None:
        self._redis = redis
        self._tag = "{" + key_prefix + ":stories}"
        self._retention_ms = int(retention_seconds * 1000)
        self._record = redis.register_script(_RECORD_STORY)

    def story_key(self, story_id: str) -> str:
        return f"{self._tag}:s:{story_id}"

    @property
    def live_key(self) -> str:
        return f"{self._tag}:live"

    def listing_key(self, query: StoryQuery) -> str:
        """The narrowest listing holding every story `query` can want."""
        if query.topic is not None:
            return f"{self._tag}:t:{topic_slug(query.topic)}"
        if query.lang is not None:
            return f"{self._tag}:l:{query.lang}"
        return f"{self._tag}:all"

    async def record(self, event: StoryEvent, topics: Iterable[str], now: datetime) -> None:
        """Keep what `event` says of its story; an older snapshot never replaces a newer."""
        record = story_record(event, topics)
        article = story_article(event)
        listings = [
            self.listing_key(StoryQuery()),
            *(self.listing_key(StoryQuery(topic=topic)) for topic in record.topics),
            *(self.listing_key(StoryQuery(lang=lang)) for lang in record.languages),
        ]
        await self._record(
            keys=[self.story_key(record.story_id), self.live_key, *listings],
            args=[
                record.model_dump_json(),
                record.article_count,
                f"a:{article.article_id}",
                article.model_dump_json(),
                activity_ms(record.last_seen),
                max(self._retention_ms // 1000, 1),
                activity_ms(now) - self._retention_ms,
                record.story_id,
                LIVE_STREAM_CAP,
                searchable_titles(record),
            ],
        )

    async def page(self, query: StoryQuery, now: datetime) -> Listing:
        """Stories that `query` wants, newest activity first, at most `query.limit`."""
        key = self.listing_key(query)
        oldest = activity_ms(now) - self._retention_ms
        low = max(oldest, activity_ms(query.since)) if query.since else oldest
        high = activity_ms(query.until) if query.until else "+inf"
        if query.after is not None:
            high = query.after[0] if high == "+inf" else min(int(high), query.after[0])
        found: list[StoryRecord] = []
        last_scanned: tuple[int, str] | None = None
        offset = 0
        more = True
        while len(found) < query.limit and offset < SCAN_BUDGET and more:
            batch_size = min(max(query.limit * 2, 50), SCAN_BUDGET - offset)
            entries = cast(
                list[tuple[bytes, float]],
                await self._redis.zrevrangebyscore(
                    key, high, low, start=offset, num=batch_size, withscores=True
                ),
            )
            offset += len(entries)
            more = len(entries) == batch_size
            fresh = [(raw.decode(), int(score)) for raw, score in entries]
            fresh = [
                (story_id, score) for story_id, score in fresh if not _seen(story_id, score, query)
            ]
            records = await self._records([story_id for story_id, _ in fresh], query.words)
            for (story_id, score), record in zip(fresh, records, strict=True):
                last_scanned = (score, story_id)
                if record is not None and wanted(record, query):
                    found.append(record)
                    if len(found) == query.limit:
                        break
        if last_scanned is None or (not more and len(found) < query.limit):
            return Listing(tuple(found), None)
        return Listing(tuple(found), encode_cursor(*last_scanned))

    async def story(self, story_id: str) -> tuple[StoryRecord, list[StoryArticle]] | None:
        """A story and its articles, or None when unknown or past the retention."""
        fields = cast(dict[bytes, bytes], await self._redis.hgetall(self.story_key(story_id)))
        raw_record = fields.get(b"r")
        if raw_record is None:
            return None
        articles = [
            StoryArticle.model_validate_json(value)
            for name, value in fields.items()
            if name.startswith(b"a:")
        ]
        return StoryRecord.model_validate_json(raw_record), articles

    async def _records(
        self, story_ids: Sequence[str], words: tuple[str, ...]
    ) -> list[StoryRecord | None]:
        """The stories' records; None for one that is gone or whose titles lack `words`
        (checked first on the folded titles alone, a tenth of a record's bytes)."""
        wanted_ids = list(story_ids)
        if words:
            folded = await self._fields(wanted_ids, "f")
            wanted_ids = [
                story_id
                for story_id, titles in zip(wanted_ids, folded, strict=True)
                if titles is not None and has_words(titles.decode(), words)
            ]
        raw = dict(zip(wanted_ids, await self._fields(wanted_ids, "r"), strict=True))
        return [
            StoryRecord.model_validate_json(record) if (record := raw.get(story_id)) else None
            for story_id in story_ids
        ]

    async def _fields(self, story_ids: Sequence[str], field: str) -> list[bytes | None]:
        if not story_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for story_id in story_ids:
                pipe.hget(self.story_key(story_id), field)
            return cast(list[bytes | None], await pipe.execute())

    async def changes(self, after: str, block_ms: int) -> list[tuple[str, str]]:
        """(entry id, story id) of the stories that changed after entry `after`, waiting up
        to `block_ms` for one."""
        response = cast(
            list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]],
            await self._redis.xread({self.live_key: after}, count=100, block=block_ms),
        )
        changed: list[tuple[str, str]] = []
        for _, entries in response or []:
            for raw_id, fields in entries:
                changed.append((raw_id.decode(), fields[b"story"].decode()))
        return changed

    async def newest_change(self) -> str:
        """The live stream's newest entry id ("0-0" when empty)."""
        newest = cast(
            list[tuple[bytes, object]], await self._redis.xrevrange(self.live_key, count=1)
        )
        return newest[0][0].decode() if newest else "0-0"


def _seen(story_id: str, score: int, query: StoryQuery) -> bool:
    """Whether a listing entry was on an earlier page: at or before the cursor."""
    if query.after is None:
        return False
    after_score, after_id = query.after
    return score == after_score and story_id >= after_id
