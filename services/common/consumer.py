"""The one way every service consumes a stream message.

Validate the body against its contract, run the service's handler, and
acknowledge only once the handler (which publishes the output) returned.
Invalid messages and permanent failures are parked in `<stream>.dlq` with the
reason and acknowledged; transient failures are retried with backoff and,
when they persist, parked too, so one bad message never blocks a stream.
A batch of entries (a webhook digest) goes through the same steps at once:
one handler call, retried as one, parked together.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
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
    retry_max_seconds: float = MAX_RETRY_SECONDS
    """Longest wait between two tries, seconds."""
    retry_spread: float = 0.0
    """Share (0..1) by which each wait is randomly longer or shorter: many entries failing
    at once (an endpoint down) are not all retried at the same moment."""
    rng: random.Random = field(default_factory=random.Random, compare=False)
    exhausted_reason: str = "failed_after_retries"
    """The dead-letter reason of an entry whose tries all failed."""
    replay_stream: str = ""
    """Where a replay of this consumer's dead letters goes (their `.dlq` is next to it):
    `stream` when empty."""
    handle_batch: Callable[[Sequence[M]], Awaitable[None]] | None = None
    """Handles several messages at once (`consume_batch`); None when never batched."""
    on_retry: Callable[[], None] | None = None
    """Called before each retry (a service's own metric)."""
    on_dead_letter: Callable[[str], None] | None = None
    """Called with the reason of each entry parked (a service's own metric)."""

    async def consume(self, entry_id: str, body: bytes) -> None:
        """Handle one entry; returns when it may be acknowledged."""
        try:
            message = decode(self.model, body)
        except ValidationError as exc:
            await self.park_entry(entry_id, body, "invalid_message", validation_summary(exc))
            return
        await self._attempt(((entry_id, body),), lambda: self.handle(message))

    async def consume_batch(self, entries: Sequence[tuple[str, bytes]]) -> None:
        """Handle (entry id, body) pairs with one `handle_batch` call, tried and parked as
        one; an invalid body is parked alone. Returns when all may be acknowledged."""
        assert self.handle_batch is not None, "consume_batch needs handle_batch"
        handle_batch = self.handle_batch
        valid: list[tuple[str, bytes]] = []
        messages: list[M] = []
        for entry_id, body in entries:
            try:
                messages.append(decode(self.model, body))
            except ValidationError as exc:
                await self.park_entry(entry_id, body, "invalid_message", validation_summary(exc))
            else:
                valid.append((entry_id, body))
        if valid:
            await self._attempt(valid, lambda: handle_batch(messages))

    async def _attempt(
        self, entries: Sequence[tuple[str, bytes]], call: Callable[[], Awaitable[None]]
    ) -> None:
        """Run `call` until it succeeds, fails for good or runs out of tries; park `entries`
        in the last two cases. Redis being away is waited out, not counted."""
        started = time.perf_counter()
        first_id = entries[0][0]
        attempt = 0
        outage = Backoff(first=self.retry_base_seconds)
        while True:
            raise_if_cancelled()
            try:
                await call()
            except PermanentError as exc:
                await self._park_all(entries, exc.reason, str(exc))
                return
            except REDIS_UNAVAILABLE as exc:
                await outage.wait(self.service, self.stream, exc)
            except Exception as exc:
                attempt += 1
                if attempt >= self.attempts:
                    await self._park_all(entries, self.exhausted_reason, _describe(exc))
                    return
                self.metrics.messages.labels(self.stream, "retried").inc()
                if self.on_retry is not None:
                    self.on_retry()
                log.warning(
                    "message failed, retrying",
                    service=self.service,
                    stream=self.stream,
                    entry_id=first_id,
                    entries=len(entries),
                    attempt=attempt,
                    error=_describe(exc),
                )
                await asyncio.sleep(
                    backoff_seconds(
                        attempt,
                        base=self.retry_base_seconds,
                        cap=self.retry_max_seconds,
                        spread=self.retry_spread,
                        draw=self.rng.uniform(-1, 1) if self.retry_spread else 0.0,
                    )
                )
            else:
                self.metrics.messages.labels(self.stream, "processed").inc(len(entries))
                self.metrics.handler_seconds.labels(self.stream).observe(
                    time.perf_counter() - started
                )
                return

    async def _park_all(
        self, entries: Sequence[tuple[str, bytes]], reason: str, error: str
    ) -> None:
        for entry_id, body in entries:
            await self.park_entry(entry_id, body, reason, error)

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
            stream=self.replay_stream or self.stream,
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
        if self.on_dead_letter is not None:
            self.on_dead_letter(reason)
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
