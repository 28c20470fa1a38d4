"""Fetcher metrics: polls, items, fetch outcomes, bytes, fetch time, sources, host queues."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class FetcherMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.polls = Counter(
            "newsmon_fetcher_polls_total",
            "Source polls, by outcome (changed, not_modified, unchanged: the same bytes as"
            " the last read, failed, broken_feed).",
            ["outcome"],
            registry=registry,
        )
        self.items = Counter(
            "newsmon_fetcher_items_total",
            "New items published as raw articles, by source (pushed pages: ingest).",
            ["source"],
            registry=registry,
        )
        self.fetches = Counter(
            "newsmon_fetcher_fetches_total",
            "HTTP fetches by kind (feed, sitemap, page, robots) and status class "
            "(2xx, 3xx, 4xx, 5xx, error).",
            ["kind", "status_class"],
            registry=registry,
        )
        self.fetch_errors = Counter(
            "newsmon_fetcher_fetch_errors_total",
            "Failed fetches by kind and reason (timeout, http_500, body_too_large, ...).",
            ["kind", "reason"],
            registry=registry,
        )
        self.bytes = Counter(
            "newsmon_fetcher_bytes_total",
            "Bytes of response bodies received.",
            registry=registry,
        )
        self.fetch_seconds = Histogram(
            "newsmon_fetcher_fetch_duration_seconds",
            "Time of one HTTP fetch, seconds.",
            ["kind"],
            registry=registry,
        )
        self.sources = Gauge(
            "newsmon_fetcher_sources",
            "Sources by state (active, paused, broken, disabled).",
            ["state"],
            registry=registry,
        )
        self.host_queue = Gauge(
            "newsmon_fetcher_host_queue_depth",
            "Requests of this process waiting for a slot of a host (a series only while any wait).",
            ["host"],
            registry=registry,
        )
        self.events = Counter(
            "newsmon_fetcher_source_events_total",
            "Source life events (broken, recovered, disabled, moved, paused, resumed).",
            ["event"],
            registry=registry,
        )
        self.skipped = Counter(
            "newsmon_fetcher_items_skipped_total",
            "Items not fetched, by reason (seen, robots_disallowed).",
            ["reason"],
            registry=registry,
        )
