"""Shared fixtures: a real Redis (embedded, or REDIS_URL) and paths to shared data.

With REDIS_URL set, the tests FLUSH that database before each test: point it at
a disposable database (e.g. redis://127.0.0.1:6379/15).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
import yaml

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


READ_TOKEN = "reader-token-for-tests"
"""The read-scope token of the alerter's API and page in `seeded`."""
ADMIN_TOKEN = "admin-token-for-tests"
PUSH_TOKENS = {"coastal-daily": "coastal-daily-push-token"}
"""Publishers that may push pages to `seeded`'s fetcher, and their tokens."""


@dataclass(frozen=True, slots=True)
class SeededNewsmon:
    """`newsmon up` that has made the seed stories from the sample site."""

    base_url: str
    data_dir: Path

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`newsmon ARGS...` as a user runs it beside the running pipeline."""
        return subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env={**os.environ, "NEWSMON_DATA_DIR": str(self.data_dir)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededNewsmon]:
    """`newsmon up` on the sample site, once its three stories and five alerts are made;
    one per test module, which may add stories of its own."""
    from services.demo import demo_config
    from services.samples.server import SampleSite

    work_dir = tmp_path_factory.mktemp("seeded")
    tokens = {
        "NEWSMON_ALERTER_READ_TOKEN": READ_TOKEN,
        "NEWSMON_ALERTER_API_TOKEN": ADMIN_TOKEN,
        "NEWSMON_FETCHER_PUSH_TOKENS": json.dumps(PUSH_TOKENS),
    }
    with SampleSite() as site:
        config = demo_config(site.feed_url).model_dump(mode="json", exclude_defaults=True)
        with newsmon_up(yaml.safe_dump(config), work_dir, extra_env=tokens) as (base_url, _):
            _wait_for_seed_stories(base_url)
            yield SeededNewsmon(base_url, work_dir / "data")


def _wait_for_seed_stories(base_url: str, timeout_seconds: float = 120) -> None:
    auth = {"Authorization": f"Bearer {READ_TOKEN}"}
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            stories = httpx.get(f"{base_url}/stories", headers=auth, timeout=5).json()["items"]
            alerts = httpx.get(f"{base_url}/alerts", headers=auth, timeout=5).json()["items"]
        except (httpx.TransportError, ValueError, KeyError):
            stories, alerts = [], []
        if sum(s["article_count"] for s in stories) == 5 and len(alerts) == 5:
            return
        time.sleep(0.3)
    raise AssertionError(f"the seed stories were not made within {timeout_seconds} s")


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
