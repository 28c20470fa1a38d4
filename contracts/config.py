"""The YAML configuration users write: sources, topics and network policy."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import Field, model_validator

from contracts.base import ConfigModel
from contracts.sources import SourceConfig
from contracts.streams import topic_alerts_stream, topic_slug
from contracts.subscriptions import WebhookSubscription
from contracts.topics import TopicConfig


class NewsmonConfig(ConfigModel):
    """The whole configuration file."""

    sources: tuple[SourceConfig, ...] = ()
    topics: tuple[TopicConfig, ...] = ()
    subscriptions: tuple[WebhookSubscription, ...] = ()
    allowed_private_hosts: tuple[str, ...] = Field(
        default=(),
        description="Hosts on private or loopback addresses the fetcher may contact.",
    )

    @model_validator(mode="after")
    def _one_stream_per_topic(self) -> NewsmonConfig:
        clash = first_stream_clash(topic.name for topic in self.topics)
        if clash:
            raise ValueError(clash)
        return self


def first_stream_clash(names: Iterable[str]) -> str | None:
    """Why two of these topic names cannot live together (they would share one alerts
    stream, as "OpenAI" and "OPENAI" do), or None."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(topic_slug(name), name)
        if other != name:
            return (
                f"topics {other!r} and {name!r} would share the stream "
                f"{topic_alerts_stream(name)}: rename one"
            )
    return None


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid."""


def load_config(path: Path) -> NewsmonConfig:
    """Read and validate a YAML configuration file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
    try:
        return NewsmonConfig.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"config {path} is invalid: {exc}") from exc
