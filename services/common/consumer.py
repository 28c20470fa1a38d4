"""The one way every service consumes a stream message.

Validate the body against its contract, run the service's handler, and
acknowledge only once the handler (which publishes the output) returned.
Invalid messages and permanent failures are parked in `<stream>.dlq` with the
reason and acknowledged; transient failures are retried with backoff and,
when they persist, parked too, so one bad message never blocks a stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import redis.asyncio as aioredis
import structlog
from pydantic import BaseModel, ValidationError

from contracts.streams import DEAD_LETTER_RETENTION_SECONDS
from services.common.backoff import backoff_seconds
from services.common.bus import dead_letter, decode, park
from services.common.clock import Clock
from services.common.errors import PermanentError
from services.common.metrics import ConsumerMetrics
from services.common.outage import REDIS_UNAVAILABLE, report_unavailable
from services.common.tasks import raise_if_cancelled

MAX_RETRY_SECONDS = 30.0
"""Longest wait between two tries of a failing message."""

M = TypeVar("M", bound=BaseModel)

log = structlog.get_logger("newsmon.consumer")


@dataclass(frozen=True, slots=True)
class Consumer(Generic[M]):
    """How one service consumes one stream."""

    service: str
    stream: str
    model: type[M]
    handle: Callable[[M], Awaitable[None]]
    redis: aioredis.Redis
    metrics: ConsumerMetrics
    clock: Clock
    attempts: int = 3
    retry_base_seconds: float = 0.2
    dead_letter_retention_seconds: float = DEAD_LETTER_RETENTION_SECONDS

    async def consume(self, entry_id: str, body: bytes) -> None:
        """Handle one entry; returns when it may be acknowledged."""
        started = time.perf_counter()
        try:
            message = decode(self.model, body)
        except ValidationError as exc:
            await self.park_entry(entry_id, body, "invalid_message", validation_summary(exc))
            return
        attempt = 0
        outage = Backoff(first=self.retry_base_seconds)
        while True:
            raise_if_cancelled()
            try:
                await self.handle(message)
            except PermanentError as exc:
                await self.park_entry(entry_id, body, exc.reason, str(exc))
                return
            except REDIS_UNAVAILABLE as exc:
                await outage.wait(self.service, self.stream, exc)
            except Exception as exc:
                attempt += 1
                if attempt >= self.attempts:
                    await self.park_entry(entry_id, body, "failed_after_retries", _describe(exc))
                    return
                self.metrics.messages.labels(self.stream, "retried").inc()
                log.warning(
                    "message failed, retrying",
                    service=self.service,
                    stream=self.stream,
                    entry_id=entry_id,
                    attempt=attempt,
                    error=_describe(exc),
                )
                await asyncio.sleep(
                    backoff_seconds(attempt, base=self.retry_base_seconds, cap=MAX_RETRY_SECONDS)
                )
            else:
                self.metrics.messages.labels(self.stream, "processed").inc()
                self.metrics.handler_seconds.labels(self.stream).observe(
                    time.perf_counter() - started
                )
                return

    async def park_entry(self, entry_id: str, body: bytes, reason: str, error: str) -> None:
        """Move an entry to the dead-letter stream with the reason, count and log it
        (waiting for Redis if it is away: the entry must not be lost)."""
        outage = Backoff(first=self.retry_base_seconds)
        while True:
            raise_if_cancelled()
            try:
                await self._park(entry_id, body, reason, error)
            except REDIS_UNAVAILABLE as exc:
                await outage.wait(self.service, self.stream, exc)
            else:
                return

    async def _park(self, entry_id: str, body: bytes, reason: str, error: str) -> None:
        letter = dead_letter(
            stream=self.stream,
            entry_id=entry_id,
            service=self.service,
            reason=reason,
            error=error,
            payload=body,
            now=self.clock(),
        )
        await park(self.redis, letter, retention_seconds=self.dead_letter_retention_seconds)
        self.metrics.messages.labels(self.stream, "dead_lettered").inc()
        self.metrics.dead_letters.labels(self.stream, reason).inc()
        log.error(
            "message dead-lettered",
            service=self.service,
            stream=self.stream,
            entry_id=entry_id,
            reason=reason,
            error=error,
        )


@dataclass(slots=True)
class Backoff:
    """Waits doubling from `first` up to `cap` seconds, each reported as Redis unavailable."""

    first: float
    cap: float = 10.0
    waits: int = 0

    async def wait(self, service: str, stream: str, exc: BaseException) -> None:
        self.waits += 1
        delay = backoff_seconds(self.waits, base=max(self.first, 0.05), cap=self.cap)
        report_unavailable(exc, service=service, stream=stream, retry_in_seconds=delay)
        await asyncio.sleep(delay)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def validation_summary(exc: ValidationError) -> str:
    """A validation error in one line per problem, without echoing the input."""
    problems = [
        f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}"
        for err in exc.errors(include_input=False)
    ]
    return "; ".join(problems[:10])
