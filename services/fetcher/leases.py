"""Work under a lease held in Redis (a poll's, a host's request slot): renewed every third of
its length while the work goes on, and the work stopped once the lease is lost, so no other
replica takes it over while this one still works."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import structlog
from redis.exceptions import RedisError

from services.common.outage import REDIS_UNAVAILABLE, report_unavailable
from services.common.tasks import raise_if_cancelled
from services.fetcher.core import Lease, lease_ms

log = structlog.get_logger("newsmon.fetcher")

T = TypeVar("T")
Renew = Callable[[int], Awaitable[bool]]
"""Renews a lease for so many milliseconds; False when it is no longer ours."""


class LeaseLostError(Exception):
    """A lease was taken by another replica, or ran out unrenewed: the work was stopped."""


async def while_leased(lease: Lease, renew: Renew, work: Coroutine[Any, Any, T]) -> T:
    """Run `work` while renewing `lease`; once the lease is lost, stop `work` and raise
    `LeaseLostError` (the reason: "taken" or "ran out")."""
    task = asyncio.create_task(work)
    keeper = asyncio.create_task(keep_lease(lease, renew))
    try:
        await asyncio.wait((task, keeper), return_when=asyncio.FIRST_COMPLETED)
    finally:
        keeper.cancel()
        if not task.done():
            task.cancel()
        await asyncio.wait((task, keeper))
    if task.cancelled():  # the keeper ended first: the lease is lost
        raise LeaseLostError(keeper.result())
    return task.result()


async def keep_lease(lease: Lease, renew: Renew) -> str:
    """Renew `lease` every third of its length, sooner after a failed renewal; returns why
    it was lost: "taken", or "ran out" when no renewal was confirmed in time. Runs until
    cancelled otherwise."""
    failed = False
    while True:
        raise_if_cancelled()
        now = time.monotonic()
        await asyncio.sleep(max(lease.renew_at(now, failed=failed) - now, 0.0))
        sent_at = time.monotonic()
        if not lease.held(sent_at):
            return "ran out"
        try:
            async with asyncio.timeout(lease.expires_at - sent_at):
                ours = await renew(lease_ms(lease.seconds))
        except (*REDIS_UNAVAILABLE, TimeoutError) as exc:
            report_unavailable(exc, task="lease renewal")
            failed = True
            continue
        except RedisError as exc:
            log.warning("lease renewal failed", error=str(exc))
            failed = True
            continue
        if not ours:
            return "taken"
        lease, failed = lease.renewed(sent_at), False
