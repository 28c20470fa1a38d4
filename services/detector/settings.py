"""Detector settings (`NEWSMON_DETECTOR_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.detector.index import STATS_PERIOD_SECONDS


class DetectorSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NEWSMON_DETECTOR_", env_file=".env", extra="ignore"
    )

    key_prefix: str = Field(default="newsmon:detector", description="Redis key prefix.")
    story_ttl_seconds: int = Field(
        default=7 * 24 * 3600, gt=0, description="Stories idle this long expire (seconds)."
    )
    close_after_hours: float = Field(
        default=7 * 24.0,
        gt=0,
        description="A story accepts no more articles this long after its last one (hours).",
    )
    stats_period_seconds: int = Field(
        default=STATS_PERIOD_SECONDS,
        gt=0,
        description=(
            "Token statistics are counted in generations this long and read over the current "
            "and the previous one, so they cover the last one to two periods; at least "
            "close_after_hours, which a shorter one is raised to (seconds)."
        ),
    )
