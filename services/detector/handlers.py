"""Detector handler: a CleanArticle in, a StoryEvent out; and the count of open stories."""

from __future__ import annotations

from datetime import datetime

import redis.asyncio as aioredis

from contracts import CleanArticle, StoryEvent
from contracts.streams import STORIES_EVENTS
from services.common.bus import publish
from services.common.clock import Clock
from services.common.errors import TransientError
from services.detector.core import DEFAULT_PARAMS, ArticleIn, GroupingParams
from services.detector.index import StoryIndex, place_article
from services.detector.metrics import DetectorMetrics


def open_stories_key(prefix: str) -> str:
    """The sorted set of story ids scored by when each story closes (epoch seconds), under
    the story index's hash tag: the index's commit script writes it with each placement, so
    counting open stories costs O(log n), not a key scan."""
    return "{" + prefix + "}:open"


async def count_open_stories(redis: aioredis.Redis, key: str, now: datetime) -> int:
    """Stories that close after `now`; drops the closed ones so the set stays that size."""
    pipe = redis.pipeline(transaction=False)
    pipe.zremrangebyscore(key, "-inf", f"({now.timestamp()}")
    pipe.zcard(key)
    _, count = await pipe.execute()
    return int(count)


def detector_input(article: CleanArticle) -> ArticleIn:
    """What the grouping needs from a clean article."""
    return ArticleIn(
        article_id=article.article_id,
        title=article.title,
        text=article.text,
        lang=article.lang,
        source=article.source,
        url=article.canonical_url or article.url,
        published=article.published,
    )


class DetectHandler:
    """Places each article in a story and announces it."""

    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        index: StoryIndex,
        metrics: DetectorMetrics,
        clock: Clock,
        params: GroupingParams = DEFAULT_PARAMS,
    ) -> None:
        self._redis = redis
        self._index = index
        self._metrics = metrics
        self._clock = clock
        self._params = params

    async def __call__(self, article: CleanArticle) -> None:
        if article.empty_reason:
            self._metrics.placements.labels("skipped_empty").inc()
            return
        now = self._clock()
        placement = await place_article(
            self._index, detector_input(article), now, params=self._params
        )
        story = await self._index.snapshot(placement.story_id)
        if story is None:
            raise TransientError(f"story {placement.story_id} vanished right after placement")
        event = StoryEvent(
            event_id=f"{placement.story_id}:{article.article_id}",
            kind="created" if placement.created else "updated",
            story=story,
            article=article,
            reason=placement.reason,
            similarity=placement.similarity,
            occurred_at=now,
        )
        await publish(self._redis, STORIES_EVENTS, event)
        self._metrics.placements.labels(placement.reason).inc()
        self._metrics.story_size.observe(len(story.members))
        self._metrics.story_languages.observe(len(story.languages))
