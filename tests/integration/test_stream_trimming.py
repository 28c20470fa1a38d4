"""Streams are trimmed of what every consumer group finished, never of what one
has not read or not acknowledged yet."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from contracts.streams import ARTICLES_CLEAN, ARTICLES_RAW
from services.common.settings import CommonSettings
from services.common.streams import parse_id, trim_finished, trim_floor

pytestmark = pytest.mark.integration

STREAM = "test.trim"


def test_floor_is_the_oldest_unfinished_entry_or_the_retention_edge() -> None:
    assert trim_floor([(500, 0), (300, 2)], now_ms=10_000, retention_ms=1_000) == (300, 2)
    assert trim_floor([(9_500, 0)], now_ms=10_000, retention_ms=1_000) == (9_000, 0)
    assert trim_floor([(9_500, 0)], now_ms=500, retention_ms=1_000) == (0, 0)


async def test_only_entries_every_group_finished_are_dropped(redis: aioredis.Redis) -> None:
    ids = [await redis.xadd(STREAM, {b"n": str(n).encode()}, id=f"{n + 1}-0") for n in range(6)]
    await redis.xgroup_create(STREAM, "fast", id="0")
    await redis.xgroup_create(STREAM, "slow", id="0")
    await redis.xreadgroup("fast", "c", {STREAM: ">"})
    await redis.xack(STREAM, "fast", *ids)  # fast finished all six
    await redis.xreadgroup("slow", "c", {STREAM: ">"}, count=4)
    await redis.xack(STREAM, "slow", ids[0], ids[1])  # slow: 2 done, 2 pending, 2 unread

    dropped = await trim_finished(redis, STREAM, now_ms=10**12, retention_ms=0)

    remaining = [parse_id(i.decode()) for i, _ in await redis.xrange(STREAM)]
    assert dropped == 2
    assert remaining == [(3, 0), (4, 0), (5, 0), (6, 0)]


async def test_recent_entries_stay_for_the_retention_period(redis: aioredis.Redis) -> None:
    for n in range(3):
        await redis.xadd(STREAM, {b"n": b"x"}, id=f"{1000 * (n + 1)}-0")
    await redis.xgroup_create(STREAM, "g", id="$")  # everything counts as finished
    assert await trim_finished(redis, STREAM, now_ms=3_500, retention_ms=2_000) == 1
    assert await redis.xlen(STREAM) == 2


async def test_a_stream_nobody_consumes_is_left_alone(redis: aioredis.Redis) -> None:
    await redis.xadd(STREAM, {b"n": b"x"}, id="1-0")
    assert await trim_finished(redis, STREAM, now_ms=10**12, retention_ms=0) == 0


def test_raw_pages_are_kept_an_hour_and_other_entries_a_day_by_default() -> None:
    """Raw entries carry whole pages: a day of them would dwarf the story index in Redis."""
    settings = CommonSettings()
    assert settings.retention_seconds(ARTICLES_RAW) == 3_600
    assert settings.retention_seconds(ARTICLES_CLEAN) == 86_400
    assert CommonSettings(raw_retention_seconds=60).retention_seconds(ARTICLES_RAW) == 60
