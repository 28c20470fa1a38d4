"""Running services in this process: Redis, broker, HTTP server, and their shutdown.

`running_services` is what `newsmon up`, `newsmon serve`, the demo and the
end-to-end tests all use, so they exercise the same start-up path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
import uvicorn
from faststream.redis import RedisBroker, RedisClusterBroker
from faststream.redis.prometheus import RedisPrometheusMiddleware
from prometheus_client import CollectorRegistry

from contracts import NewsmonConfig
from contracts.streams import CONSUMED_STREAMS
from services.common.clock import Clock, utc_now
from services.common.metrics import ConsumerMetrics
from services.common.redis import connect, is_cluster_url, node_url, redis_url_for
from services.common.runtime import Deps, Service, ServiceFactory, build_app
from services.common.settings import CommonSettings
from services.common.streams import group_backlog


@dataclass(slots=True)
class RunningPipeline:
    """Handles on services running in this process."""

    redis: aioredis.Redis
    redis_url: str
    services: Sequence[Service]
    http_url: str
    registry: CollectorRegistry

    def settled(self) -> bool:
        return all(service.settled() for service in self.services)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT (Ctrl-C) or SIGTERM; call it before `running_services`, whose
    HTTP server passes these signals on once it has stopped."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def backlog(redis: aioredis.Redis) -> int:
    """Entries on the pipeline's streams not yet read or not yet acknowledged."""
    total = 0
    for stream, group in CONSUMED_STREAMS.items():
        position = await group_backlog(redis, stream, group)
        total += position.lag + position.pending
    return total


async def wait_until_done(
    pipeline: RunningPipeline, *, timeout_seconds: float, poll_seconds: float = 0.2
) -> bool:
    """Wait until every service settled and every stream is drained, twice in a row."""
    deadline = asyncio.get_running_loop().time() + timeout_seconds
    quiet = 0
    while asyncio.get_running_loop().time() < deadline:
        if pipeline.settled() and await backlog(pipeline.redis) == 0:
            quiet += 1
            if quiet >= 2:
                return True
        else:
            quiet = 0
        await asyncio.sleep(poll_seconds)
    return False


@contextlib.asynccontextmanager
async def running_services(
    factories: Sequence[ServiceFactory],
    *,
    settings: CommonSettings,
    config: NewsmonConfig,
    clock: Clock = utc_now,
    registry: CollectorRegistry | None = None,
) -> AsyncIterator[RunningPipeline]:
    """Start the given services (and an embedded Redis if no URL is set); stop them on exit."""
    registry = registry or CollectorRegistry()
    with redis_url_for(settings.redis_url, settings.data_dir) as url:
        redis = connect(url)
        deps = Deps(
            settings=settings,
            config=config,
            redis=redis,
            registry=registry,
            consumer_metrics=ConsumerMetrics(registry),
            clock=clock,
        )
        services = [factory(deps) for factory in factories]
        broker_class = RedisClusterBroker if is_cluster_url(url) else RedisBroker
        broker = broker_class(
            node_url(url),
            logger=logging.getLogger("faststream"),  # quietened in configure_logging
            log_level=logging.DEBUG,
            middlewares=[RedisPrometheusMiddleware(registry=registry, app_name="newsmon")],
        )
        app = build_app(
            services,
            broker=broker,
            redis=redis,
            registry=registry,
            settings=settings,
            max_in_flight=settings.max_in_flight,
        )
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=settings.http_host,
                port=settings.http_port,
                log_level="warning",
                lifespan="on",
                timeout_graceful_shutdown=5,
            )
        )
        server_task = asyncio.create_task(server.serve())
        try:
            while not server.started:
                if server_task.done():
                    server_task.result()
                    raise RuntimeError("HTTP server exited during start-up")
                await asyncio.sleep(0.02)
            host, port = server.servers[0].sockets[0].getsockname()[:2]
            yield RunningPipeline(
                redis=redis,
                redis_url=url,
                services=services,
                http_url=f"http://{host}:{port}",
                registry=registry,
            )
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await server_task
            await redis.aclose()
