"""Keys named by earlier versions, renamed to today's names once, before a service starts.

Keys that one script or transaction touches share a Redis Cluster hash tag (`{...}`);
versions before cluster support named them without one. A single server upgraded in place
keeps its data: at its first start each service renames its keys still named the old way
(RENAMENX, so replicas starting together rename each key once, and a name already taken is
left alone and logged), then marks the pattern done so later starts skip the scan. A cluster
has only today's names: earlier versions could not run there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
import structlog
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from contracts.streams import CONSUMED_STREAMS, DLQ_SUFFIX, dead_letter_stream

log = structlog.get_logger("newsmon.keys")

SCAN_BATCH = 1000
"""Keys asked for per SCAN step."""
RENAMED_MARK = "newsmon:renamed:"
"""Prefix of the key marking that a pattern's keys were all renamed: a SCAN walks the whole
keyspace (millions of keys with a large story index), so it is done once, not every start."""


@dataclass(frozen=True, slots=True)
class LegacyKeys:
    """Keys that may still carry an earlier version's name."""

    pattern: str
    """SCAN MATCH pattern covering them (glob)."""
    rename: Callable[[str], str | None]
    """Today's name of a key matched, or None when it is named as today."""


def renamed_dead_letters(key: str) -> str | None:
    """Today's name of a pipeline stream's dead-letter stream (`articles.raw.dlq` ->
    `{articles.raw}.dlq`); None for any other key."""
    stream = key.removesuffix(DLQ_SUFFIX)
    return dead_letter_stream(stream) if stream in CONSUMED_STREAMS and stream != key else None


PIPELINE_DEAD_LETTERS = LegacyKeys(f"*{DLQ_SUFFIX}", renamed_dead_letters)


async def rename_legacy_keys(redis: aioredis.Redis, legacy: Sequence[LegacyKeys]) -> int:
    """Rename every key matched by `legacy` that has an earlier name; returns how many were
    renamed. Nothing to do on a cluster."""
    if isinstance(redis, RedisCluster):
        return 0
    renamed = 0
    for keys in legacy:
        mark = RENAMED_MARK + keys.pattern
        if await redis.exists(mark):
            continue
        async for raw in redis.scan_iter(match=keys.pattern, count=SCAN_BATCH):
            old = raw.decode("utf-8", "surrogateescape")
            new = keys.rename(old)
            if new is None or new == old:
                continue
            try:
                done = await redis.renamenx(raw, new.encode("utf-8", "surrogateescape"))
            except ResponseError:  # gone since the scan saw it: another replica renamed it
                continue
            if done:
                renamed += 1
            else:
                log.warning("key keeps its earlier name: today's name is taken", key=old, new=new)
        await redis.set(mark, 1)
    return renamed
