"""Redis going away: one WARNING line per outage, whichever part of a process notices it.

Consumers, background tasks, the fetcher's poll loop and FastStream's stream readers all
find Redis unreachable at once, and each recovers on its own once it is back; so they
report it here instead of logging it. The first report of an outage is logged as a
WARNING with the reason, the others (until Redis has been quiet for `QUIET_SECONDS`)
at DEBUG.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import structlog
from redis.exceptions import ClusterDownError, RedisClusterUnreachableError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = structlog.get_logger("newsmon.redis")

REDIS_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    SlotNotCoveredError,
    RedisClusterUnreachableError,
)
"""Redis is away (or still loading its data; on a cluster, a master is down or its slots are
moving): no message's or source's fault; wait for it."""

QUIET_SECONDS = 60.0
"""A report this long after the previous one starts a new outage, seconds."""


def starts_outage(last_report_at: float | None, now: float, quiet_seconds: float) -> bool:
    """Whether Redis found unreachable at `now` is a new outage: no report in the
    `quiet_seconds` before (monotonic seconds)."""
    return last_report_at is None or now - last_report_at >= quiet_seconds


@dataclass(slots=True)
class OutageLog:
    """Logs the reports of Redis being unreachable: one WARNING line per outage."""

    quiet_seconds: float = QUIET_SECONDS
    last_report_at: float | None = None

    def report(self, exc: BaseException, **context: object) -> None:
        now = time.monotonic()
        new = starts_outage(self.last_report_at, now, self.quiet_seconds)
        self.last_report_at = now
        emit = log.warning if new else log.debug
        emit("Redis unavailable, waiting for it", error=str(exc) or type(exc).__name__, **context)


OUTAGES = OutageLog()
"""The process's one outage log (every service of `newsmon up` shares its Redis)."""


def report_unavailable(exc: BaseException, **context: object) -> None:
    """Report Redis found unreachable (`exc`), with where it was (`context`)."""
    OUTAGES.report(exc, **context)


class RedisOutageFilter(logging.Filter):
    """Turns a stdlib log record whose exception is Redis being unreachable (FastStream's
    "Message fetch error" with a traceback, say) into an outage report."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, REDIS_UNAVAILABLE):
            report_unavailable(exc, logger=record.name, message=record.getMessage())
            return False
        return True


OUTAGE_FILTER = RedisOutageFilter()
