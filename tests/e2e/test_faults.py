"""Nothing lost, nothing alerted twice: the four services as separate processes
on one Redis, each killed with SIGKILL in turn in the middle of a run, and Redis
itself stopped and started on the same data; then every article is in exactly
one story and the alerts are exactly the expected ones.

The run is 2,000 synthetic articles (500 stories x 4 syndicated copies, one
story in four about the topic) plus the five seed pages; NEWSMON_FAULT_STORIES
changes the number of stories.

And polling recovers within seconds: a fetcher killed in the middle of a poll, or
Redis restarted under it, leaves no lease behind that keeps a feed unpolled.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import redis as sync_redis
from harness import (
    LocalHttpServer,
    RedisServer,
    ServiceProcess,
    corpus_config,
    drained,
    placed_articles,
    send,
    stream_alerts,
    wait_for,
)

from contracts.streams import CONSUMED_STREAMS, STORIES_EVENTS, dead_letter_stream
from services.cli import SERVICE_NAMES
from services.samples.corpus import CorpusSite, synthetic_corpus
from services.samples.server import SampleSite

pytestmark = pytest.mark.e2e

STORIES = int(os.environ.get("NEWSMON_FAULT_STORIES", "500"))
COPIES = 4
SEED_STORIES = 3
RECOVERY_SECONDS = 10
"""Every feed is polled again this soon after the fetcher or Redis is back (the issue's bound)."""


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.mark.timeout(900)
def test_kills_and_a_redis_restart_lose_nothing_and_repeat_no_alert(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    corpus = synthetic_corpus(STORIES, COPIES, heavy_edits=False)
    expected_articles = len(corpus) + 5
    topic_stories = {a.story for a in corpus if a.mentions_topic}
    logs = tmp_path / "logs"
    logs.mkdir()
    with CorpusSite(corpus, items_per_feed=100) as site, SampleSite() as samples:
        feeds = [*site.feed_urls, samples.feed_url]
        config = corpus_config(tmp_path / "newsmon.yaml", feeds)
        services = {
            name: ServiceProcess(name, redis_server.url, config, logs) for name in SERVICE_NAMES
        }
        client = sync_redis.Redis.from_url(redis_server.url)
        try:
            for service in services.values():
                service.start()
            faults = [(0.1, "fetcher"), (0.3, "cleaner"), (0.5, "detector"), (0.65, "alerter")]
            for share, name in faults:
                wait_for(
                    lambda share=share: client.xlen(STORIES_EVENTS) >= share * expected_articles,
                    240,
                    f"{share:.0%} of the articles placed",
                )
                services[name].kill()
                services[name].start()
            wait_for(
                lambda: client.xlen(STORIES_EVENTS) >= 0.8 * expected_articles,
                240,
                "80% placed",
            )
            redis_server.stop()
            time.sleep(2)
            redis_server.start()

            wait_for(
                lambda: (
                    client.xlen(STORIES_EVENTS) >= expected_articles
                    and drained(redis_server.url)
                    and len(placed_articles(client)) >= expected_articles
                ),
                300,
                "every article placed and every stream drained",
            )
        finally:
            for service in services.values():
                service.stop()
        # every service has exited: what is in Redis now is all there will ever be
        articles = placed_articles(client)
        alerts = stream_alerts(client)
        dead = {s: client.xlen(dead_letter_stream(s)) for s in CONSUMED_STREAMS}
        drained_after_stop = drained(redis_server.url)

    assert drained_after_stop, "an entry was left unread or unacknowledged"

    assert len(articles) == expected_articles
    in_two_stories = {a: s for a, s in articles.items() if len(s) != 1}
    assert not in_two_stories, f"articles in more than one story: {in_two_stories}"
    assert len({next(iter(s)) for s in articles.values()}) == STORIES + SEED_STORIES
    by_topic: dict[str, list[str]] = defaultdict(list)
    for alert in alerts:
        by_topic[alert.topic].append(alert.story_id)
    assert len(by_topic["energy"]) == len(topic_stories)
    assert len(by_topic["OpenAI"]) == SEED_STORIES
    assert len(alerts) == len({(a.story_id, a.topic) for a in alerts}), "an alert was sent twice"
    assert dead == dict.fromkeys(CONSUMED_STREAMS, 0)
    assert all(service.starts == 2 for service in services.values())


class HoldingFeeds(LocalHttpServer):
    """`count` feeds of one page each on 127.0.0.1 (`/feed-<k>.xml`, `/p<k>.html`) that
    note when each feed is requested; the first request of `/feed-0.xml` is held until
    `release()`, so a test can act in the middle of a poll."""

    def __init__(self, count: int) -> None:
        self.names = [f"feed-{k}" for k in range(count)]
        self.held = threading.Event()
        self.requested: dict[str, list[float]] = {name: [] for name in self.names}
        self._released = threading.Event()
        super().__init__()

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        name = handler.path.removeprefix("/").removesuffix(".xml")
        if name in self.requested:
            self.requested[name].append(time.monotonic())
            if name == "feed-0" and not self.held.is_set():
                self.held.set()
                self._released.wait(timeout=120)
            link = f"{self.base_url}/p{name.removeprefix('feed-')}.html"
            feed = f'<rss version="2.0"><channel><title>T</title><item><link>{link}</link></item>'
            send(handler, 200, f"{feed}</channel></rss>".encode(), "application/rss+xml")
        elif handler.path.startswith("/p"):
            send(handler, 200, f"<html><body>{handler.path}</body></html>".encode(), "text/html")
        else:
            send(handler, 404)

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self.release()
        super().close()

    def polled_since(self, since: float) -> dict[str, float]:
        """Feed -> seconds from `since` (monotonic) to its first request after it."""
        firsts = {n: [t for t in times if t > since] for n, times in self.requested.items()}
        return {name: times[0] - since for name, times in firsts.items() if times}


@pytest.fixture
def feeds() -> Iterator[HoldingFeeds]:
    site = HoldingFeeds(3)
    yield site
    site.close()


def polling_fetcher(redis_server: RedisServer, feeds: HoldingFeeds, work: Path) -> ServiceProcess:
    """A fetcher of `feeds` every 2 s, one request at a time to their host (so a slot
    left behind blocks every feed), its politeness and leases otherwise the defaults."""
    config = work / "newsmon.yaml"
    config.write_text(
        "sources:\n"
        + "".join(
            f"  - name: {name}\n    url: {feeds.base_url}/{name}.xml\n    interval_seconds: 2\n"
            for name in feeds.names
        )
        + 'allowed_private_hosts: ["127.0.0.1:*"]\n',
        encoding="utf-8",
    )
    fetcher = ServiceProcess("fetcher", redis_server.url, config, work)
    fetcher.env["NEWSMON_FETCHER_HOST_CONCURRENCY"] = "1"
    return fetcher


def wait_for_every_feed_polled(feeds: HoldingFeeds, since: float) -> dict[str, float]:
    """Feed -> seconds after `since` it was requested again; fails after RECOVERY_SECONDS."""
    wait_for(
        lambda: len(feeds.polled_since(since)) == len(feeds.names),
        RECOVERY_SECONDS,
        f"every feed polled again within {RECOVERY_SECONDS} s: {feeds.polled_since(since)}",
    )
    return feeds.polled_since(since)


@pytest.mark.timeout(120)
def test_a_fetcher_killed_mid_poll_polls_every_feed_again_within_seconds_of_its_restart(
    redis_server: RedisServer, feeds: HoldingFeeds, tmp_path: Path
) -> None:
    fetcher = polling_fetcher(redis_server, feeds, tmp_path)
    try:
        fetcher.start()
        wait_for(feeds.held.is_set, 60, "a poll in the middle of its feed request")
        fetcher.kill()  # its poll lease and host slot stay in Redis
        feeds.release()
        back = time.monotonic()
        fetcher.start()
        polled = wait_for_every_feed_polled(feeds, back)
    finally:
        fetcher.stop()
    print(f"polled again after the fetcher's restart (s): {polled}")


@pytest.mark.timeout(120)
def test_a_redis_restart_mid_poll_has_every_feed_polled_again_within_seconds_logged_once(
    redis_server: RedisServer, feeds: HoldingFeeds, tmp_path: Path
) -> None:
    fetcher = polling_fetcher(redis_server, feeds, tmp_path)
    try:
        fetcher.start()
        wait_for(feeds.held.is_set, 60, "a poll in the middle of its feed request")
        redis_server.stop()  # SHUTDOWN: the leases are in the AOF
        redis_server.start()
        back = time.monotonic()
        feeds.release()
        polled = wait_for_every_feed_polled(feeds, back)
    finally:
        fetcher.stop()
    print(f"polled again after Redis's restart (s): {polled}")
    log = (tmp_path / "fetcher-1.log").read_text(encoding="utf-8")
    assert "Traceback" not in log
    reported = [line for line in log.splitlines() if "[warning" in line or "[error" in line]
    assert len(reported) == 1 and "Redis unavailable" in reported[0], log
