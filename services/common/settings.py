"""Settings every service reads: where Redis is, where data lives, the HTTP port.

All come from `NEWSMON_*` environment variables (or a `.env` file); `REDIS_URL`
is also accepted since that is what hosting platforms set.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.streams import ARTICLES_RAW, DEAD_LETTER_RETENTION_SECONDS


def default_consumer_name() -> str:
    """A consumer name unique per process: host and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


class CommonSettings(BaseSettings):
    """Runtime settings shared by all services."""

    model_config = SettingsConfigDict(env_prefix="NEWSMON_", env_file=".env", extra="ignore")

    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("NEWSMON_REDIS_URL", "REDIS_URL"),
        description="Redis server to use; unset starts an embedded Redis in data_dir.",
    )
    data_dir: Path = Field(default=Path(".newsmon"), description="Embedded Redis data folder.")
    config: Path = Field(default=Path("newsmon.yaml"), description="YAML: sources and topics.")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535, description="/metrics and health port.")
    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"
    consumer_name: str = Field(default_factory=default_consumer_name)
    handler_attempts: int = Field(
        default=3, ge=1, description="Tries of a failing message before it is dead-lettered."
    )
    retry_base_seconds: float = Field(
        default=0.2, ge=0, description="First retry delay; doubles on every retry."
    )
    reclaim_idle_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Entries a consumer read but left unacknowledged this long are taken over.",
    )
    max_deliveries: int = Field(
        default=5, ge=1, description="Deliveries of one entry before it is dead-lettered."
    )
    max_in_flight: int = Field(
        default=10,
        ge=1,
        description="Entries one consumer reads and holds unacknowledged at a time, per stream "
        "(backpressure: a slow stage never pulls its whole backlog into memory).",
    )
    dead_letter_retention_seconds: float = Field(
        default=DEAD_LETTER_RETENTION_SECONDS,
        gt=0,
        description="Dead letters stay on their `.dlq` stream this long (seconds), then go.",
    )
    stream_retention_seconds: float = Field(
        default=86_400.0,
        ge=0,
        description="Processed entries stay on their stream this long (seconds), then go.",
    )
    raw_retention_seconds: float = Field(
        default=3_600.0,
        ge=0,
        description="Processed raw pages (`articles.raw`, whole HTML pages of about 100 KB) "
        "stay this long (seconds): 24 hours of them would hold about 100 KB per article in Redis.",
    )
    trim_interval_seconds: float = Field(default=60.0, gt=0, description="Trim every (seconds).")

    def retention_seconds(self, stream: str) -> float:
        """How long processed entries of `stream` are kept (seconds)."""
        if stream == ARTICLES_RAW:
            return self.raw_retention_seconds
        return self.stream_retention_seconds
