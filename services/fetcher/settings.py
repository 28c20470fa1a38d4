"""Fetcher settings (`NEWSMON_FETCHER_*`)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.topics import readable_text
from services import __version__

MIN_PUSH_TOKEN_CHARS = 16
MAX_PUBLISHER_NAME_CHARS = 80


class FetcherSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NEWSMON_FETCHER_", env_file=".env", extra="ignore"
    )

    key_prefix: str = Field(default="newsmon:fetcher", description="Redis key prefix.")
    user_agent: str = f"newsmon/{__version__} (news monitor; +https://github.com/newsmon/newsmon)"
    timeout_seconds: float = Field(
        default=20.0, gt=0, description="Whole request incl. redirects and body, seconds."
    )
    connect_timeout_seconds: float = Field(default=5.0, gt=0, description="Per connect, seconds.")
    read_timeout_seconds: float = Field(default=10.0, gt=0, description="Per read, seconds.")
    max_body_bytes: int = Field(default=15_000_000, gt=0, description="Body cap, bytes.")
    api_token: str | None = Field(
        default=None,
        description="Bearer token of the /sources and /ingest API; unset, the API answers 503.",
    )
    push_tokens: dict[str, str] = Field(
        default_factory=dict,
        description="Publishers allowed to push pages, as JSON {name: token}: a push token"
        " may only POST /ingest, and what it pushes carries its name as the source.",
    )
    api_max_body_bytes: int = Field(
        default=2_000_000, gt=0, description="Largest request body the API reads, bytes."
    )
    max_redirects: int = Field(default=5, ge=0, description="Redirects followed per request.")
    min_poll_seconds: float = Field(default=60.0, gt=0, description="Shortest poll interval.")
    max_poll_seconds: float = Field(default=86_400.0, gt=0, description="Longest poll interval.")
    tick_seconds: float = Field(default=1.0, gt=0, description="How often due sources are checked.")
    state_refresh_seconds: float = Field(
        default=15.0, gt=0, description="How often sources and schedules are re-read from Redis."
    )
    poll_jitter_ratio: float = Field(
        default=0.1, ge=0, lt=1, description="Next poll spread by up to this share of the delay."
    )
    backoff_jitter_ratio: float = Field(
        default=0.25, ge=0, lt=1, description="Retry delay spread by up to this share."
    )
    broken_after_failures: int = Field(
        default=8, ge=1, description="Failures in a row after which a source is marked broken."
    )
    broken_retry_seconds: float = Field(
        default=21_600.0, gt=0, description="Retry interval of a broken source, seconds."
    )
    max_concurrent_polls: int = Field(default=16, ge=1, description="Sources polled at once.")
    seen_retention_seconds: float = Field(
        default=30 * 86_400,
        gt=0,
        description="A published article id is remembered this long (seconds) after it was"
        " last listed in a feed: items still listed are never published twice.",
    )
    max_items_per_poll: int = Field(
        default=200, ge=1, description="New items fetched per poll; the rest wait for the next."
    )
    max_child_sitemaps: int = Field(
        default=5, ge=1, description="Child sitemaps read per poll of a sitemap index."
    )
    host_concurrency: int = Field(
        default=2, ge=1, description="Requests in flight per host, across replicas."
    )
    host_min_interval_seconds: float = Field(
        default=0.25, ge=0, description="Least time between two requests to one host, seconds."
    )
    robots_ttl_seconds: float = Field(
        default=86_400.0, gt=0, description="How long a robots.txt is cached, seconds."
    )
    robots_error_ttl_seconds: float = Field(
        default=600.0, gt=0, description="How long an unreadable robots.txt disallows, seconds."
    )
    poll_lease_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Lease of a poll and of its requests' host slots, renewed every third of it "
        "while they run; a crashed fetcher's leases run out this soon, seconds.",
    )

    @field_validator("push_tokens")
    @classmethod
    def _named_long_tokens(cls, tokens: dict[str, str]) -> dict[str, str]:
        for name, token in tokens.items():
            readable_text(name, "a publisher's name", MAX_PUBLISHER_NAME_CHARS)
            if len(token) < MIN_PUSH_TOKEN_CHARS:
                raise ValueError(f"the push token of {name!r} is under 16 characters")
        if len(set(tokens.values())) < len(tokens):
            raise ValueError("two publishers share one push token")
        return tokens
