"""Detector app factory: consumes `articles.clean`, publishes `stories.events`."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace

import redis.asyncio as aioredis
import structlog

from contracts import CleanArticle
from contracts.streams import ARTICLES_CLEAN, GROUP_DETECTOR
from services.common.clock import Clock
from services.common.runtime import Deps, Service
from services.common.subscriptions import Subscription
from services.common.tasks import BackgroundTask, raise_if_cancelled
from services.detector.core import DEFAULT_PARAMS
from services.detector.handlers import DetectHandler, count_open_stories, open_stories_key
from services.detector.metrics import DetectorMetrics
from services.detector.redis_index import RedisStoryIndex
from services.detector.settings import DetectorSettings
from services.detector.stored import posting_keys

log = structlog.get_logger("newsmon.detector")

NAME = "detector"
ACTIVE_STORIES_REFRESH_SECONDS = 5.0
"""How often the active-stories gauge is read from Redis, seconds."""
POSTING_SWEEP_SECONDS = 3600.0
"""How long one sweep over every posting key of the story index takes, seconds: entries of
expired stories stay at most about this long after their story's TTL."""
POSTING_SWEEP_BATCH = 64
"""Posting keys swept per step."""


def create_service(deps: Deps, settings: DetectorSettings | None = None) -> Service:
    settings = settings or DetectorSettings()
    params = replace(DEFAULT_PARAMS, window_hours=settings.close_after_hours)
    window_seconds = math.ceil(settings.close_after_hours * 3600)
    index = RedisStoryIndex(
        deps.redis,
        prefix=settings.key_prefix,
        story_ttl_seconds=max(settings.story_ttl_seconds, int(settings.close_after_hours * 3600)),
        window_hours=settings.close_after_hours,
        stats_period_seconds=max(settings.stats_period_seconds, window_seconds),
    )
    metrics = DetectorMetrics(deps.registry)
    open_stories = open_stories_key(settings.key_prefix)
    handler = DetectHandler(
        redis=deps.redis,
        index=index,
        metrics=metrics,
        clock=deps.clock,
        params=params,
    )
    consumer = deps.consumer(
        service=NAME, stream=ARTICLES_CLEAN, model=CleanArticle, handle=handler
    )
    return Service(
        name=NAME,
        subscriptions=[Subscription(GROUP_DETECTOR, consumer)],
        tasks=[
            _active_stories_watcher(deps.redis, open_stories, metrics, deps.clock),
            _earlier_layout_mover(index, deps.clock),
            _posting_sweeper(index, metrics),
        ],
    )


def _earlier_layout_mover(index: RedisStoryIndex, clock: Clock) -> BackgroundTask:
    async def move_earlier_layout() -> None:
        moved = await index.move_earlier_postings()
        if moved:
            log.info("posting keys of an earlier layout moved", keys=moved)
        tokens = await index.move_earlier_stats(clock())
        if tokens:
            log.info("token statistics of an earlier layout moved", tokens=tokens)

    return move_earlier_layout


def _posting_sweeper(index: RedisStoryIndex, metrics: DetectorMetrics) -> BackgroundTask:
    names = posting_keys()
    batches = [
        names[at : at + POSTING_SWEEP_BATCH] for at in range(0, len(names), POSTING_SWEEP_BATCH)
    ]

    async def sweep_postings() -> None:
        while True:
            for batch in batches:
                raise_if_cancelled()
                metrics.swept_entries.inc(await index.sweep_postings(batch))
                await asyncio.sleep(POSTING_SWEEP_SECONDS / len(batches))

    return sweep_postings


def _active_stories_watcher(
    redis: aioredis.Redis, key: str, metrics: DetectorMetrics, clock: Clock
) -> BackgroundTask:
    async def watch_active_stories() -> None:
        while True:
            raise_if_cancelled()
            metrics.active_stories.set(await count_open_stories(redis, key, clock()))
            await asyncio.sleep(ACTIVE_STORIES_REFRESH_SECONDS)

    return watch_active_stories
