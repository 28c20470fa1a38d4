"""The fetcher's poll loop against a real HTTP server on 127.0.0.1: new items
once, conditional GET, broken feeds and pages dead-lettered, service unharmed."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler

import pytest
import redis.asyncio as aioredis
from harness import LocalHttpServer, dead_letters, local_http, make_poller, published, send
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from contracts import RawArticle, SourceConfig
from contracts.streams import ARTICLES_RAW
from services.fetcher.handlers import Poller
from services.fetcher.settings import FetcherSettings
from services.fetcher.store import FetcherStore, fetcher_key, seen_key

pytestmark = pytest.mark.integration

NOW = datetime(2025, 10, 9, 12, 0, tzinfo=UTC)
PAGE = b"<html><body><article><p>Story text.</p></article></body></html>"


def rss(base: str, *names: str) -> bytes:
    items = "".join(
        f"<item><title>{n}</title><link>{base}/{n}</link><guid>{n}</guid></item>" for n in names
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{items}</channel></rss>'
    ).encode()


class NewsServer(LocalHttpServer):
    """A feed server whose answers each test sets; counts the requests."""

    def __init__(self) -> None:
        self.feed_names: list[str] = ["a.html", "b.html"]
        self.feed_body: bytes | None = None
        self.etag = '"v1"'
        self.held_reached = threading.Event()
        self.release_held = threading.Event()
        super().__init__()

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.path == "/feed.xml":
            if handler.headers.get("If-None-Match") == self.etag:
                send(handler, 304)
                return
            body = self.feed_body or rss(self.base_url, *self.feed_names)
            send(handler, 200, body, "application/rss+xml", ETag=self.etag)
        elif handler.path == "/held.xml":  # answers once the test releases it
            self.held_reached.set()
            self.release_held.wait(10)
            send(handler, 200, rss(self.base_url, "late.html"), "application/rss+xml")
        elif handler.path == "/gone.html":
            send(handler, 404, b"not here")
        else:
            send(handler, 200, PAGE, "text/html; charset=utf-8")


@pytest.fixture
def server() -> Iterator[NewsServer]:
    with NewsServer() as news:
        yield news


@pytest.fixture
def source(server: NewsServer) -> SourceConfig:
    return SourceConfig(name="test", url=f"{server.base_url}/feed.xml", lang="en")


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def poller(
    redis: aioredis.Redis, source: SourceConfig, registry: CollectorRegistry
) -> AsyncIterator[Poller]:
    settings = FetcherSettings(host_min_interval_seconds=0)
    async with local_http(settings, timeout_seconds=5) as http:
        yield make_poller(redis, registry, http, settings, sources=[source], clock=lambda: NOW)


async def test_each_item_is_published_once_and_unchanged_feeds_answer_304(
    redis: aioredis.Redis, server: NewsServer, poller: Poller, source: SourceConfig
) -> None:
    assert await poller.poll(source) == 2
    articles = await published(redis)
    assert [a.url for a in articles] == [f"{server.base_url}/a.html", f"{server.base_url}/b.html"]
    assert articles[0].html.startswith("<html>") and articles[0].lang_hint == "en"

    server.requests.clear()
    assert await poller.poll(source) == 0
    assert server.requests == ["/feed.xml"]  # 304: no page fetched again
    assert (await poller.load_state(source)).etag == '"v1"'

    server.etag = '"v2"'
    server.feed_names = ["b.html", "c.html", "a.html"]  # reordered, one new
    assert await poller.poll(source) == 1
    assert [a.url.rsplit("/", 1)[1] for a in await published(redis)] == [
        "a.html",
        "b.html",
        "c.html",
    ]


def dead_letter_count(registry: CollectorRegistry, reason: str) -> float | None:
    """newsmon_dead_letters_total of articles.raw: the count every consumer keeps too."""
    labels = {"stream": ARTICLES_RAW, "reason": reason}
    return registry.get_sample_value("newsmon_dead_letters_total", labels)


async def test_a_broken_feed_is_dead_lettered_and_backed_off(
    redis: aioredis.Redis,
    server: NewsServer,
    poller: Poller,
    source: SourceConfig,
    registry: CollectorRegistry,
) -> None:
    server.feed_body = b"<html><body>This is a parking page, not a feed</body></html>"
    assert await poller.poll(source) == 0
    [letter] = await dead_letters(redis)
    assert letter.reason == "broken_feed" and "test" in letter.error
    assert dead_letter_count(registry, "broken_feed") == 1
    state = await poller.load_state(source)
    assert state.failures == 1 and state.next_poll_at > NOW.timestamp()

    server.feed_body = None  # the feed recovers
    assert await poller.poll(source) == 2
    assert (await poller.load_state(source)).failures == 0


async def test_a_missing_page_is_dead_lettered_once_and_others_go_through(
    redis: aioredis.Redis,
    server: NewsServer,
    poller: Poller,
    source: SourceConfig,
    registry: CollectorRegistry,
) -> None:
    server.feed_names = ["gone.html", "a.html"]
    assert await poller.poll(source) == 1
    server.etag = '"v2"'
    assert await poller.poll(source) == 0
    [letter] = await dead_letters(redis)
    assert "gone.html" in letter.error and letter.service == "fetcher"
    assert dead_letter_count(registry, "http_404") == 1


async def test_a_poll_lease_is_taken_back_by_its_holder_and_by_no_one_else(
    redis: aioredis.Redis,
) -> None:
    store = FetcherStore(redis, "newsmon:fetcher", seen_retention_seconds=3600)
    assert await store.try_lock("s", "mine", 5000)
    assert await store.try_lock("s", "mine", 5000)  # after Redis came back, say
    assert not await store.try_lock("s", "theirs", 5000)
    assert not await store.renew_lock("s", "theirs", 5000)
    assert await store.renew_lock("s", "mine", 5000)
    await store.unlock("s", "mine")
    assert await store.try_lock("s", "theirs", 5000)


async def test_a_host_slot_held_by_renewals_outlives_its_lease_and_one_not_renewed_frees(
    redis: aioredis.Redis,
) -> None:
    store = FetcherStore(redis, "newsmon:fetcher", seen_retention_seconds=3600)
    assert await store.acquire_host("h", "renewed", limit=1, lease_ms=200, interval_ms=0) == 0
    for _ in range(3):
        await asyncio.sleep(0.1)
        assert await store.renew_host("h", "renewed", 200)
    assert await store.acquire_host("h", "other", limit=1, lease_ms=200, interval_ms=0) == -1
    await asyncio.sleep(0.25)  # no renewal: the slot of a dead request runs out
    assert not await store.renew_host("h", "renewed", 200)
    assert await store.acquire_host("h", "other", limit=1, lease_ms=200, interval_ms=0) == 0


async def test_seen_ids_are_kept_while_listed_and_dropped_after_the_retention(
    redis: aioredis.Redis,
) -> None:
    store = FetcherStore(redis, "newsmon:fetcher", seen_retention_seconds=3600)
    article = RawArticle(
        article_id="a",
        url="https://example.org/a",
        final_url="https://example.org/a",
        source="s",
        fetched_at=datetime.now(UTC),
        html="<p>x</p>",
    )
    assert await store.publish_once("listed", article)
    assert await store.publish_once("dropped", article)
    # a day passes on the stored scores: "listed" is still in its feed, "dropped" is not
    day_ago = (datetime.now(UTC).timestamp() - 2 * 3600) * 1000
    await redis.zadd(seen_key("newsmon:fetcher"), {"listed": day_ago, "dropped": day_ago})
    assert await store.unseen(["listed", "new"], datetime.now(UTC)) == {"new"}
    assert await store.publish_once("new", article)  # each publish trims what is too old
    assert await store.unseen(["listed", "dropped"], datetime.now(UTC)) == {"dropped"}
    assert not await store.publish_once("listed", article)
    assert await redis.zcard(seen_key("newsmon:fetcher")) == 2


async def test_the_unbounded_seen_set_of_earlier_versions_is_moved_over(
    redis: aioredis.Redis,
) -> None:
    await redis.sadd("newsmon:fetcher:seen", *[f"id-{n}" for n in range(2500)])
    store = FetcherStore(redis, "newsmon:fetcher", seen_retention_seconds=3600)
    assert await store.migrate_legacy_seen(datetime.now(UTC)) == 2500
    assert not await redis.exists("newsmon:fetcher:seen")
    assert await store.unseen(["id-0", "id-2499", "id-new"], datetime.now(UTC)) == {"id-new"}


async def test_deleting_a_source_cancels_its_poll_and_leaves_no_state_behind(
    redis: aioredis.Redis, server: NewsServer, registry: CollectorRegistry
) -> None:
    settings = FetcherSettings(
        host_min_interval_seconds=0, tick_seconds=0.02, state_refresh_seconds=60
    )
    async with local_http(settings, timeout_seconds=15) as http:
        poller = make_poller(redis, registry, http, settings, clock=lambda: NOW)
        await _delete_while_polling(redis, server, poller)


async def _delete_while_polling(redis: aioredis.Redis, server: NewsServer, poller: Poller) -> None:
    doomed = SourceConfig(name="doomed", url=f"{server.base_url}/held.xml")
    assert await poller.add_source(doomed)
    task = asyncio.create_task(poller.run_forever())
    try:
        with capture_logs() as logs:
            assert await asyncio.to_thread(server.held_reached.wait, 10), "never polled"
            assert await poller.remove_source("doomed")
            for _ in range(500):
                if any(e["event"] == "source deleted, its poll cancelled" for e in logs):
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the poll of the deleted source was not cancelled")
        server.release_held.set()
        # a poll that outlived its source (another replica's, say) cannot save its state
        assert not await poller.store.save_state("doomed", await poller.store.load_state("x"))
        assert not await redis.exists(fetcher_key("newsmon:fetcher", "source", "doomed"))
        assert await published(redis) == []
        # a source added again under that name is polled and saved as any other
        assert await poller.add_source(SourceConfig(name="doomed", url=doomed.url))
        assert await poller.store.save_state("doomed", await poller.store.load_state("x"))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
