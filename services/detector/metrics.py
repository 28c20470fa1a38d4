"""Detector metrics: how articles were placed, story sizes, stories still open."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class DetectorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.placements = Counter(
            "newsmon_detector_articles_total",
            "Articles placed in stories, by reason (new, exact, near_duplicate, translation,"
            " skipped_empty).",
            ["reason"],
            registry=registry,
        )
        self.story_size = Histogram(
            "newsmon_detector_story_size_articles",
            "Articles in a story after an assignment.",
            buckets=(1, 2, 3, 5, 8, 13, 21, 50, 100),
            registry=registry,
        )
        self.story_languages = Histogram(
            "newsmon_detector_story_languages",
            "Languages in a story after an assignment.",
            buckets=(1, 2, 3, 4, 5, 7, 10),
            registry=registry,
        )
        self.active_stories = Gauge(
            "newsmon_detector_active_stories",
            "Stories still open to new articles (last article within the window), read from"
            " Redis: every replica reports the same count.",
            registry=registry,
        )
        self.swept_entries = Counter(
            "newsmon_detector_posting_entries_swept_total",
            "Posting entries of expired stories cut from the story index by this replica's sweep.",
            registry=registry,
        )
