"""Metrics every consumer shares, registered on a registry passed in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ConsumerMetrics:
    """Messages handled per stream, by outcome, and the dead letters they became."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "newsmon_messages_total",
            "Stream messages handled, by stream and outcome (processed, dead_lettered, retried).",
            ["stream", "outcome"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "newsmon_dead_letters_total",
            "Messages parked in a dead-letter stream, by stream and reason.",
            ["stream", "reason"],
            registry=registry,
        )
        self.handler_seconds = Histogram(
            "newsmon_handler_duration_seconds",
            "Time to handle one stream message, seconds.",
            ["stream"],
            registry=registry,
        )


class StreamMetrics:
    """Backlog of each consumed stream, and Redis's memory, read from Redis: what operators
    watch for "stuck" and for "full"."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.length = Gauge(
            "newsmon_stream_length_entries",
            "Entries kept in a stream.",
            ["stream"],
            registry=registry,
        )
        self.lag = Gauge(
            "newsmon_stream_lag_entries",
            "Entries of a stream its consumer group has not read yet.",
            ["stream", "group"],
            registry=registry,
        )
        self.pending = Gauge(
            "newsmon_stream_pending_entries",
            "Entries a consumer group read but has not acknowledged yet.",
            ["stream", "group"],
            registry=registry,
        )
        self.dead_letters = Gauge(
            "newsmon_dead_letter_entries",
            "Entries parked in a stream's dead-letter stream.",
            ["stream"],
            registry=registry,
        )
        self.redis_used_memory = Gauge(
            "newsmon_redis_used_memory_bytes",
            "Memory Redis has allocated for its data (`used_memory` of INFO), bytes.",
            registry=registry,
        )
        self.redis_max_memory = Gauge(
            "newsmon_redis_maxmemory_bytes",
            "Redis's memory limit (`maxmemory` of INFO), bytes; 0 when it has none.",
            registry=registry,
        )
