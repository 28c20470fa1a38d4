"""The YAML configuration users write: sources, topics and network policy."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field

from contracts.base import ConfigModel
from contracts.sources import SourceConfig
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
