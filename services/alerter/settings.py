"""Alerter settings (`NEWSMON_ALERTER_*`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.streams import ALERTS_RETENTION_SECONDS


class AlerterSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NEWSMON_ALERTER_", env_file=".env", extra="ignore"
    )

    key_prefix: str = Field(default="newsmon:alerter", description="Redis key prefix.")
    alerts_retention_seconds: float = Field(
        default=ALERTS_RETENTION_SECONDS,
        gt=0,
        description="Alerts stay on `alerts` and `{alerts}.<topic>` this long (seconds), then go.",
    )
    sent_ttl_seconds: int = Field(
        default=30 * 24 * 3600,
        gt=0,
        description="How long an alert is remembered as sent (seconds); longer than any story.",
    )
    lexicon_path: Path | None = Field(
        default=None, description="A lexicon YAML replacing the built-in one."
    )
    update_min_new_sources: int = Field(
        default=2, ge=1, description="New outlets that make an update alert."
    )
    update_debounce_seconds: float = Field(
        default=3600.0, ge=0, description="Least time between two alerts of a story, seconds."
    )
    api_token: str | None = Field(
        default=None,
        description="Admin bearer token of the HTTP API (/alerts, /stories, /ui): reads and"
        " changes topics and subscriptions; unset with no read token: the API answers 503.",
    )
    read_token: str | None = Field(
        default=None,
        description="Read-only bearer token: stories, alerts, topics, the SSE streams and the"
        " web page, nothing that changes or reveals subscriptions.",
    )
    stories_retention_seconds: float = Field(
        default=7 * 86_400,
        gt=0,
        description="Stories stay readable (API, page, `newsmon stories`) this long after"
        " their last article (seconds).",
    )
    api_max_topics: int = Field(default=500, ge=1, description="Topics the API may hold.")
    refresh_seconds: float = Field(
        default=1.0, gt=0, description="How often API changes to topics and subscribers apply."
    )
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, description="Per POST, seconds.")
    webhook_max_attempts: int = Field(
        default=12, ge=1, description="POSTs of one alert before it is dead-lettered."
    )
    webhook_backoff_base_seconds: float = Field(
        default=1.0, gt=0, description="First retry delay, seconds; doubles each retry."
    )
    webhook_backoff_max_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Longest retry delay, seconds. The defaults retry for about 20 minutes.",
    )
    max_live_streams: int = Field(
        default=100,
        ge=1,
        description="Server-sent event streams (alerts and stories) open at once; each holds a"
        " Redis connection. One more gets 503.",
    )
    sse_heartbeat_seconds: float = Field(
        default=15.0, gt=0, description="Keep-alive comment interval on idle SSE streams."
    )
