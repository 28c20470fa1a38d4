"""Detector app factory: consumes `articles.clean`, publishes `stories.events`."""

from __future__ import annotations

from dataclasses import replace

from contracts import CleanArticle
from contracts.streams import ARTICLES_CLEAN, GROUP_DETECTOR
from services.common.runtime import Deps, Service, Subscription
from services.detector.core import DEFAULT_PARAMS
from services.detector.handlers import DetectHandler
from services.detector.index import RedisStoryIndex
from services.detector.metrics import DetectorMetrics
from services.detector.settings import DetectorSettings

NAME = "detector"


def create_service(deps: Deps, settings: DetectorSettings | None = None) -> Service:
    settings = settings or DetectorSettings()
    params = replace(DEFAULT_PARAMS, window_hours=settings.close_after_hours)
    index = RedisStoryIndex(
        deps.redis,
        prefix=settings.key_prefix,
        story_ttl_seconds=max(settings.story_ttl_seconds, int(settings.close_after_hours * 3600)),
        window_hours=settings.close_after_hours,
    )
    handler = DetectHandler(
        redis=deps.redis,
        index=index,
        metrics=DetectorMetrics(deps.registry),
        clock=deps.clock,
        params=params,
    )
    consumer = deps.consumer(
        service=NAME, stream=ARTICLES_CLEAN, model=CleanArticle, handle=handler
    )
    return Service(name=NAME, subscriptions=[Subscription(GROUP_DETECTOR, consumer)])
