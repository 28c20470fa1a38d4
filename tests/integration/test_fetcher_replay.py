"""Replay: the fetcher, a real process, is killed (SIGKILL) in the middle of a poll and
started again; what it published, taken together, has every item exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from harness import LocalHttpServer, ServiceProcess, send

from contracts import RawArticle
from contracts.streams import ARTICLES_RAW
from services.common.bus import DATA_FIELD

pytestmark = pytest.mark.integration

ITEMS = 30


class SlowSite(LocalHttpServer):
    """A feed of ITEMS items whose pages take 40 ms each, so a poll lasts a while."""

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.path == "/feed.xml":
            items = "".join(
                f"<item><link>{self.base_url}/p{n}.html</link></item>" for n in range(ITEMS)
            )
            body = f'<rss version="2.0"><channel><title>T</title>{items}</channel></rss>'
            send(handler, 200, body.encode(), "application/rss+xml")
        elif handler.path == "/robots.txt":
            send(handler, 404)
        else:
            time.sleep(0.04)
            send(handler, 200, f"<html><body>{handler.path}</body></html>".encode(), "text/html")


@pytest.fixture
def site() -> Iterator[SlowSite]:
    with SlowSite() as slow:
        yield slow


def fetcher(config: Path, redis_url: str, logs: Path) -> ServiceProcess:
    process = ServiceProcess("fetcher", redis_url, config, logs)
    process.env.update(
        {
            "NEWSMON_LOG_LEVEL": "INFO",  # the poll's end is read from its log
            "NEWSMON_FETCHER_TICK_SECONDS": "0.1",
            "NEWSMON_FETCHER_POLL_LEASE_SECONDS": "1",
        }
    )
    return process


async def wait_for_published(redis: aioredis.Redis, count: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while (length := await redis.xlen(ARTICLES_RAW)) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return int(length)


async def wait_for_log_line(log: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(encoding="utf-8"):
        assert time.monotonic() < deadline, f"no {text!r} in {log}:\n{log.read_text()}"
        await asyncio.sleep(0.05)


async def test_a_fetcher_killed_mid_poll_publishes_every_item_exactly_once_after_restart(
    redis: aioredis.Redis, redis_url: str, site: SlowSite, tmp_path: Path
) -> None:
    config = tmp_path / "newsmon.yaml"
    config.write_text(
        f"sources:\n  - name: slow\n    url: {site.base_url}/feed.xml\n"
        '    interval_seconds: 300\nallowed_private_hosts: ["127.0.0.1:*"]\n',
        encoding="utf-8",
    )
    service = fetcher(config, redis_url, tmp_path)
    service.start()
    try:
        before_kill = await wait_for_published(redis, 5)
    finally:
        service.kill()
    first_log = service.log_path(1).read_text(encoding="utf-8")
    assert 5 <= before_kill < ITEMS, first_log  # killed mid-poll
    assert "source polled" not in first_log

    service.start()
    try:
        # the poll's own report that it is over: whatever it would publish is published
        await wait_for_log_line(service.log_path(2), "source polled")
    finally:
        service.stop()

    entries = await redis.xrange(ARTICLES_RAW)
    urls = [RawArticle.model_validate_json(fields[DATA_FIELD]).url for _, fields in entries]
    assert sorted(urls) == sorted(f"{site.base_url}/p{n}.html" for n in range(ITEMS))
