"""Small helpers for long-running asyncio loops."""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Honour a cancellation a library swallowed. redis-py can absorb a CancelledError that
    lands during a command (seen with blocking XREAD and with the fetcher's schedule reads)
    and return normally, which would keep a stopped loop running forever; a loop calls this
    once per turn, so a stop always takes effect within one turn."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
