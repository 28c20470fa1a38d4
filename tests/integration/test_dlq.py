"""`newsmon dlq`: dead letters listed, shown, replayed onto their stream once the
cause is fixed, and purged; fetch failures are kept, not replayed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
from conftest import newsmon_dlq
from harness import LocalRedisCluster
from prometheus_client import CollectorRegistry

from contracts import TopicConfig
from contracts.streams import dead_letter_stream
from services.common.bus import DATA_FIELD, dead_letter, encode, park
from services.common.consumer import Consumer
from services.common.errors import PermanentError
from services.common.metrics import ConsumerMetrics
from services.common.redis import connect

pytestmark = pytest.mark.integration

STREAM = "test.topics"
NOW = datetime(2025, 10, 9, tzinfo=UTC)
FETCH_FAILURE = dead_letter(
    stream=STREAM,
    entry_id="",
    service="fetcher",
    reason="broken_feed",
    error="not a feed",
    payload=b"<html>",
    now=NOW,
)
"""A fetch failure parked as the fetcher parks one: a record, not replayable."""


async def test_replay_after_a_fix_processes_what_was_parked(
    redis: aioredis.Redis, redis_url: str
) -> None:
    await _replay_after_a_fix(redis, redis_url)


async def test_replay_on_a_cluster_moves_letters_back_in_one_transaction(
    cluster: LocalRedisCluster,
) -> None:
    redis = connect(cluster.url)
    try:
        await _replay_after_a_fix(redis, cluster.url)
    finally:
        await redis.aclose()


async def _replay_after_a_fix(redis: aioredis.Redis, redis_url: str) -> None:
    handled: list[str] = []
    fixed = False

    async def handle(topic: TopicConfig) -> None:
        if not fixed:
            raise PermanentError("unknown_topic", f"no route for topic {topic.name}")
        handled.append(topic.name)

    consumer = Consumer(
        service="test",
        stream=STREAM,
        model=TopicConfig,
        handle=handle,
        redis=redis,
        metrics=ConsumerMetrics(CollectorRegistry()),
        clock=lambda: NOW,
    )
    for number, name in enumerate(("energy", "markets")):
        topic = TopicConfig(name=name, keywords=("kiwi",))
        await consumer.consume(f"{number + 1}-0", encode(topic))
    await park(redis, FETCH_FAILURE)

    listed = newsmon_dlq(redis_url, "list", STREAM)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("unknown_topic") == 2
    assert "[not replayable]" in listed.stdout and "3 dead letter(s)" in listed.stdout
    listed_all = newsmon_dlq(redis_url, "list").stdout
    assert f"{STREAM}  3 dead letter(s) in {dead_letter_stream(STREAM)}" in listed_all

    first_id = listed.stdout.split()[0]
    shown = newsmon_dlq(redis_url, "show", STREAM, first_id)
    assert json.loads(shown.stdout)["reason"] == "unknown_topic"

    assert newsmon_dlq(redis_url, "replay", STREAM).returncode == 2  # ids or --all needed
    replayed = newsmon_dlq(redis_url, "replay", STREAM, "--all")
    assert "replayed 2" in replayed.stdout and "1 not replayable" in replayed.stdout

    fixed = True
    for entry_id, fields in await redis.xrange(STREAM):
        await consumer.consume(entry_id.decode(), fields[DATA_FIELD])
    assert handled == ["energy", "markets"]

    purged = newsmon_dlq(redis_url, "purge", STREAM, "--all")
    assert "purged 1" in purged.stdout
    assert await redis.xlen(dead_letter_stream(STREAM)) == 0


async def test_dead_letters_older_than_the_retention_go_when_a_new_one_is_parked(
    redis: aioredis.Redis,
) -> None:
    dlq = dead_letter_stream(STREAM)
    await redis.xadd(dlq, {DATA_FIELD: b"{}"}, id="1000-0")  # parked in 1970
    kept = await park(redis, FETCH_FAILURE, retention_seconds=86_400)
    assert [entry_id.decode() for entry_id, _ in await redis.xrange(dlq)] == [kept]
