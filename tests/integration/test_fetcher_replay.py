"""Replay: the fetcher, a real process, is killed (SIGKILL) in the middle of a poll and
started again; what it published, taken together, has every item exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from contracts import RawArticle
from contracts.streams import ARTICLES_RAW
from services.common.bus import DATA_FIELD

pytestmark = pytest.mark.integration

ITEMS = 30


class SlowSite:
    """A feed of ITEMS items whose pages take 40 ms each, so a poll lasts a while."""

    def __init__(self) -> None:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/feed.xml":
                    items = "".join(
                        f"<item><link>{site.base_url}/p{n}.html</link></item>" for n in range(ITEMS)
                    )
                    body = f'<rss version="2.0"><channel><title>T</title>{items}</channel></rss>'
                    self._send(body.encode(), "application/rss+xml")
                elif self.path == "/robots.txt":
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    time.sleep(0.04)
                    self._send(f"<html><body>{self.path}</body></html>".encode(), "text/html")

            def _send(self, body: bytes, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def site() -> Iterator[SlowSite]:
    slow = SlowSite()
    yield slow
    slow.close()


def start_fetcher(config: Path, redis_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "NEWSMON_HTTP_PORT": "0",
        "NEWSMON_FETCHER_TICK_SECONDS": "0.1",
        "NEWSMON_FETCHER_HOST_MIN_INTERVAL_SECONDS": "0",
        "NEWSMON_FETCHER_POLL_LEASE_SECONDS": "1",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", "fetcher", "--config", str(config)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def wait_for_published(redis: aioredis.Redis, count: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while (length := await redis.xlen(ARTICLES_RAW)) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return int(length)


async def test_a_fetcher_killed_mid_poll_publishes_every_item_exactly_once_after_restart(
    redis: aioredis.Redis, redis_url: str, site: SlowSite, tmp_path: Path
) -> None:
    config = tmp_path / "newsmon.yaml"
    config.write_text(
        f"sources:\n  - name: slow\n    url: {site.base_url}/feed.xml\n"
        '    interval_seconds: 300\nallowed_private_hosts: ["127.0.0.1"]\n',
        encoding="utf-8",
    )
    log = tmp_path / "fetcher.log"
    first = start_fetcher(config, redis_url, log)
    try:
        before_kill = await wait_for_published(redis, 5)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert 5 <= before_kill < ITEMS, log.read_text()  # killed mid-poll

    second = start_fetcher(config, redis_url, log)
    try:
        assert await wait_for_published(redis, ITEMS) == ITEMS, log.read_text()
        await asyncio.sleep(0.5)  # anything repeated would show up now
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)

    entries = await redis.xrange(ARTICLES_RAW)
    urls = [RawArticle.model_validate_json(fields[DATA_FIELD]).url for _, fields in entries]
    assert sorted(urls) == sorted(f"{site.base_url}/p{n}.html" for n in range(ITEMS))
