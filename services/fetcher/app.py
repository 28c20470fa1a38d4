"""Fetcher app factory: polls the sources, publishes `articles.raw`, serves `/sources`
and `/ingest`."""

from __future__ import annotations

from services.common.runtime import Deps, Service
from services.fetcher.api import create_api
from services.fetcher.handlers import Poller
from services.fetcher.http import HttpxClient
from services.fetcher.metrics import FetcherMetrics
from services.fetcher.settings import FetcherSettings
from services.fetcher.store import legacy_fetcher_keys

NAME = "fetcher"


def create_http(settings: FetcherSettings, allowed_private_hosts: tuple[str, ...]) -> HttpxClient:
    """The fetcher's HTTP client with every limit from the settings and the config's allow-list."""
    return HttpxClient(
        user_agent=settings.user_agent,
        timeout_seconds=settings.timeout_seconds,
        connect_timeout_seconds=settings.connect_timeout_seconds,
        read_timeout_seconds=settings.read_timeout_seconds,
        max_body_bytes=settings.max_body_bytes,
        max_redirects=settings.max_redirects,
        allowed_private_hosts=allowed_private_hosts,
    )


def create_service(deps: Deps, settings: FetcherSettings | None = None) -> Service:
    settings = settings or FetcherSettings()
    http = create_http(settings, deps.config.allowed_private_hosts)
    poller = Poller(
        redis=deps.redis,
        http=http,
        sources=deps.config.sources,
        settings=settings,
        metrics=FetcherMetrics(deps.registry),
        clock=deps.clock,
        consumer_metrics=deps.consumer_metrics,
        dead_letter_retention_seconds=deps.settings.dead_letter_retention_seconds,
    )
    api = create_api(
        poller,
        token=settings.api_token,
        push_tokens=settings.push_tokens,
        max_body_bytes=settings.api_max_body_bytes,
    )
    return Service(
        name=NAME,
        tasks=[poller.run_forever],
        legacy_keys=[legacy_fetcher_keys(settings.key_prefix)],
        closers=[http.aclose],
        routes=[("/sources", api), ("/ingest", api)],
        settled=poller.round_completed.is_set,
    )
