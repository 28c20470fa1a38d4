"""A single Redis upgraded in place keeps its data: keys that versions before cluster support
named without hash tags are renamed at start, and keys named as today are left alone."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from contracts.streams import dead_letter_stream, topic_alerts_stream
from services.alerter.delivery import webhook_retry_stream
from services.alerter.keys import alerter_key, legacy_alerter_keys, renamed_alerter_key
from services.common.keys import PIPELINE_DEAD_LETTERS, rename_legacy_keys, renamed_dead_letters
from services.fetcher.store import (
    fetcher_key,
    legacy_fetcher_keys,
    renamed_fetcher_key,
    seen_key,
)

pytestmark = pytest.mark.integration

FETCHER = "newsmon:fetcher"
ALERTER = "newsmon:alerter"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("newsmon:fetcher:sources", "{newsmon:fetcher}:sources"),
        ("newsmon:fetcher:source:wire", "{newsmon:fetcher}:source:wire"),
        ("newsmon:fetcher:seen-at", "newsmon:fetcher:{articles.raw}:seen-at"),
        ("newsmon:fetcher:seen", None),  # the legacy set: migrate_legacy_seen moves it
        ("{newsmon:fetcher}:sources", None),
        ("newsmon:fetcher:{articles.raw}:seen-at", None),
        ("newsmon:fetchers", None),
    ],
)
def test_fetcher_keys_get_their_hash_tag(old: str, new: str | None) -> None:
    assert renamed_fetcher_key(FETCHER, old) == new


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("newsmon:alerter:sent:abc", "newsmon:alerter:{alerts}:sent:abc"),
        ("newsmon:alerter:api:topics", "newsmon:alerter:{alerts}:api:topics"),
        ("alerts.openai", "{alerts}.openai"),
        ("alerts.webhook.ops", "{alerts}.webhook.ops"),
        ("alerts.webhook.ops.dlq", "{alerts}.webhook.ops.dlq"),
        ("{alerts}.openai", None),
        ("{newsmon:alerter:stories}:all", None),
        ("alerts", None),
    ],
)
def test_alerter_keys_move_beside_the_alerts_stream(old: str, new: str | None) -> None:
    assert renamed_alerter_key(ALERTER, old) == new


def test_only_the_pipeline_dead_letters_are_renamed_by_the_runtime() -> None:
    assert renamed_dead_letters("articles.raw.dlq") == "{articles.raw}.dlq"
    assert renamed_dead_letters("{articles.raw}.dlq") is None
    assert renamed_dead_letters("alerts.webhook.ops.dlq") is None  # the alerter's to rename


async def test_an_upgraded_server_keeps_sources_seen_ids_topics_and_alerts(
    redis: aioredis.Redis,
) -> None:
    await redis.hset("newsmon:fetcher:sources", "wire", '{"name": "wire"}')
    await redis.zadd("newsmon:fetcher:seen-at", {"article-1": 1.0})
    await redis.hset("newsmon:alerter:api:topics", "OpenAI", "{}")
    await redis.xadd("alerts.openai", {"__data__": b"{}"})
    await redis.xadd("alerts.webhook.ops.dlq", {"__data__": b"{}"})
    await redis.xadd("articles.raw.dlq", {"__data__": b"{}"})
    await redis.set("newsmon:fetcher:robots:https://a.example", "x", ex=60)
    legacy = [PIPELINE_DEAD_LETTERS, legacy_fetcher_keys(FETCHER), *legacy_alerter_keys(ALERTER)]

    assert await rename_legacy_keys(redis, legacy) == 7

    assert await redis.hget(fetcher_key(FETCHER, "sources"), "wire") == b'{"name": "wire"}'
    assert await redis.zscore(seen_key(FETCHER), "article-1") == 1.0
    assert await redis.hget(alerter_key(ALERTER, "api", "topics"), "OpenAI") == b"{}"
    assert await redis.xlen(topic_alerts_stream("OpenAI")) == 1
    assert await redis.xlen(dead_letter_stream(webhook_retry_stream("ops"))) == 1
    assert await redis.xlen(dead_letter_stream("articles.raw")) == 1
    assert 0 < await redis.ttl(fetcher_key(FETCHER, "robots", "https://a.example")) <= 60
    assert await rename_legacy_keys(redis, legacy) == 0  # the second start has nothing to do


async def test_a_name_already_taken_keeps_both_keys(redis: aioredis.Redis) -> None:
    await redis.hset("newsmon:fetcher:sources", "old", "1")
    await redis.hset(fetcher_key(FETCHER, "sources"), "new", "1")

    assert await rename_legacy_keys(redis, [legacy_fetcher_keys(FETCHER)]) == 0

    assert await redis.hkeys("newsmon:fetcher:sources") == [b"old"]
    assert await redis.hkeys(fetcher_key(FETCHER, "sources")) == [b"new"]
