"""Batch use of the fetcher outside the service: `newsmon ingest`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from services.common.clock import utc_now
from services.common.redis import connect, redis_url_for
from services.common.settings import CommonSettings
from services.fetcher.app import create_http
from services.fetcher.handlers import Poller
from services.fetcher.ingest import PushedPage
from services.fetcher.metrics import FetcherMetrics
from services.fetcher.settings import FetcherSettings


async def ingest_pages(
    pages: Sequence[PushedPage],
    *,
    settings: CommonSettings,
    source: str,
    lang: str | None,
    tags: tuple[str, ...],
    report: Callable[[dict[str, Any]], None],
) -> None:
    """Publish `pages` through the fetcher's publishing path (one RawArticle per URL, ever)."""
    fetcher_settings = FetcherSettings()
    with redis_url_for(settings.redis_url, settings.data_dir) as url:
        redis = connect(url)
        http = create_http(fetcher_settings, ())
        try:
            poller = Poller(
                redis=redis,
                http=http,
                sources=(),
                settings=fetcher_settings,
                metrics=FetcherMetrics(CollectorRegistry()),
                clock=utc_now,
            )
            for page in pages:
                try:
                    result = await poller.ingest(
                        page.url, html=page.html, source=source, lang=lang, tags=tags
                    )
                except ValueError as exc:
                    report(
                        {
                            "input": page.origin,
                            "url": page.url,
                            "outcome": "failed",
                            "error": str(exc),
                        }
                    )
                    continue
                report(
                    {
                        "input": page.origin,
                        "url": result.url,
                        "article_id": result.article_id,
                        "outcome": result.outcome,
                    }
                )
        finally:
            await http.aclose()
            await redis.aclose()
