"""The committed AsyncAPI document matches the code: the channel catalogue it is
generated from, and the streams and models the services really consume."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import redis.asyncio as aioredis
from conftest import REPO
from prometheus_client import CollectorRegistry

from contracts import NewsmonConfig
from contracts.channels import CHANNELS
from contracts.streams import (
    ALERTS,
    ARTICLES_CLEAN,
    ARTICLES_RAW,
    CONSUMED_STREAMS,
    STORIES_EVENTS,
    dead_letter_stream,
    topic_alerts_stream,
    topic_slug,
)
from services.common.asyncapi import asyncapi_json
from services.common.clock import utc_now
from services.common.metrics import ConsumerMetrics
from services.common.runtime import Deps
from services.common.settings import CommonSettings
from services.registry import SERVICES

ADDRESS_EXPRESSION = re.compile(r"\{([^{}]*)\}")
"""A `{name}` in a channel address: AsyncAPI 3.0 substitutes the parameter `name` there."""
PARAMETER_NAME = re.compile(r"[A-Za-z0-9_\-]+")
"""The names AsyncAPI 3.0 allows as keys of a channel's `parameters`."""
PARAMETER_FIELDS = {"enum", "default", "description", "examples", "location"}
"""The fields of an AsyncAPI 3.0 Parameter Object."""
SAMPLE_TOPIC = "Nuclear energy"


def committed_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (REPO / "contracts" / "asyncapi.json").read_text(encoding="utf-8")
    )
    return document


def resolved_address(channel: dict[str, Any]) -> str:
    """The channel's address with each parameter replaced: a parameter with one allowed value
    by that value, `topic` by the sample topic's slug."""

    def value(expression: re.Match[str]) -> str:
        name = expression[1]
        if name == "topic":
            return topic_slug(SAMPLE_TOPIC)
        parameter = channel["parameters"][name]
        (only_value,) = parameter["enum"]
        assert parameter["default"] == only_value
        return str(only_value)

    return ADDRESS_EXPRESSION.sub(value, channel["address"])


def references(node: Any) -> Iterator[str]:
    """Every `$ref` in `node`, at any depth."""
    if isinstance(node, dict):
        for key, child in node.items():
            if key == "$ref":
                yield child
            else:
                yield from references(child)
    elif isinstance(node, list):
        for child in node:
            yield from references(child)


def test_committed_document_is_the_generated_one() -> None:
    committed = (REPO / "contracts" / "asyncapi.json").read_text(encoding="utf-8")
    assert committed == asyncapi_json(), "run: newsmon asyncapi > contracts/asyncapi.json"


def test_every_name_in_an_address_is_a_declared_parameter() -> None:
    for key, channel in committed_document()["channels"].items():
        address = channel["address"]
        used = ADDRESS_EXPRESSION.findall(address)
        declared = channel.get("parameters", {})
        assert set(used) == set(declared), key
        assert not re.search("[{}]", ADDRESS_EXPRESSION.sub("", address)), key
        for name, parameter in declared.items():
            assert PARAMETER_NAME.fullmatch(name), (key, name)
            assert set(parameter) <= PARAMETER_FIELDS, (key, name)
            assert parameter["description"], (key, name)


def test_addresses_resolve_to_the_streams_the_services_use() -> None:
    channels = committed_document()["channels"].values()
    resolved = {resolved_address(channel) for channel in channels}
    assert resolved == {
        ARTICLES_RAW,
        ARTICLES_CLEAN,
        STORIES_EVENTS,
        ALERTS,
        topic_alerts_stream(SAMPLE_TOPIC),
        *(dead_letter_stream(stream) for stream in CONSUMED_STREAMS),
    }
    for channel in channels:
        literal_name = channel["bindings"]["redis"]["channel"]
        assert literal_name in {catalogued.address for catalogued in CHANNELS}
        sample_name = literal_name.replace("{topic}", topic_slug(SAMPLE_TOPIC))
        assert resolved_address(channel) == sample_name, channel["address"]


def test_every_reference_resolves() -> None:
    document = committed_document()
    found = list(references(document))
    for reference in found:
        assert reference.startswith("#/"), reference
        node: Any = document
        for token in reference.removeprefix("#/").split("/"):
            key = unquote(token).replace("~1", "/").replace("~0", "~")
            assert isinstance(node, dict) and key in node, reference
            node = node[key]
    assert any(reference.startswith("#/channels/") for reference in found)


async def test_every_consumed_stream_is_documented_with_its_model(redis: aioredis.Redis) -> None:
    registry = CollectorRegistry()
    deps = Deps(
        settings=CommonSettings(),
        config=NewsmonConfig(),
        redis=redis,
        registry=registry,
        consumer_metrics=ConsumerMetrics(registry),
        clock=utc_now,
    )
    catalogue = {channel.address: channel for channel in CHANNELS}
    consumed = 0
    for name, factory in SERVICES.items():
        service = factory(deps)
        for sub in service.subscriptions:
            channel = catalogue[sub.consumer.stream]
            assert channel.message is sub.consumer.model, sub.consumer.stream
            assert channel.consumer == name
            consumed += 1
        for close in service.closers:
            await close()
    assert consumed == 3


def test_the_command_line_knows_every_service() -> None:
    from services.cli import SERVICE_NAMES

    assert tuple(SERVICES) == SERVICE_NAMES
