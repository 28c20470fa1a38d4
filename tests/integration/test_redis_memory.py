"""The process that samples stream backlogs also exports Redis's memory and its limit,
for the alert that fires before Redis fills up."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from harness import LocalRedisCluster
from prometheus_client import CollectorRegistry
from redis.asyncio.cluster import RedisCluster

from services.common.metrics import StreamMetrics
from services.common.redis import connect
from services.common.runtime import _stream_watcher, record_redis_memory

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


async def test_on_a_cluster_it_exports_the_fullest_master(cluster: LocalRedisCluster) -> None:
    redis = connect(cluster.url)
    big = f"{{{cluster.ports[0]}}}:filler"
    await redis.set(big, b"x" * 4_000_000)
    registry = CollectorRegistry()
    try:
        await record_redis_memory(redis, StreamMetrics(registry))
        used = registry.get_sample_value("newsmon_redis_used_memory_bytes")
        masters = await redis.info("memory", target_nodes=RedisCluster.PRIMARIES)
    finally:
        await redis.aclose()
    fullest = max(int(node["used_memory"]) for node in masters.values())
    assert used is not None and used > 4_000_000
    assert abs(used - fullest) < 1_000_000  # it moves a little with each connection
