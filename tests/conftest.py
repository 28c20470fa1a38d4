"""Shared fixtures: a real Redis (embedded, or REDIS_URL) and paths to shared data.

With REDIS_URL set, the tests FLUSH that database before each test: point it at
a disposable database (e.g. redis://127.0.0.1:6379/15).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from services.common.redis import connect, embedded_redis

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SEEDS = SHARED / "seeds"


def require_shared(path: Path) -> Path:
    """`path` under ../shared, or skip the test saying it is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is not part of a user's clone)")
    return path


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """REDIS_URL when set, else an embedded Redis for the whole session."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    with embedded_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client on an empty database."""
    client = connect(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def newsmon_up(
    config_yaml: str, work_dir: Path, *, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`newsmon up` as a real process on its own embedded Redis; yields its HTTP
    base URL and the process (output in `work_dir/newsmon.log`: a pipe could fill
    up, or be held open by the Redis server it starts); stops it with SIGTERM."""
    port = free_port()
    config = work_dir / "newsmon.yaml"
    config.write_text(config_yaml, encoding="utf-8")
    env = {**os.environ, "NEWSMON_DATA_DIR": str(work_dir / "data"), **(extra_env or {})}
    env["NEWSMON_HTTP_PORT"] = str(port)
    env.pop("REDIS_URL", None)
    log = (work_dir / "newsmon.log").open("w", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "up", "--config", str(config)],
        env=env,
        stdout=log,
        stderr=log,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        log.close()


def wait_for_metric(
    base_url: str, sample: str, minimum: float, timeout_seconds: float = 90
) -> float:
    """The value of a /metrics sample once it reaches `minimum`."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            ready = httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200
            text = httpx.get(f"{base_url}/metrics", timeout=2).text if ready else ""
        except httpx.TransportError:
            text = ""
        for line in text.splitlines():
            if line.startswith(sample + " ") and float(line.split()[-1]) >= minimum:
                return float(line.split()[-1])
        time.sleep(0.3)
    raise AssertionError(f"{sample} did not reach {minimum} within {timeout_seconds} s")


def newsmon_dlq(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`newsmon dlq ARGS...` as a user runs it, against the Redis at `redis_url`."""
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "dlq", *args],
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
