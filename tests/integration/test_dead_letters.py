"""A malformed message on each consumed stream lands in its `.dlq` with the reason,
is acknowledged, and the consumer goes on with the next message."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from contracts import CleanArticle, DeadLetter, NewsmonConfig, RawArticle, TopicConfig
from contracts.streams import (
    ALERTS,
    ARTICLES_CLEAN,
    ARTICLES_RAW,
    CONSUMED_STREAMS,
    STORIES_EVENTS,
    dead_letter_stream,
)
from services.common.bus import DATA_FIELD, publish
from services.common.pipeline import running_services, wait_until_done
from services.common.settings import CommonSettings
from services.registry import SERVICES

pytestmark = pytest.mark.integration

NOW = datetime(2025, 10, 9, 12, 0, tzinfo=UTC)
PAGE = (
    "<html lang='en'><head><title>Reactor approved</title></head><body><article>"
    "<h1>Reactor approved</h1>"
    + "".join(
        f"<p>Regulators approved the new OpenAI data centre reactor plan, paragraph {i},"
        " after months of public hearings on nuclear energy and grid capacity.</p>"
        for i in range(8)
    )
    + "</article></body></html>"
)

MALFORMED: list[tuple[str, dict[bytes, bytes]]] = [
    ("not_json", {DATA_FIELD: b"{this is not json"}),
    ("wrong_schema", {DATA_FIELD: b'{"schema_version": 1, "article_id": 42}'}),
    ("binary", {DATA_FIELD: b"\xff\xfe\x00\x01"}),
    ("no_data_field", {b"something": b"else"}),
]


def _settings(redis_url: str, tmp_path_str: str) -> CommonSettings:
    return CommonSettings(
        redis_url=redis_url,
        data_dir=tmp_path_str,
        http_port=0,
        handler_attempts=1,
        retry_base_seconds=0,
    )


async def _dead_letters(redis: aioredis.Redis, stream: str) -> list[DeadLetter]:
    entries = await redis.xrange(dead_letter_stream(stream))
    return [DeadLetter.model_validate_json(fields[DATA_FIELD]) for _, fields in entries]


async def test_malformed_messages_are_parked_and_consumers_keep_going(
    redis: aioredis.Redis, redis_url: str, tmp_path: object
) -> None:
    config = NewsmonConfig(topics=(TopicConfig(name="OpenAI", keywords=("OpenAI",)),))
    for stream in CONSUMED_STREAMS:
        for _, fields in MALFORMED:
            await redis.xadd(stream, fields)
    raw = RawArticle(
        article_id="a-1",
        url="http://news.test/a",
        final_url="http://news.test/a",
        source="test",
        fetched_at=NOW,
        html=PAGE,
    )
    await publish(redis, ARTICLES_RAW, raw)

    async with running_services(
        list(SERVICES.values()), settings=_settings(redis_url, str(tmp_path)), config=config
    ) as pipeline:
        assert await wait_until_done(pipeline, timeout_seconds=60)
        for stream in CONSUMED_STREAMS:
            letters = await _dead_letters(redis, stream)
            assert len(letters) == len(MALFORMED), stream
            assert {letter.reason for letter in letters} == {"invalid_message"}
            assert all(letter.error for letter in letters)
            pending = await redis.xpending(stream, CONSUMED_STREAMS[stream])
            assert pending["pending"] == 0, f"{stream} left messages unacknowledged"
        # the valid article behind the malformed ones went all the way through
        injected = len(MALFORMED)
        assert await redis.xlen(ARTICLES_CLEAN) == injected + 1
        assert await redis.xlen(STORIES_EVENTS) == injected + 1
        assert await redis.xlen(ALERTS) == 1
        clean = CleanArticle.model_validate_json(
            (await redis.xrevrange(ARTICLES_CLEAN, count=1))[0][1][DATA_FIELD]
        )
        assert "Regulators approved" in clean.text
        metrics = await _metrics(pipeline.http_url)
        assert 'newsmon_dead_letters_total{reason="invalid_message",stream="articles.raw"} 4.0' in (
            metrics
        )


async def _metrics(http_url: str) -> str:
    import httpx

    async with httpx.AsyncClient() as client:
        response = await client.get(f"{http_url}/metrics")
    await asyncio.sleep(0)
    return response.text
