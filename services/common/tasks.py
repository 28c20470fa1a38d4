"""Small helpers for long-running asyncio loops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from redis.exceptions import RedisError

from services.common.backoff import backoff_seconds
from services.common.outage import REDIS_UNAVAILABLE, report_unavailable

log = structlog.get_logger("newsmon.tasks")

BackgroundTask = Callable[[], Coroutine[Any, Any, None]]
"""A coroutine function run in the background for as long as its service runs."""


def raise_if_cancelled() -> None:
    """Honour a cancellation a library swallowed. redis-py can absorb a CancelledError that
    lands during a command (seen with blocking XREAD and with the fetcher's schedule reads)
    and return normally, which would keep a stopped loop running forever; a loop calls this
    once per turn, so a stop always takes effect within one turn."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


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
