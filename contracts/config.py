"""The YAML configuration users write: sources, topics and network policy."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import Field, field_validator, model_validator

from contracts.base import ConfigModel
from contracts.sources import SourceConfig
from contracts.streams import topic_alerts_stream, topic_slug
from contracts.subscriptions import WebhookSubscription
from contracts.topics import TopicConfig

ANY_PORT = "*"


def allow_list_entry(entry: str) -> tuple[str, str]:
    """An allow-list entry as (host, port): "Example.org:8080" -> ("example.org", "8080"),
    "127.0.0.1:*" -> ("127.0.0.1", "*"), "[::1]:8080" -> ("::1", "8080"), a bare host or
    IPv6 address -> (host, ""). ValueError for a port that is not a number or "*"."""
    text = entry.strip().lower()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host or (port and port != ANY_PORT and not (port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError(f"{entry!r}: write host, host:port or host:* (every port)")
    return host, port


class NewsmonConfig(ConfigModel):
    """The whole configuration file."""

    sources: tuple[SourceConfig, ...] = ()
    topics: tuple[TopicConfig, ...] = ()
    subscriptions: tuple[WebhookSubscription, ...] = ()
    allowed_private_hosts: tuple[str, ...] = Field(
        default=(),
        description="Hosts on private or loopback addresses newsmon may contact (fetches and"
        ' webhooks): "host:port", "host:*" for every port, or "host" for ports 80 and 443.',
    )

    @field_validator("allowed_private_hosts")
    @classmethod
    def _host_and_port(cls, entries: tuple[str, ...]) -> tuple[str, ...]:
        for entry in entries:
            allow_list_entry(entry)
        return entries

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
