"""The shared consumer: retries transient failures, parks permanent ones, handles batches as
one, takes over what a dead consumer left unacknowledged but never what a live one holds, and
never holds more than a few entries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
from faststream.redis import RedisBroker
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from contracts import DeadLetter, TopicConfig
from contracts.streams import dead_letter_stream
from services.common.bus import DATA_FIELD, encode
from services.common.consumer import Consumer
from services.common.errors import PermanentError
from services.common.metrics import ConsumerMetrics
from services.common.subscriptions import Subscription, keep_held, reclaim_stalled, subscribe

pytestmark = pytest.mark.integration

STREAM = "test.input"
NOW = datetime(2025, 10, 9, tzinfo=UTC)
MESSAGE = TopicConfig(name="t", keywords=("kiwi",))


def make_consumer(
    redis: aioredis.Redis, handle: Callable[[TopicConfig], Awaitable[None]], attempts: int = 3
) -> Consumer[TopicConfig]:
    return Consumer(
        service="test",
        stream=STREAM,
        model=TopicConfig,
        handle=handle,
        redis=redis,
        metrics=ConsumerMetrics(CollectorRegistry()),
        clock=lambda: NOW,
        attempts=attempts,
        retry_base_seconds=0,
    )


async def dead_letters(redis: aioredis.Redis) -> list[DeadLetter]:
    entries = await redis.xrange(dead_letter_stream(STREAM))
    return [DeadLetter.model_validate_json(fields[DATA_FIELD]) for _, fields in entries]


async def test_a_transient_failure_is_retried_and_then_succeeds(redis: aioredis.Redis) -> None:
    calls: list[TopicConfig] = []

    async def flaky(message: TopicConfig) -> None:
        calls.append(message)
        if len(calls) < 3:
            raise ConnectionError("redis went away")

    await make_consumer(redis, flaky).consume("1-0", encode(MESSAGE))
    assert calls == [MESSAGE] * 3
    assert await dead_letters(redis) == []


async def test_a_failure_that_persists_is_parked_with_the_error(redis: aioredis.Redis) -> None:
    async def broken(message: TopicConfig) -> None:
        raise RuntimeError("index corrupt")

    await make_consumer(redis, broken, attempts=2).consume("7-0", encode(MESSAGE))
    [letter] = await dead_letters(redis)
    assert (letter.reason, letter.entry_id, letter.service) == (
        "failed_after_retries",
        "7-0",
        "test",
    )
    assert "index corrupt" in letter.error
    assert TopicConfig.model_validate_json(letter.payload) == MESSAGE


async def test_a_batch_is_one_call_retried_and_parked_as_one_an_invalid_entry_alone(
    redis: aioredis.Redis,
) -> None:
    calls: list[int] = []

    async def endpoint_down(messages: Sequence[TopicConfig]) -> None:
        calls.append(len(messages))
        raise RuntimeError("HTTP 503")

    async def unused(message: TopicConfig) -> None:
        raise AssertionError("a batch is handled with handle_batch")

    consumer = replace(
        make_consumer(redis, unused, attempts=2),
        handle_batch=endpoint_down,
        exhausted_reason="webhook_failed",
        replay_stream="test.retry",
    )
    batch = [("1-0", encode(MESSAGE)), ("2-0", b'{"name": 42}'), ("3-0", encode(MESSAGE))]
    await consumer.consume_batch(batch)
    assert calls == [2, 2]  # the two valid entries, tried twice as one
    entries = await redis.xrange(dead_letter_stream("test.retry"))
    letters = [DeadLetter.model_validate_json(fields[DATA_FIELD]) for _, fields in entries]
    assert [(letter.entry_id, letter.reason) for letter in letters] == [
        ("2-0", "invalid_message"),
        ("1-0", "webhook_failed"),
        ("3-0", "webhook_failed"),
    ]
    assert {letter.stream for letter in letters} == {"test.retry"}  # a replay goes there


async def test_an_entry_held_for_long_is_not_reclaimed_by_another_consumer(
    redis: aioredis.Redis,
) -> None:
    await redis.xgroup_create(STREAM, "g", id="0", mkstream=True)
    entry_id = (await redis.xadd(STREAM, {DATA_FIELD: encode(MESSAGE)})).decode()
    await redis.xreadgroup("g", "slow", {STREAM: ">"})
    handled: list[TopicConfig] = []

    async def record(message: TopicConfig) -> None:
        handled.append(message)

    holder = Subscription("g", make_consumer(redis, record))
    holder.in_flight.ids.add(entry_id)  # "slow" is handling it, for longer than the idle time
    other = Subscription("g", make_consumer(redis, record))
    tasks = [
        asyncio.create_task(keep_held(redis, holder, "slow", interval_seconds=0.05)),
        asyncio.create_task(
            reclaim_stalled(
                redis, other, "other", min_idle_ms=200, interval_seconds=0.05, max_deliveries=5
            )
        ),
    ]
    try:
        async with asyncio.timeout(30):  # a second of scans, five times the idle time
            while other.in_flight.reclaim_scans < 20:
                await asyncio.sleep(0.05)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    [pending] = await redis.xpending_range(STREAM, "g", "-", "+", 10)
    assert pending["consumer"] == b"slow" and pending["times_delivered"] == 1
    assert handled == []


async def test_a_permanent_failure_is_parked_at_once_with_its_reason(
    redis: aioredis.Redis,
) -> None:
    calls = 0

    async def refuses(message: TopicConfig) -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("page_too_large", "page has 20000000 characters")

    await make_consumer(redis, refuses).consume("3-0", encode(MESSAGE))
    [letter] = await dead_letters(redis)
    assert calls == 1
    assert letter.reason == "page_too_large"


async def test_entries_a_dead_consumer_left_pending_are_reclaimed(redis: aioredis.Redis) -> None:
    await redis.xgroup_create(STREAM, "g", id="0", mkstream=True)
    await redis.xadd(STREAM, {DATA_FIELD: encode(MESSAGE)})
    await redis.xreadgroup("g", "dead-consumer", {STREAM: ">"})  # read, never acknowledged
    handled: list[TopicConfig] = []

    async def record(message: TopicConfig) -> None:
        handled.append(message)

    sub = Subscription("g", make_consumer(redis, record))
    task = asyncio.create_task(
        reclaim_stalled(
            redis, sub, "live-consumer", min_idle_ms=50, interval_seconds=0.05, max_deliveries=5
        )
    )
    try:
        for _ in range(100):
            if handled:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert handled == [MESSAGE]
    assert (await redis.xpending(STREAM, "g"))["pending"] == 0


async def test_an_entry_that_keeps_killing_its_consumers_is_parked(redis: aioredis.Redis) -> None:
    await redis.xgroup_create(STREAM, "g", id="0", mkstream=True)
    entry_id = await redis.xadd(STREAM, {DATA_FIELD: encode(MESSAGE)})
    await redis.xreadgroup("g", "dead-0", {STREAM: ">"})
    for died in ("dead-1", "dead-2"):  # taken over twice more, each time its consumer died
        await redis.xclaim(STREAM, "g", died, 0, [entry_id])
    handled: list[TopicConfig] = []

    async def record(message: TopicConfig) -> None:
        handled.append(message)

    sub = Subscription("g", make_consumer(redis, record))
    task = asyncio.create_task(
        reclaim_stalled(redis, sub, "live", min_idle_ms=1, interval_seconds=0.05, max_deliveries=3)
    )
    try:
        for _ in range(100):
            if await redis.xlen(dead_letter_stream(STREAM)):
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    [letter] = await dead_letters(redis)
    assert letter.reason == "too_many_deliveries" and handled == []
    assert (await redis.xpending(STREAM, "g"))["pending"] == 0


async def test_a_pending_entry_deleted_from_its_stream_is_acknowledged_on_reclaim(
    redis: aioredis.Redis,
) -> None:
    await redis.xgroup_create(STREAM, "g", id="0", mkstream=True)
    gone = await redis.xadd(STREAM, {DATA_FIELD: encode(MESSAGE)})
    await redis.xadd(STREAM, {DATA_FIELD: encode(MESSAGE)})
    await redis.xreadgroup("g", "dead-consumer", {STREAM: ">"})
    await redis.xdel(STREAM, gone)
    handled: list[TopicConfig] = []

    async def record(message: TopicConfig) -> None:
        handled.append(message)

    sub = Subscription("g", make_consumer(redis, record))
    task = asyncio.create_task(
        reclaim_stalled(redis, sub, "live", min_idle_ms=50, interval_seconds=0.05, max_deliveries=5)
    )
    try:
        for _ in range(100):
            if not (await redis.xpending(STREAM, "g"))["pending"]:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert handled == [MESSAGE]
    assert (await redis.xpending(STREAM, "g"))["pending"] == 0
    assert await dead_letters(redis) == []


async def test_redis_going_away_is_waited_out_not_counted_as_a_failure(
    redis: aioredis.Redis,
) -> None:
    calls = 0

    async def redis_away_twice(message: TopicConfig) -> None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise RedisConnectionError("Connection closed by server.")

    await make_consumer(redis, redis_away_twice, attempts=1).consume("5-0", encode(MESSAGE))
    assert calls == 3
    assert await dead_letters(redis) == []


async def test_a_consumer_holds_at_most_max_in_flight_entries_of_a_backlog(
    redis: aioredis.Redis, redis_url: str
) -> None:
    backlog, bound = 200, 5
    await redis.xgroup_create(STREAM, "g", id="0", mkstream=True)
    async with redis.pipeline(transaction=False) as pipe:
        for _ in range(backlog):
            pipe.xadd(STREAM, {DATA_FIELD: encode(MESSAGE)})
        await pipe.execute()
    pending_while_handling: list[int] = []

    async def record(message: TopicConfig) -> None:
        pending_while_handling.append(int((await redis.xpending(STREAM, "g"))["pending"]))

    broker = RedisBroker(redis_url, logger=logging.getLogger("faststream"))
    sub = Subscription("g", make_consumer(redis, record))
    subscribe(broker, redis, sub, "c", polling_ms=50, max_in_flight=bound)
    await broker.start()
    try:
        async with asyncio.timeout(60):
            while (await redis.xpending(STREAM, "g"))["pending"] or (
                len(pending_while_handling) < backlog
            ):
                await asyncio.sleep(0.05)
    finally:
        await broker.stop()
    assert len(pending_while_handling) == backlog
    assert max(pending_while_handling) == bound  # read `bound` at a time, never the backlog


async def test_a_concurrent_subscription_handles_entries_side_by_side_and_acks_each(
    redis: aioredis.Redis, redis_url: str
) -> None:
    """The cleaner's subscription: while one page is extracted, the next is already handed
    over, so the extraction worker does not wait for the event loop."""
    await redis.xgroup_create(STREAM, "g", id="0", mkstream=True)
    for _ in range(6):
        await redis.xadd(STREAM, {DATA_FIELD: encode(MESSAGE)})
    running, most_at_once, handled = 0, 0, 0
    both_running = asyncio.Event()

    async def overlapping(message: TopicConfig) -> None:
        nonlocal running, most_at_once, handled
        running += 1
        most_at_once = max(most_at_once, running)
        if running == 2:
            both_running.set()
        try:
            await asyncio.wait_for(both_running.wait(), 5)  # one by one, this would time out
        finally:
            running -= 1
        handled += 1

    broker = RedisBroker(redis_url, logger=logging.getLogger("faststream"))
    subscribe(
        broker,
        redis,
        Subscription("g", make_consumer(redis, overlapping), concurrency=2),
        "c",
        50,
        5,
    )
    await broker.start()
    try:
        async with asyncio.timeout(30):
            while handled < 6 or (await redis.xpending(STREAM, "g"))["pending"]:
                await asyncio.sleep(0.05)
    finally:
        await broker.stop()
    assert most_at_once == 2
    assert await dead_letters(redis) == []
