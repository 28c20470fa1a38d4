"""Cleaner metrics: pages cleaned, empty extractions by reason, time, languages.

Labels are bounded: outcome and reason come from fixed sets, language is an ISO 639-1 code
(the identifier knows 176) or "unknown".
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class CleanerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.pages = Counter(
            "newsmon_cleaner_pages_total",
            "Pages cleaned, by outcome (article, empty).",
            ["outcome"],
            registry=registry,
        )
        self.empty = Counter(
            "newsmon_cleaner_empty_extractions_total",
            "Pages without article text, by reason (empty_input, binary, not_html, "
            "no_main_text, extraction_error).",
            ["reason"],
            registry=registry,
        )
        self.extraction_seconds = Histogram(
            "newsmon_cleaner_extraction_seconds",
            "Time to extract one page, seconds.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=registry,
        )
        self.timeouts = Counter(
            "newsmon_cleaner_extraction_timeouts_total",
            "Pages whose extraction exceeded the time budget (dead-lettered).",
            registry=registry,
        )
        self.articles_by_language = Counter(
            "newsmon_cleaner_articles_by_language_total",
            "Clean articles by detected language (ISO 639-1, 'unknown').",
            ["lang"],
            registry=registry,
        )
