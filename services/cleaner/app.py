"""Cleaner app factory: consumes `articles.raw`, publishes `articles.clean`."""

from __future__ import annotations

from contracts import RawArticle
from contracts.streams import ARTICLES_RAW, GROUP_CLEANER
from services.cleaner.handlers import CleanHandler, ExtractionPool
from services.cleaner.metrics import CleanerMetrics
from services.cleaner.settings import CleanerSettings
from services.common.runtime import Deps, Service
from services.common.subscriptions import Subscription

NAME = "cleaner"


def create_service(deps: Deps, settings: CleanerSettings | None = None) -> Service:
    settings = settings or CleanerSettings()
    pool = ExtractionPool(
        workers=settings.extraction_workers, timeout_seconds=settings.extraction_timeout_seconds
    )
    handler = CleanHandler(
        redis=deps.redis,
        settings=settings,
        metrics=CleanerMetrics(deps.registry),
        clock=deps.clock,
        pool=pool,
    )
    consumer = deps.consumer(service=NAME, stream=ARTICLES_RAW, model=RawArticle, handle=handler)
    # one page more than there are workers: each worker has its next page queued
    subscription = Subscription(
        GROUP_CLEANER, consumer, concurrency=settings.extraction_workers + 1
    )
    return Service(name=NAME, subscriptions=[subscription], closers=[pool.close])
