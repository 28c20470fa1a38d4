"""Configuration of the sources the fetcher polls."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from contracts.base import ConfigModel


class SourceConfig(ConfigModel):
    """One feed to poll."""

    name: str = Field(min_length=1)
    url: str = Field(min_length=1)
    kind: Literal["rss", "atom", "feed", "json", "sitemap", "page"] = Field(
        default="feed",
        description="feed/rss/atom/json: a feed (format detected); sitemap: an XML sitemap or "
        "sitemap index (Google News too); page: one page, published once.",
    )
    lang: str | None = Field(default=None, description="Language hint, ISO 639-1.")
    interval_seconds: float = Field(default=300.0, gt=0, description="Poll interval, seconds.")
    tags: tuple[str, ...] = ()
