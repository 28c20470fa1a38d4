"""Alerter metrics (`newsmon_alerter_*`). Labels are bounded: topic names come from the
configuration (the API caps how many), channels and outcomes are fixed words; subscriber
names and URLs are never labels."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
"""Delivery latency buckets, seconds: milliseconds when healthy, minutes after an outage."""


class AlerterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.alerts = Counter(
            "newsmon_alerter_alerts_total",
            "Topic alerts sent, by topic and kind (new, update).",
            ["topic", "kind"],
            registry=registry,
        )
        self.suppressed = Counter(
            "newsmon_alerter_repeats_suppressed_total",
            "Matches not alerted because the (story, topic) alert was already sent, by topic.",
            ["topic"],
            registry=registry,
        )
        self.deliveries = Counter(
            "newsmon_alerter_deliveries_total",
            "Alert deliveries by channel (webhook, digest, sse) and outcome "
            "(delivered, dead_lettered, skipped).",
            ["channel", "outcome"],
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "newsmon_alerter_delivery_latency_seconds",
            "Time from an alert's creation to its delivery, by channel, seconds.",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.fetch_to_alert_seconds = Histogram(
            "newsmon_alerter_fetch_to_alert_seconds",
            "Time from fetching the article that triggered an alert to publishing it, seconds.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.webhook_retries = Counter(
            "newsmon_alerter_webhook_retries_total",
            "Webhook POSTs retried after a failure.",
            registry=registry,
        )
        self.webhook_dead_letters = Counter(
            "newsmon_alerter_webhook_dead_letters_total",
            "Alerts parked in a subscriber's dead-letter stream (retries exhausted, "
            "invalid message, or too many deliveries).",
            registry=registry,
        )
