"""Cleaner settings (`NEWSMON_CLEANER_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CleanerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NEWSMON_CLEANER_", env_file=".env", extra="ignore"
    )

    max_html_chars: int = Field(
        default=15_000_000, gt=0, description="Pages longer than this are dead-lettered (chars)."
    )
    extraction_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        description="Time budget of one page's extraction (seconds); over it, dead-lettered.",
    )
    extraction_workers: int = Field(
        default=1, ge=1, description="Worker processes extracting pages in parallel."
    )
