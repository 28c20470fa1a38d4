"""The committed AsyncAPI document matches the code: the channel catalogue it is
generated from, and the streams and models the services really consume."""

from __future__ import annotations

import redis.asyncio as aioredis
from conftest import REPO
from prometheus_client import CollectorRegistry

from contracts import NewsmonConfig
from contracts.channels import CHANNELS
from services.common.asyncapi import asyncapi_json
from services.common.clock import utc_now
from services.common.metrics import ConsumerMetrics
from services.common.runtime import Deps
from services.common.settings import CommonSettings
from services.registry import SERVICES


def test_committed_document_is_the_generated_one() -> None:
    committed = (REPO / "contracts" / "asyncapi.json").read_text(encoding="utf-8")
    assert committed == asyncapi_json(), "run: newsmon asyncapi > contracts/asyncapi.json"


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
