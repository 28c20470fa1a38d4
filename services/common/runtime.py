"""Wiring shared by every service: broker, subscriptions, background tasks, HTTP.

A service's app factory returns a `Service` (its subscriptions and background
tasks); `build_app` puts one or several services on one FastStream broker and
serves `/metrics`, `/healthz` and `/readyz` next to them. `newsmon up` passes
all four services, `newsmon serve X` one. How a subscription is consumed is in
`subscriptions.py`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis.asyncio as aioredis
import structlog
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import ASGIApp, Receive, Scope, Send
from faststream.redis import RedisBroker
from prometheus_client import CollectorRegistry, make_asgi_app
from pydantic import BaseModel
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError
from starlette.responses import JSONResponse

from contracts import NewsmonConfig
from services.common.clock import Clock
from services.common.consumer import Backoff, Consumer
from services.common.keys import PIPELINE_DEAD_LETTERS, LegacyKeys, rename_legacy_keys
from services.common.metrics import ConsumerMetrics, StreamMetrics
from services.common.outage import REDIS_UNAVAILABLE, report_unavailable
from services.common.settings import CommonSettings
from services.common.streams import group_backlog, trim_finished
from services.common.subscriptions import (
    MAX_IN_FLIGHT,
    DynamicSubscriptions,
    LiveSubscriptions,
    Subscription,
    subscribe,
    subscription_tasks,
)
from services.common.tasks import BackgroundTask, raise_if_cancelled, supervised

log = structlog.get_logger("newsmon.runtime")

M = TypeVar("M", bound=BaseModel)
K = TypeVar("K", bound=Hashable)


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
