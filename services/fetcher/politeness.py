"""Politeness towards the sites the fetcher reads: each host's request slots and rate,
shared by every replica through Redis, and robots.txt verdicts, cached in memory and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import structlog

from services.common.tasks import raise_if_cancelled
from services.fetcher.core import Lease, lease_ms, origin_of, robots_allows
from services.fetcher.leases import keep_lease
from services.fetcher.metrics import FetcherMetrics
from services.fetcher.settings import FetcherSettings
from services.fetcher.store import FetcherStore

log = structlog.get_logger("newsmon.fetcher")

ROBOTS_MEMORY_SECONDS = 300.0
"""Longest a robots.txt verdict is kept in memory: a change another replica read shows soon."""
FetchRobots = Callable[[str], Awaitable[tuple[int | None, str]]]
"""Reads an origin's robots.txt: (HTTP status or None, body)."""


@dataclass(slots=True)
class _HostQueue:
    """A host's request slots in this process and the requests using or awaiting them;
    dropped (with its metric series) once no request uses it, so hosts do not pile up."""

    slots: asyncio.Semaphore
    users: int = 0
    waiting: int = 0


class HostGate:
    """Each host's request slots (at most `host_concurrency` requests at once across
    replicas, each a lease renewed while it runs) and its least interval between requests."""

    def __init__(
        self, store: FetcherStore, settings: FetcherSettings, metrics: FetcherMetrics
    ) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._hosts: dict[str, _HostQueue] = {}

    @contextlib.asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Hold one of the host's request slots and keep to its request rate; waiting
        requests are the host's queue."""
        settings = self._settings
        queue = self._hosts.get(host)
        if queue is None:
            queue = self._hosts[host] = _HostQueue(asyncio.Semaphore(settings.host_concurrency))
        queue.users += 1
        try:
            token = uuid.uuid4().hex
            self._queued(host, queue, +1)
            try:
                await queue.slots.acquire()
                try:
                    while True:
                        raise_if_cancelled()
                        taken_at = time.monotonic()
                        wait_ms = await self._store.acquire_host(
                            host,
                            token,
                            limit=settings.host_concurrency,
                            lease_ms=lease_ms(settings.poll_lease_seconds),
                            interval_ms=int(settings.host_min_interval_seconds * 1000),
                        )
                        if wait_ms == 0:
                            break
                        await asyncio.sleep(0.05 if wait_ms < 0 else wait_ms / 1000)
                except BaseException:
                    queue.slots.release()
                    raise
            finally:
                self._queued(host, queue, -1)
            keeper = asyncio.create_task(
                keep_lease(
                    Lease(settings.poll_lease_seconds, taken_at),
                    lambda ms: self._store.renew_host(host, token, ms),
                )
            )
            try:
                yield
            finally:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper  # a lost slot only loosens politeness: the request goes on
                try:
                    await self._store.release_host(host, token)
                finally:
                    queue.slots.release()  # after Redis's slot: the next waiter finds it free
        finally:
            queue.users -= 1
            if queue.users == 0:
                del self._hosts[host]

    def _queued(self, host: str, queue: _HostQueue, change: int) -> None:
        """Count a request joining (+1) or leaving (-1) the host's queue; the host's series
        exists only while something waits, so hosts linked once do not stay forever."""
        queue.waiting += change
        if queue.waiting:
            self._metrics.host_queue.labels(host).set(queue.waiting)
        else:
            with contextlib.suppress(KeyError):
                self._metrics.host_queue.remove(host)


class RobotsCache:
    """robots.txt verdicts: read once per origin, kept in Redis for the robots TTL (shorter
    after an error) and in memory briefly."""

    def __init__(self, store: FetcherStore, settings: FetcherSettings) -> None:
        self._store = store
        self._settings = settings
        self._memory: dict[str, tuple[float, int | None, str]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def allows(self, url: str, fetch: FetchRobots) -> bool:
        """robots.txt's verdict for `url`; `fetch` reads the file when no cache has it."""
        origin = origin_of(url)
        cached = self._memory.get(origin)
        if cached is None or cached[0] < time.monotonic():
            async with self._locks.setdefault(origin, asyncio.Lock()):
                cached = self._memory.get(origin)
                if cached is None or cached[0] < time.monotonic():
                    stored = await self._store.cached_robots(origin)
                    if stored is None:
                        stored = await fetch(origin)
                        await self._store.cache_robots(
                            origin, stored[0], stored[1], self.ttl_seconds(stored[0])
                        )
                        log.info("robots.txt read", origin=origin, status=stored[0])
                    memory_ttl = min(self.ttl_seconds(stored[0]), ROBOTS_MEMORY_SECONDS)
                    cached = (time.monotonic() + memory_ttl, stored[0], stored[1])
                    self._memory[origin] = cached
        return robots_allows(cached[1], cached[2], user_agent=self._settings.user_agent, url=url)

    def ttl_seconds(self, status: int | None) -> float:
        """How long a robots.txt answer holds: long for an answer, short after an error."""
        ok = status is not None and status < 500
        return self._settings.robots_ttl_seconds if ok else self._settings.robots_error_ttl_seconds
