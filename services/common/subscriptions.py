"""Consuming a stream through a consumer group, the same way for every subscription.

A subscription is fixed (a pipeline stage) or comes and goes while the service runs
(`DynamicSubscriptions`: the alerter's webhook subscribers): a FastStream subscriber reads the
stream through its consumer group and hands each entry to the `Consumer` (validate, handle,
retry with backoff, park), a reclaimer takes over what dead consumers left idle, and a keeper
marks what this process holds (an entry being retried for minutes, a batch being gathered) as
just read, so no other consumer takes it over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Hashable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import redis.asyncio as aioredis
import structlog
from faststream import AckPolicy
from faststream.message import StreamMessage
from faststream.redis import RedisBroker, RedisStreamMessage, StreamSub
from faststream.redis.parser.binary import BinaryMessageFormatV1
from faststream.redis.subscriber.usecases.stream_subscriber import StreamSubscriber

from services.common.consumer import Consumer
from services.common.streams import claim_idle
from services.common.tasks import BackgroundTask, raise_if_cancelled, supervised

log = structlog.get_logger("newsmon.subscriptions")

K = TypeVar("K", bound=Hashable)

MAX_IN_FLIGHT = 10
"""Entries one consumer reads (and holds pending) at a time, per stream. The last entry of
a read waits for the others to be handled, so this times the slowest handling (seconds)
must stay well below the reclaim idle time (60 s); ten raw pages (at most 15 MB each) is
also a bounded amount of memory. Each read's round trip is shared by that many entries."""


@dataclass(slots=True)
class InFlight:
    """What one subscription holds in this process: entries read or claimed and not yet
    acknowledged, and the batch being gathered."""

    ids: set[str] = field(default_factory=set)
    batch: list[tuple[str, bytes]] = field(default_factory=list)
    """(entry id, body) gathered for the next `consume_batch`, oldest first."""
    gathered: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when an entry joins an empty batch."""
    handlers: set[asyncio.Task[Any]] = field(default_factory=set)
    """Tasks handling an entry now: cancelled when the subscription stops."""
    reclaim_scans: int = 0
    """How many times the reclaimer looked for idle entries (a liveness figure)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """A consumer group reading one stream through a `Consumer`."""

    group: str
    consumer: Consumer[Any]
    concurrency: int = 1
    """Entries handled at once, each acknowledged when its handler is done (1: one by one)."""
    max_in_flight: int | None = None
    """Entries read at a time (None: the runtime's `max_in_flight`); 1 when handling may take
    minutes (webhook retries), so that no entry waits, read, behind another."""
    batch_seconds: float | None = None
    """Gather entries until the oldest is this old (by its entry id), then handle them with
    one `Consumer.consume_batch` (a webhook digest); None: one by one."""
    delete_acked: bool = False
    """Delete entries once acknowledged: a stream only this group reads (a webhook
    subscriber's retry stream)."""
    in_flight: InFlight = field(default_factory=InFlight, compare=False)


@dataclass(frozen=True, slots=True)
class DynamicSubscriptions(Generic[K]):
    """Subscriptions that come and go while a service runs: every `refresh_seconds` the
    runtime asks `wanted` for the keys wanted now, starts `open(key)`'s subscriptions for each
    new key (an async context: what it opens lives as long as they run) and stops those of the
    keys gone. Their consumer groups must exist before `wanted` names them."""

    wanted: Callable[[], Awaitable[Collection[K]]]
    open: Callable[[K], AbstractAsyncContextManager[Sequence[Subscription]]]
    refresh_seconds: float


def _entry_ms(entry_id: str) -> int:
    """When Redis added an entry (the first part of its id), unix milliseconds."""
    return int(entry_id.split("-", 1)[0])


def _entry_id(msg: RedisStreamMessage) -> str:
    raw_id = msg.raw_message["message_ids"][0]
    return raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)


def subscribe(
    broker: RedisBroker,
    redis: aioredis.Redis,
    sub: Subscription,
    consumer_name: str,
    polling_ms: int,
    max_in_flight: int = MAX_IN_FLIGHT,
    *,
    persistent: bool = True,
) -> StreamSubscriber:
    """Register `sub` on the broker (a running broker starts it only once told to: `await
    subscriber.start()`); each entry is acknowledged after it was handled (`take`). A
    subscriber that is not `persistent` is forgotten by the broker once nothing refers to it
    (one that comes and goes while the service runs).

    Each read takes at most `max_in_flight` entries (the subscription's own bound first), so
    a backlog is not pulled into memory and into the consumer's pending list at once (there
    an entry would wait longer than the reclaim idle time and be taken over, and handled
    twice, by the reclaimer)."""
    consumer = sub.consumer

    async def on_message(message: Any) -> None:
        # Not annotated: FastStream resolves an annotated message through a context field,
        # which it runs in a worker thread for every message.
        msg: RedisStreamMessage = message
        await take(redis, sub, _entry_id(msg), msg.body)

    on_message.__name__ = f"{consumer.service}_{consumer.stream.replace('.', '_')}"
    stream = StreamSub(
        consumer.stream,
        group=sub.group,
        consumer=consumer_name,
        polling_interval=polling_ms,
        max_records=max(sub.max_in_flight or max_in_flight, sub.concurrency),
    )
    subscriber = broker.subscriber(
        stream=stream,
        ack_policy=AckPolicy.MANUAL,
        title=f"{consumer.service}:{consumer.stream}:{sub.group}",
        message_format=VerbatimFormat,
        decoder=the_message_itself,
        max_workers=sub.concurrency,  # FastStream: 1 is a plain subscriber
        persistent=persistent,
    )
    subscriber(on_message)
    return cast(StreamSubscriber, subscriber)


async def take(redis: aioredis.Redis, sub: Subscription, entry_id: str, body: bytes) -> None:
    """Handle one entry read or claimed: acknowledged once handled, or gathered into the
    subscription's batch (acknowledged with it). Held meanwhile (`keep_held`)."""
    held = sub.in_flight
    held.ids.add(entry_id)
    if sub.batch_seconds is not None:
        if not held.batch:
            held.gathered.set()
        held.batch.append((entry_id, body))
        return
    task = asyncio.current_task()
    if task is not None:
        held.handlers.add(task)
    try:
        await sub.consumer.consume(entry_id, body)
        await acknowledge(redis, sub, [entry_id])
    finally:
        held.ids.discard(entry_id)
        held.handlers.discard(task)


async def acknowledge(redis: aioredis.Redis, sub: Subscription, ids: Sequence[str]) -> None:
    """Acknowledge entries of `sub` (and delete them when it says so) and stop holding them."""
    stream = sub.consumer.stream
    if sub.delete_acked:
        async with redis.pipeline(transaction=True) as pipe:  # one key: one slot
            pipe.xack(stream, sub.group, *ids)
            pipe.xdel(stream, *ids)
            await pipe.execute()
    else:
        await redis.xack(stream, sub.group, *ids)
    sub.in_flight.ids.difference_update(ids)


class VerbatimFormat(BinaryMessageFormatV1):
    """Entries as newsmon writes them: the `__data__` field is the message's JSON, handed to
    the consumer as is. (FastStream's formats first try to read a 100 KB page as a
    FastStream envelope: one more JSON parse of every entry.)"""

    @classmethod
    def parse(cls, data: bytes) -> tuple[bytes, dict[str, Any]]:
        return data, {}


async def the_message_itself(message: StreamMessage[Any]) -> StreamMessage[Any]:
    """FastStream decoder: the handler gets the message, body undecoded (the consumer
    validates it against its contract)."""
    return message


async def reclaim_stalled(
    redis: aioredis.Redis,
    sub: Subscription,
    consumer_name: str,
    *,
    min_idle_ms: int,
    interval_seconds: float,
    max_deliveries: int,
    max_in_flight: int = MAX_IN_FLIGHT,
) -> None:
    """Forever: take over entries another consumer read but never acknowledged
    for `min_idle_ms` (it died), `max_in_flight` at a time, and handle them (`take`).
    An entry delivered more than `max_deliveries` times (it kills whoever handles it)
    is parked. Entries this process holds are left alone."""
    stream = sub.consumer.stream
    while True:
        raise_if_cancelled()
        sub.in_flight.reclaim_scans += 1
        while claimed := await claim_idle(
            redis, stream, sub.group, consumer_name, min_idle_ms=min_idle_ms, count=max_in_flight
        ):
            for entry in claimed:
                if entry.entry_id in sub.in_flight.ids:
                    continue
                log.info(
                    "reclaimed stalled entry",
                    stream=stream,
                    group=sub.group,
                    entry_id=entry.entry_id,
                    deliveries=entry.deliveries,
                )
                if entry.deliveries > max_deliveries:
                    await sub.consumer.park_entry(
                        entry.entry_id,
                        entry.body,
                        "too_many_deliveries",
                        f"delivered {entry.deliveries} times without being acknowledged",
                    )
                    await acknowledge(redis, sub, [entry.entry_id])
                else:
                    await take(redis, sub, entry.entry_id, entry.body)
        raise_if_cancelled()  # a stop redis-py absorbed must not wait out the sleep
        await asyncio.sleep(interval_seconds)


async def keep_held(
    redis: aioredis.Redis, sub: Subscription, consumer_name: str, *, interval_seconds: float
) -> None:
    """Forever, every `interval_seconds`: mark the entries this process holds for `sub` as
    just read (XCLAIM JUSTID to itself: idle time reset, delivery count unchanged), so that no
    reclaimer takes them over however long they take."""
    while True:
        raise_if_cancelled()
        await asyncio.sleep(interval_seconds)
        ids: list[Any] = list(sub.in_flight.ids)
        if ids:
            await redis.xclaim(sub.consumer.stream, sub.group, consumer_name, 0, ids, justid=True)


async def handle_batches(redis: aioredis.Redis, sub: Subscription) -> None:
    """Forever: once the oldest entry gathered is `sub.batch_seconds` old (by its entry id,
    the time Redis added it), handle the batch with one `consume_batch`, then acknowledge it."""
    assert sub.batch_seconds is not None
    held = sub.in_flight
    while True:
        raise_if_cancelled()
        if not held.batch:
            held.gathered.clear()
            await held.gathered.wait()
            continue
        due_ms = _entry_ms(held.batch[0][0]) + sub.batch_seconds * 1000
        wait_seconds = (due_ms - sub.consumer.clock().timestamp() * 1000) / 1000
        if wait_seconds > 0:
            await asyncio.sleep(wait_seconds)
            continue
        batch = list(held.batch)
        await sub.consumer.consume_batch(batch)
        await acknowledge(redis, sub, [entry_id for entry_id, _ in batch])
        del held.batch[: len(batch)]


def subscription_tasks(
    redis: aioredis.Redis,
    sub: Subscription,
    *,
    consumer_name: str,
    reclaim_idle_seconds: float,
    max_deliveries: int,
    max_in_flight: int = MAX_IN_FLIGHT,
) -> list[BackgroundTask]:
    """What runs beside a subscription's reader: its reclaimer, its keeper and, for a
    batched subscription, the batch handler."""
    interval = max(reclaim_idle_seconds / 4, 0.05)
    label = f"{sub.consumer.stream}:{sub.group}"

    async def reclaim() -> None:
        await reclaim_stalled(
            redis,
            sub,
            consumer_name,
            min_idle_ms=int(reclaim_idle_seconds * 1000),
            interval_seconds=interval,
            max_deliveries=max_deliveries,
            max_in_flight=sub.max_in_flight or max_in_flight,
        )

    async def keep() -> None:
        await keep_held(redis, sub, consumer_name, interval_seconds=interval)

    async def batches() -> None:
        await handle_batches(redis, sub)

    reclaim.__name__ = f"reclaim:{label}"
    keep.__name__ = f"keep:{label}"
    batches.__name__ = f"batches:{label}"
    return [reclaim, keep, *([batches] if sub.batch_seconds is not None else [])]


@dataclass(slots=True)
class _Live:
    """One dynamic key's running parts."""

    exit: contextlib.AsyncExitStack
    subscriptions: Sequence[Subscription]
    subscribers: list[StreamSubscriber]
    tasks: list[asyncio.Task[None]]


class LiveSubscriptions:
    """Subscriptions started and stopped while the broker runs, consumed as the fixed ones
    are: a FastStream subscriber each, with its reclaimer, keeper and batch handler."""

    def __init__(
        self,
        broker: RedisBroker,
        redis: aioredis.Redis,
        *,
        consumer_name: str,
        reclaim_idle_seconds: float,
        max_deliveries: int,
        polling_ms: int = 100,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._broker = broker
        self._redis = redis
        self._consumer_name = consumer_name
        self._reclaim_idle_seconds = reclaim_idle_seconds
        self._max_deliveries = max_deliveries
        self._polling_ms = polling_ms
        self._max_in_flight = max_in_flight
        self._live: dict[Hashable, _Live] = {}

    async def follow(self, dynamic: DynamicSubscriptions[Any]) -> None:
        """Forever: keep the subscriptions of the keys `dynamic` wants running, and only
        those; all are stopped when this ends."""
        try:
            while True:
                raise_if_cancelled()
                wanted = set(await dynamic.wanted())
                for key in set(self._live) - wanted:
                    await self.stop(key)
                for key in wanted - set(self._live):
                    await self.start(key, dynamic.open(key))
                await asyncio.sleep(dynamic.refresh_seconds)
        finally:
            await self.stop_all()

    async def start(
        self, key: Hashable, opened: AbstractAsyncContextManager[Sequence[Subscription]]
    ) -> Sequence[Subscription]:
        """Open `opened` and start reading each of its subscriptions; returns them."""
        exit = contextlib.AsyncExitStack()
        subs = await exit.enter_async_context(opened)
        live = _Live(exit, subs, [], [])
        self._live[key] = live
        for sub in subs:
            subscriber = subscribe(
                self._broker,
                self._redis,
                sub,
                self._consumer_name,
                self._polling_ms,
                self._max_in_flight,
                persistent=False,
            )
            await subscriber.start()
            live.subscribers.append(subscriber)
            for task in subscription_tasks(
                self._redis,
                sub,
                consumer_name=self._consumer_name,
                reclaim_idle_seconds=self._reclaim_idle_seconds,
                max_deliveries=self._max_deliveries,
                max_in_flight=self._max_in_flight,
            ):
                live.tasks.append(asyncio.create_task(supervised(task), name=task.__name__))
        return subs

    async def stop(self, key: Hashable) -> None:
        """Stop reading `key`'s subscriptions; what they held stays pending, to be taken over
        after the reclaim idle time."""
        live = self._live.pop(key)
        for sub in live.subscriptions:  # an entry retried for minutes is not waited for
            for handler in sub.in_flight.handlers:
                handler.cancel()
        for subscriber in live.subscribers:
            await subscriber.stop()
        for task in live.tasks:
            task.cancel()
        await asyncio.gather(*live.tasks, return_exceptions=True)
        await live.exit.aclose()

    def running(self) -> set[Hashable]:
        """The keys whose subscriptions run now."""
        return set(self._live)

    async def stop_all(self) -> None:
        for key in list(self._live):
            await self.stop(key)
