"""Wiring shared by every service: broker, subscriptions, background tasks, HTTP.

A service's app factory returns a `Service` (its subscriptions and background
tasks); `build_app` puts one or several services on one FastStream broker and
serves `/metrics`, `/healthz` and `/readyz` next to them. `newsmon up` passes
all four services, `newsmon serve X` one.

Every subscription is consumed the same way, whether it is fixed (a pipeline stage) or comes
and goes while the service runs (`DynamicSubscriptions`: the alerter's webhook subscribers):
a FastStream subscriber reads the stream through its consumer group and hands each entry to
the `Consumer` (validate, handle, retry with backoff, park), a reclaimer takes over what dead
consumers left idle, and a keeper marks what this process holds (an entry being retried for
minutes, a batch being gathered) as just read, so no other consumer takes it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Hashable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import redis.asyncio as aioredis
import structlog
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import ASGIApp, Receive, Scope, Send
from faststream.message import StreamMessage
from faststream.redis import RedisBroker, RedisStreamMessage, StreamSub
from faststream.redis.parser.binary import BinaryMessageFormatV1
from faststream.redis.subscriber.usecases.stream_subscriber import StreamSubscriber
from prometheus_client import CollectorRegistry, make_asgi_app
from pydantic import BaseModel
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError
from starlette.responses import JSONResponse

from contracts import NewsmonConfig
from services.common.backoff import backoff_seconds
from services.common.clock import Clock
from services.common.consumer import Backoff, Consumer
from services.common.keys import PIPELINE_DEAD_LETTERS, LegacyKeys, rename_legacy_keys
from services.common.metrics import ConsumerMetrics, StreamMetrics
from services.common.outage import REDIS_UNAVAILABLE, report_unavailable
from services.common.settings import CommonSettings
from services.common.streams import claim_idle, group_backlog, trim_finished
from services.common.tasks import raise_if_cancelled

log = structlog.get_logger("newsmon.runtime")

M = TypeVar("M", bound=BaseModel)
K = TypeVar("K", bound=Hashable)

BackgroundTask = Callable[[], Coroutine[Any, Any, None]]

MAX_IN_FLIGHT = 10
"""Entries one consumer reads (and holds pending) at a time, per stream. The last entry of
a read waits for the others to be handled, so this times the slowest handling (seconds)
must stay well below the reclaim idle time (60 s); ten raw pages (at most 15 MB each) is
also a bounded amount of memory. Each read's round trip is shared by that many entries."""


@dataclass(frozen=True, slots=True)
class Deps:
    """What a service is given; nothing is created at import."""

    settings: CommonSettings
    config: NewsmonConfig
    redis: aioredis.Redis
    registry: CollectorRegistry
    consumer_metrics: ConsumerMetrics
    clock: Clock

    def consumer(
        self, *, service: str, stream: str, model: type[M], handle: Callable[[M], Awaitable[None]]
    ) -> Consumer[M]:
        """A `Consumer` of `stream` with the shared metrics, clock and retry policy."""
        return Consumer(
            service=service,
            stream=stream,
            model=model,
            handle=handle,
            redis=self.redis,
            metrics=self.consumer_metrics,
            clock=self.clock,
            attempts=self.settings.handler_attempts,
            retry_base_seconds=self.settings.retry_base_seconds,
            dead_letter_retention_seconds=self.settings.dead_letter_retention_seconds,
        )


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


@dataclass(slots=True)
class Service:
    """One service's parts, as its app factory builds them."""

    name: str
    subscriptions: Sequence[Subscription] = ()
    tasks: Sequence[BackgroundTask] = ()
    closers: Sequence[Callable[[], Awaitable[None]]] = ()
    legacy_keys: Sequence[LegacyKeys] = ()
    """Its keys that an earlier version named otherwise: renamed before it starts."""
    routes: Sequence[tuple[str, ASGIApp]] = ()
    """HTTP endpoints: (path, ASGI app); the app also gets every path under `path/`."""
    ready: Callable[[], bool] = field(default=lambda: True)
    """True when the service can do its work (for /readyz)."""
    settled: Callable[[], bool] = field(default=lambda: True)
    """True once the service has done its start-up work (the fetcher: one poll of
    every source); with drained streams this means a run is complete."""
    dynamic: Sequence[DynamicSubscriptions[Any]] = ()


ServiceFactory = Callable[[Deps], Service]


@dataclass(frozen=True, slots=True)
class DynamicSubscriptions(Generic[K]):
    """Subscriptions that come and go while a service runs: every `refresh_seconds` the
    runtime asks `wanted` for the keys wanted now, starts `open(key)`'s subscriptions for each
    new key (an async context: what it opens lives as long as they run) and stops those of the
    keys gone. Their consumer groups must exist before `wanted` names them."""

    wanted: Callable[[], Awaitable[Collection[K]]]
    open: Callable[[K], AbstractAsyncContextManager[Sequence[Subscription]]]
    refresh_seconds: float


async def ensure_groups(redis: aioredis.Redis, services: Sequence[Service]) -> None:
    """Create each consumer group at the start of its stream, so nothing published
    before a consumer first ran is skipped (FastStream would create it at `$`)."""
    for service in services:
        for sub in service.subscriptions:
            try:
                await redis.xgroup_create(sub.consumer.stream, sub.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise


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


@dataclass(slots=True)
class RunningTasks:
    """Background tasks started after the broker and cancelled before it stops."""

    factories: list[BackgroundTask]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        self.tasks = [asyncio.create_task(supervised(f)) for f in self.factories]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []


async def supervised(
    factory: BackgroundTask, *, first_delay: float = 0.5, max_delay: float = 30.0
) -> None:
    """Run a background task forever: when it fails (Redis went away, a bug), report or
    log it and start it again after a delay doubling up to `max_delay` seconds."""
    failures = 0
    name = getattr(factory, "__name__", "task")
    while True:
        raise_if_cancelled()
        started = time.monotonic()
        try:
            await factory()
            return
        except asyncio.CancelledError:
            raise
        except REDIS_UNAVAILABLE as exc:
            report_unavailable(exc, task=name)
        except RedisError as exc:
            log.warning("background task lost Redis, restarting", task=name, error=str(exc))
        except Exception:
            log.exception("background task failed, restarting", task=name)
        failures = 1 if time.monotonic() - started > max_delay else failures + 1
        await asyncio.sleep(backoff_seconds(failures, base=first_delay, cap=max_delay))


class PrefixRoutedApp(AsgiFastStream):
    """FastStream's ASGI app, where a route also serves the paths below it
    (`/sources` serves `/sources/x/pause`; `/` serves only itself), so services can mount
    small APIs; any other path gets a JSON 404."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            for prefix, app in self.routes:
                if path == prefix or (prefix != "/" and path.startswith(prefix + "/")):
                    await app(scope, receive, send)
                    return
            await JSONResponse({"error": f"no such path: {path}"}, status_code=404)(
                scope, receive, send
            )
            return
        await super().__call__(scope, receive, send)


def build_app(
    services: Sequence[Service],
    *,
    broker: RedisBroker,
    redis: aioredis.Redis,
    registry: CollectorRegistry,
    settings: CommonSettings,
    polling_ms: int = 100,
    stream_metrics_seconds: float = 5.0,
    max_in_flight: int = MAX_IN_FLIGHT,
) -> PrefixRoutedApp:
    """One FastStream application serving `services` and their HTTP endpoints; each
    subscription holds at most `max_in_flight` entries read and not yet acknowledged
    (twice that while its reclaimer is taking over a dead consumer's entries)."""
    subscriptions = [sub for service in services for sub in service.subscriptions]
    background: list[BackgroundTask] = []
    if subscriptions:
        background.append(
            _stream_watcher(redis, subscriptions, StreamMetrics(registry), stream_metrics_seconds)
        )
    for service in services:
        background.extend(service.tasks)
        for sub in service.subscriptions:
            subscribe(broker, redis, sub, settings.consumer_name, polling_ms, max_in_flight)
            background.extend(
                subscription_tasks(
                    redis,
                    sub,
                    consumer_name=settings.consumer_name,
                    reclaim_idle_seconds=settings.reclaim_idle_seconds,
                    max_deliveries=settings.max_deliveries,
                    max_in_flight=max_in_flight,
                )
            )
            background.append(_trimmer(redis, sub.consumer.stream, settings))
        for dynamic in service.dynamic:
            live = LiveSubscriptions(
                broker,
                redis,
                consumer_name=settings.consumer_name,
                reclaim_idle_seconds=settings.reclaim_idle_seconds,
                max_deliveries=settings.max_deliveries,
                polling_ms=polling_ms,
                max_in_flight=max_in_flight,
            )
            background.append(_following(live, dynamic))
    running = RunningTasks(background)

    @get(include_in_schema=False)
    async def healthz(scope: Any) -> AsgiResponse:
        return AsgiResponse(b"ok\n", 200)

    @get(include_in_schema=False)
    async def readyz(scope: Any) -> AsgiResponse:
        broker_up = await broker.ping(timeout=1.0)
        services_ready = all(service.ready() for service in services)
        if broker_up and services_ready:
            return AsgiResponse(b"ready\n", 200)
        return AsgiResponse(b"not ready\n", 503)

    legacy = [PIPELINE_DEAD_LETTERS, *(k for service in services for k in service.legacy_keys)]

    async def before_start() -> None:
        outage = Backoff(first=0.2)
        while True:
            raise_if_cancelled()
            try:
                renamed = await rename_legacy_keys(redis, legacy)
                if renamed:
                    log.info("keys of an earlier version renamed", count=renamed)
                await ensure_groups(redis, services)
                return
            except REDIS_UNAVAILABLE as exc:  # a service may start before its Redis
                await outage.wait("runtime", "startup", exc)

    async def after_stop() -> None:
        for service in services:
            for close in service.closers:
                await close()

    service_routes = [route for service in services for route in service.routes]
    return PrefixRoutedApp(
        broker,
        asgi_routes=[
            ("/metrics", make_asgi_app(registry)),
            ("/healthz", healthz),
            ("/readyz", readyz),
            *service_routes,
        ],
        on_startup=[before_start],
        after_startup=[running.start],
        on_shutdown=[running.stop],
        after_shutdown=[after_stop],
        logger=None,
    )


def _trimmer(redis: aioredis.Redis, stream: str, settings: CommonSettings) -> BackgroundTask:
    async def trim_stream() -> None:
        while True:
            raise_if_cancelled()
            try:
                dropped = await trim_finished(
                    redis,
                    stream,
                    now_ms=int(time.time() * 1000),
                    retention_ms=int(settings.retention_seconds(stream) * 1000),
                )
            except REDIS_UNAVAILABLE as exc:
                report_unavailable(exc, task="trim", stream=stream)
            except RedisError as exc:
                log.warning("cannot trim stream", stream=stream, error=str(exc))
            else:
                if dropped:
                    log.debug("stream trimmed", stream=stream, entries=dropped)
            await asyncio.sleep(settings.trim_interval_seconds)

    return trim_stream


def _stream_watcher(
    redis: aioredis.Redis, subs: Sequence[Subscription], metrics: StreamMetrics, seconds: float
) -> BackgroundTask:
    async def watch_streams() -> None:
        while True:
            raise_if_cancelled()
            for sub in subs:
                try:
                    position = await group_backlog(redis, sub.consumer.stream, sub.group)
                except REDIS_UNAVAILABLE as exc:
                    report_unavailable(exc, task="watch_streams", stream=sub.consumer.stream)
                    continue
                except RedisError as exc:
                    log.warning(
                        "cannot read stream backlog", stream=sub.consumer.stream, error=str(exc)
                    )
                    continue
                metrics.length.labels(position.stream).set(position.length)
                metrics.lag.labels(position.stream, position.group).set(position.lag)
                metrics.pending.labels(position.stream, position.group).set(position.pending)
                metrics.dead_letters.labels(position.stream).set(position.dead_letters)
            try:
                await record_redis_memory(redis, metrics)
            except REDIS_UNAVAILABLE as exc:
                report_unavailable(exc, task="watch_streams")
            except RedisError as exc:
                log.warning("cannot read Redis memory", error=str(exc))
            await asyncio.sleep(seconds)

    return watch_streams


async def record_redis_memory(redis: aioredis.Redis, metrics: StreamMetrics) -> None:
    """Set the Redis memory gauges from `INFO memory`: used and the limit (0: none); on a
    cluster, those of the master using the most memory (the first to fill up)."""
    if isinstance(redis, RedisCluster):
        masters = await redis.info("memory", target_nodes=RedisCluster.PRIMARIES)
        info = max(masters.values(), key=lambda node: int(node["used_memory"]))
    else:
        info = await redis.info("memory")
    metrics.redis_used_memory.set(float(info["used_memory"]))
    metrics.redis_max_memory.set(float(info.get("maxmemory", 0)))


def _following(live: LiveSubscriptions, dynamic: DynamicSubscriptions[Any]) -> BackgroundTask:
    async def follow_subscriptions() -> None:
        await live.follow(dynamic)

    return follow_subscriptions
