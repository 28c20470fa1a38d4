"""Redis going away is logged once per outage, whichever part of the process notices it."""

from __future__ import annotations

import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from structlog.testing import capture_logs

from services.common.outage import OutageLog, RedisOutageFilter, starts_outage


@pytest.mark.parametrize(
    ("last", "now", "new"),
    [(None, 5.0, True), (100.0, 110.0, False), (100.0, 159.9, False), (100.0, 160.0, True)],
)
def test_an_outage_starts_after_a_quiet_spell(last: float | None, now: float, new: bool) -> None:
    assert starts_outage(last, now, quiet_seconds=60.0) is new


def test_an_outage_reported_by_many_parts_logs_one_warning_with_the_reason() -> None:
    outages = OutageLog()
    error = RedisConnectionError("Connection closed by server.")
    with capture_logs() as logs:
        for part in ("consumer", "reclaimer", "poll schedule", "faststream"):
            outages.report(error, task=part)
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert len(warnings) == 1
    assert warnings[0]["error"] == "Connection closed by server."
    assert warnings[0]["task"] == "consumer"
    assert [entry["log_level"] for entry in logs[1:]] == ["debug"] * 3


def test_the_next_outage_after_a_quiet_spell_is_logged_again() -> None:
    outages = OutageLog(quiet_seconds=0.0)
    with capture_logs() as logs:
        outages.report(RedisConnectionError("down"))
        outages.report(RedisConnectionError("down again"))
    assert [entry["log_level"] for entry in logs] == ["warning", "warning"]


def _record(exc: BaseException | None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord(
        "faststream", logging.ERROR, __file__, 1, "Message fetch error", None, exc_info
    )


def test_a_library_traceback_of_an_unreachable_redis_becomes_an_outage_report() -> None:
    with capture_logs() as logs:
        kept = RedisOutageFilter().filter(_record(RedisConnectionError("Error 111 connecting")))
    assert not kept
    assert [entry["event"] for entry in logs] == ["Redis unavailable, waiting for it"]
    assert logs[0]["logger"] == "faststream"


@pytest.mark.parametrize("exc", [None, ResponseError("WRONGTYPE"), RuntimeError("bug")])
def test_other_library_errors_are_logged_as_they_are(exc: BaseException | None) -> None:
    assert RedisOutageFilter().filter(_record(exc))
