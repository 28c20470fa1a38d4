"""The process that samples stream backlogs also exports Redis's memory and its limit,
for the alert that fires before Redis fills up."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from services.common.metrics import StreamMetrics
from services.common.runtime import _stream_watcher

pytestmark = pytest.mark.integration


async def test_the_stream_watcher_exports_redis_memory_and_its_limit(
    redis: aioredis.Redis,
) -> None:
    registry = CollectorRegistry()
    watch = asyncio.create_task(_stream_watcher(redis, [], StreamMetrics(registry), 0.05)())
    try:
        for _ in range(100):
            if registry.get_sample_value("newsmon_redis_used_memory_bytes"):
                break
            await asyncio.sleep(0.05)
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
    info = await redis.info("memory")
    used = registry.get_sample_value("newsmon_redis_used_memory_bytes")
    assert used is not None and 0 < used <= 2 * info["used_memory"]
    assert registry.get_sample_value("newsmon_redis_maxmemory_bytes") == info["maxmemory"]
