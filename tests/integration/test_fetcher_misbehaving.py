"""The poller against real HTTP servers on 127.0.0.1 that misbehave.

Each case ends with a log line saying what happened, a metric counting it, and
a fetcher that still works (the next healthy poll publishes).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gzip
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import brotli
import harness
import pytest
import redis.asyncio as aioredis
from harness import LocalHttpServer, dead_letters, local_http, published, send
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from contracts import SourceConfig
from contracts.streams import ARTICLES_RAW
from services.fetcher.handlers import Poller
from services.fetcher.http import HttpClient, HttpResponse, HttpxClient
from services.fetcher.leases import LeaseLostError
from services.fetcher.settings import FetcherSettings
from services.fetcher.store import fetcher_key, seen_key

pytestmark = pytest.mark.integration

NOW = datetime(2025, 10, 9, 12, 0, tzinfo=UTC)
PAGE = b"<html><body><article><p>Story text.</p></article></body></html>"
BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>&lol9;</title>
<item><link>http://127.0.0.1/bomb-item</link></item></channel></rss>"""

Route = Callable[[BaseHTTPRequestHandler], None]


def rss(base: str, *names: str, ttl: int | None = None) -> bytes:
    items = "".join(f"<item><title>{n}</title><link>{base}/{n}</link></item>" for n in names)
    ttl_tag = f"<ttl>{ttl}</ttl>" if ttl else ""
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{ttl_tag}'
        f"{items}</channel></rss>"
    ).encode()


class MisbehavingServer(LocalHttpServer):
    """Routes set per test; unknown paths are article pages; every request is recorded."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        super().__init__()

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        route = self.routes.get(handler.path)
        if route is not None:
            route(handler)
        elif handler.path == "/robots.txt":
            send(handler, 404)
        else:
            send(handler, 200, PAGE, "text/html; charset=utf-8")

    def feed(self, *names: str, **headers: str) -> Route:
        def respond(handler: BaseHTTPRequestHandler) -> None:
            send(handler, 200, rss(self.base_url, *names), "application/rss+xml", **headers)

        return respond

    def pages_fetched(self) -> list[str]:
        return [p for p in self.requests if p.endswith(".html")]


@pytest.fixture
def server() -> Iterator[MisbehavingServer]:
    site = MisbehavingServer()
    yield site
    site.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def client_for(settings: FetcherSettings) -> HttpxClient:
    return local_http(settings, read_timeout_seconds=0.5, max_redirects=4)


def make_poller(
    redis: aioredis.Redis,
    registry: CollectorRegistry,
    http: HttpClient,
    settings: FetcherSettings,
    *,
    sources: tuple[SourceConfig, ...] = (),
    clock: Callable[[], datetime] = lambda: NOW,
) -> Poller:
    """A poller at NOW whose metrics are on `registry`."""
    return harness.make_poller(redis, registry, http, settings, sources=sources, clock=clock)


SETTINGS = FetcherSettings(
    host_min_interval_seconds=0, broken_after_failures=3, timeout_seconds=1.0
)


@pytest.fixture
async def poller(redis: aioredis.Redis, registry: CollectorRegistry) -> AsyncIterator[Poller]:
    async with client_for(SETTINGS) as http:
        yield make_poller(redis, registry, http, SETTINGS)


def source(server: MisbehavingServer, path: str = "/feed.xml", **fields: Any) -> SourceConfig:
    return SourceConfig(name=fields.pop("name", "s"), url=server.base_url + path, **fields)


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def poll_logged(poller: Poller, src: SourceConfig) -> tuple[int, list[dict[str, Any]]]:
    with capture_logs() as logs:
        count = await poller.poll(src)
    return count, logs


async def still_works(poller: Poller, server: MisbehavingServer, path: str) -> None:
    """The same source, healthy now, publishes its new item."""
    server.routes[path] = server.feed(f"ok-{path.strip('/')}.html")
    await poller.store.update_state("s", next_poll_at=0.0, status="active")
    assert await poller.poll(source(server, path)) == 1


async def test_an_unchanged_feed_answers_304_and_no_page_is_fetched_again(
    poller: Poller, server: MisbehavingServer, registry: CollectorRegistry
) -> None:
    def conditional(handler: BaseHTTPRequestHandler) -> None:
        if handler.headers.get("If-None-Match") == '"v1"':
            send(handler, 304, ETag='"v1"')
        else:
            server.feed("a.html", "b.html", ETag='"v1"')(handler)

    server.routes["/feed.xml"] = conditional
    assert await poller.poll(source(server)) == 2
    server.requests.clear()
    count, logs = await poll_logged(poller, source(server))
    assert count == 0 and server.requests == ["/feed.xml"]
    assert any(e["event"] == "source not modified" for e in logs)
    assert metric(registry, "newsmon_fetcher_polls_total", outcome="not_modified") == 1


async def test_a_feed_without_validators_is_not_parsed_again_until_its_bytes_change(
    poller: Poller, server: MisbehavingServer, registry: CollectorRegistry
) -> None:
    server.routes["/feed.xml"] = server.feed("a.html", "b.html")
    assert await poller.poll(source(server)) == 2
    count, logs = await poll_logged(poller, source(server))
    assert count == 0
    assert any(e["event"] == "source unchanged" for e in logs)
    assert metric(registry, "newsmon_fetcher_polls_total", outcome="unchanged") == 1
    server.routes["/feed.xml"] = server.feed("a.html", "b.html", "c.html")
    assert await poller.poll(source(server)) == 1
    assert metric(registry, "newsmon_fetcher_polls_total", outcome="changed") == 2


async def test_429_is_retried_no_sooner_than_retry_after(
    poller: Poller, server: MisbehavingServer, registry: CollectorRegistry
) -> None:
    server.routes["/feed.xml"] = lambda h: send(h, 429, Retry_After="3600")
    count, logs = await poll_logged(poller, source(server))
    state = await poller.store.load_state("s")
    assert count == 0 and state.next_poll_at >= NOW.timestamp() + 3600
    assert any(e["event"] == "source poll failed" and e["reason"] == "http_429" for e in logs)
    assert metric(registry, "newsmon_fetcher_fetch_errors_total", kind="feed", reason="http_429")
    assert await dead_letters(poller._redis) == []  # transient: nothing to dead-letter
    await still_works(poller, server, "/feed.xml")


async def test_503_is_retried_no_sooner_than_a_retry_after_date(
    poller: Poller, server: MisbehavingServer, registry: CollectorRegistry
) -> None:
    def unavailable(handler: BaseHTTPRequestHandler) -> None:
        # An HTTP-date two hours after the response's own Date header (sent by the server).
        later = email.utils.formatdate(time.time() + 7200, usegmt=True)
        send(handler, 503, b"down for maintenance", Retry_After=later)

    server.routes["/feed.xml"] = unavailable
    count, logs = await poll_logged(poller, source(server))
    state = await poller.store.load_state("s")
    assert count == 0 and state.failures == 1 and state.status == "active"
    assert state.next_poll_at >= NOW.timestamp() + 7200 - 2  # the dates have 1 s resolution
    assert any(e["event"] == "source poll failed" and e["reason"] == "http_503" for e in logs)
    assert metric(registry, "newsmon_fetcher_fetch_errors_total", kind="feed", reason="http_503")
    assert await dead_letters(poller._redis) == []  # transient: nothing to dead-letter
    await still_works(poller, server, "/feed.xml")


async def test_a_burst_of_500s_backs_off_marks_the_source_broken_then_it_recovers(
    poller: Poller, server: MisbehavingServer, registry: CollectorRegistry
) -> None:
    server.routes["/feed.xml"] = lambda h: send(h, 500)
    delays = []
    for _ in range(3):
        await poller.poll(source(server))
        delays.append((await poller.store.load_state("s")).next_poll_at - NOW.timestamp())
    state = await poller.store.load_state("s")
    assert state.status == "broken" and state.failures == 3
    assert delays[0] < delays[1] and delays[2] >= poller._settings.broken_retry_seconds
    assert metric(registry, "newsmon_fetcher_source_events_total", event="broken") == 1
    assert metric(registry, "newsmon_fetcher_fetches_total", kind="feed", status_class="5xx") == 3

    server.routes["/feed.xml"] = server.feed("back.html")
    count, logs = await poll_logged(poller, source(server))
    assert count == 1 and (await poller.store.load_state("s")).status == "active"
    assert any(e["event"] == "source recovered" for e in logs)


async def test_a_slow_drip_times_out(
    poller: Poller, server: MisbehavingServer, registry: CollectorRegistry
) -> None:
    def drip(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/rss+xml")
        handler.end_headers()
        for _ in range(40):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.05)

    server.routes["/feed.xml"] = drip
    count, logs = await poll_logged(poller, source(server))
    assert count == 0
    assert any(e["event"] == "source poll failed" and e["reason"] == "timeout" for e in logs)
    assert metric(registry, "newsmon_fetcher_fetch_errors_total", kind="feed", reason="timeout")
    await still_works(poller, server, "/feed.xml")


async def test_a_100_mb_body_is_cut_at_the_cap_and_reported(
    poller: Poller, server: MisbehavingServer, registry: CollectorRegistry
) -> None:
    sent = []
    hung_up = threading.Event()

    def call_until_hung_up(respond: Route, handler: BaseHTTPRequestHandler) -> None:
        try:
            respond(handler)
        finally:
            hung_up.set()

    def huge(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/rss+xml")
        handler.end_headers()
        chunk = b"x" * 1_000_000
        for _ in range(100):
            handler.wfile.write(chunk)
            sent.append(len(chunk))

    server.routes["/feed.xml"] = lambda h: call_until_hung_up(huge, h)
    count, logs = await poll_logged(poller, source(server))
    assert count == 0
    assert any(
        e["event"] == "fetch dead-lettered" and e["reason"] == "body_too_large" for e in logs
    )
    [letter] = await dead_letters(poller._redis)
    assert letter.reason == "body_too_large"
    assert metric(
        registry, "newsmon_fetcher_fetch_errors_total", kind="feed", reason="body_too_large"
    )
    assert await asyncio.to_thread(hung_up.wait, 10)
    assert sum(sent) < 100_000_000  # the server could not push it all: the fetcher hung up
    await still_works(poller, server, "/feed.xml")


async def test_a_redirect_loop_is_refused(
    poller: Poller, server: MisbehavingServer, registry: CollectorRegistry
) -> None:
    server.routes["/feed.xml"] = lambda h: send(h, 302, Location="/loop")
    server.routes["/loop"] = lambda h: send(h, 302, Location="/feed.xml")
    count, logs = await poll_logged(poller, source(server))
    assert count == 0
    assert any(e.get("reason") == "too_many_redirects" for e in logs)
    assert metric(
        registry, "newsmon_fetcher_fetch_errors_total", kind="feed", reason="too_many_redirects"
    )
    await still_works(poller, server, "/feed.xml")


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "http://10.0.0.1/feed.xml",  # private
        "http://localhost:{port}/ok.xml",  # a name resolving to loopback, not allow-listed
    ],
)
async def test_a_redirect_to_a_private_address_is_refused(
    poller: Poller, server: MisbehavingServer, registry: CollectorRegistry, target: str
) -> None:
    port = server.base_url.rsplit(":", 1)[1]
    server.routes["/feed.xml"] = lambda h: send(h, 302, Location=target.format(port=port))
    server.routes["/ok.xml"] = server.feed("leak.html")
    count, logs = await poll_logged(poller, source(server))
    assert count == 0 and "/ok.xml" not in server.requests
    assert any(e.get("reason") == "blocked_address" for e in logs)
    [letter] = await dead_letters(poller._redis)
    assert letter.reason == "blocked_address" and "refused" in letter.error
    assert metric(
        registry, "newsmon_fetcher_fetch_errors_total", kind="feed", reason="blocked_address"
    )
    dead = {"stream": ARTICLES_RAW, "reason": "blocked_address"}
    assert metric(registry, "newsmon_dead_letters_total", **dead) == 1
    await still_works(poller, server, "/feed.xml")


async def test_malformed_xml_is_read_leniently_and_garbage_is_dead_lettered(
    poller: Poller, server: MisbehavingServer, registry: CollectorRegistry
) -> None:
    broken = rss(server.base_url, "a.html", "b.html").replace(
        b"<title>T</title>", b"<title>News & views <b></title>"
    )[: -len("</channel></rss>")]
    server.routes["/feed.xml"] = lambda h: send(h, 200, broken, "application/rss+xml")
    assert await poller.poll(source(server)) == 2

    server.routes["/other.xml"] = lambda h: send(h, 200, b"\x00\xff<<<not xml", "text/xml")
    count, logs = await poll_logged(poller, source(server, "/other.xml", name="other"))
    assert count == 0 and any(e.get("reason") == "broken_feed" for e in logs)
    assert metric(registry, "newsmon_fetcher_polls_total", outcome="broken_feed") == 1
    dead = {"stream": ARTICLES_RAW, "reason": "broken_feed"}
    assert metric(registry, "newsmon_dead_letters_total", **dead) == 1
    await still_works(poller, server, "/feed.xml")


async def test_an_xml_entity_bomb_is_refused_before_expansion(
    poller: Poller, server: MisbehavingServer, registry: CollectorRegistry
) -> None:
    server.routes["/feed.xml"] = lambda h: send(h, 200, BOMB, "application/rss+xml")
    count, logs = await poll_logged(poller, source(server))
    assert count == 0 and not server.pages_fetched()
    [letter] = await dead_letters(poller._redis)
    assert letter.reason == "broken_feed" and "entit" in letter.error.lower()
    assert any(e.get("reason") == "broken_feed" for e in logs)
    assert metric(registry, "newsmon_fetcher_polls_total", outcome="broken_feed") == 1
    await still_works(poller, server, "/feed.xml")


async def test_items_that_change_order_or_repeat_are_published_once(
    poller: Poller, server: MisbehavingServer, redis: aioredis.Redis, registry: CollectorRegistry
) -> None:
    server.routes["/feed.xml"] = server.feed("a.html", "b.html")
    assert await poller.poll(source(server)) == 2
    server.routes["/feed.xml"] = server.feed("b.html", "a.html", "a.html", "c.html", "b.html")
    count, logs = await poll_logged(poller, source(server))
    assert count == 1
    assert [a.url.rsplit("/", 1)[1] for a in await published(redis)] == [
        "a.html",
        "b.html",
        "c.html",
    ]
    assert any(e["event"] == "source polled" and e["new"] == 1 for e in logs)
    assert metric(registry, "newsmon_fetcher_items_skipped_total", reason="seen") == 2


async def test_the_same_item_in_two_feeds_is_published_once(
    poller: Poller, server: MisbehavingServer, redis: aioredis.Redis, registry: CollectorRegistry
) -> None:
    base = server.base_url
    server.routes["/one.xml"] = server.feed("shared.html")
    server.routes["/two.xml"] = lambda h: send(
        h,
        200,
        rss(base, "shared.html?utm_source=two#top", "own.html"),
        "application/rss+xml",
    )
    assert await poller.poll(source(server, "/one.xml", name="one")) == 1
    assert await poller.poll(source(server, "/two.xml", name="two")) == 1
    urls = sorted(a.url for a in await published(redis))
    assert urls == [f"{base}/own.html", f"{base}/shared.html"]
    assert server.pages_fetched().count("/shared.html") == 1
    assert metric(registry, "newsmon_fetcher_items_total", source="one") == 1


async def test_gone_disables_the_source_and_a_permanent_redirect_moves_it(
    poller: Poller, server: MisbehavingServer, registry: CollectorRegistry
) -> None:
    server.routes["/old.xml"] = lambda h: send(h, 301, Location="/new.xml")
    server.routes["/new.xml"] = server.feed("a.html")
    assert await poller.poll(source(server, "/old.xml")) == 1
    assert (await poller.store.load_state("s")).url == f"{server.base_url}/new.xml"
    assert metric(registry, "newsmon_fetcher_source_events_total", event="moved") == 1

    server.routes["/new.xml"] = lambda h: send(h, 410)
    server.requests.clear()
    _count, logs = await poll_logged(poller, source(server, "/old.xml"))
    assert server.requests == ["/new.xml"]  # the stored URL is used
    state = await poller.store.load_state("s")
    assert state.status == "disabled" and not state.is_due(float("inf"))
    assert any(e["event"] == "source disabled: gone (410)" for e in logs)
    assert metric(registry, "newsmon_fetcher_source_events_total", event="disabled") == 1


async def test_next_poll_follows_max_age_and_ttl_within_bounds(
    poller: Poller, server: MisbehavingServer
) -> None:
    server.routes["/feed.xml"] = server.feed("a.html", Cache_Control="max-age=7200")
    await poller.poll(source(server, interval_seconds=300))
    delay = (await poller.store.load_state("s")).next_poll_at - NOW.timestamp()
    assert 7200 * 0.9 <= delay <= 7200 * 1.1

    server.routes["/feed.xml"] = server.feed("a.html", Cache_Control="max-age=99999999")
    await poller.poll(source(server, interval_seconds=300))
    delay = (await poller.store.load_state("s")).next_poll_at - NOW.timestamp()
    assert delay <= poller._settings.max_poll_seconds


async def test_brotli_and_gzip_feeds_are_decoded(poller: Poller, server: MisbehavingServer) -> None:
    body = rss(server.base_url, "br.html")
    server.routes["/br.xml"] = lambda h: send(
        h, 200, brotli.compress(body), "application/rss+xml", Content_Encoding="br"
    )
    server.routes["/gz.xml"] = lambda h: send(
        h,
        200,
        gzip.compress(rss(server.base_url, "gz.html")),
        "application/rss+xml",
        Content_Encoding="gzip",
    )
    assert await poller.poll(source(server, "/br.xml", name="br")) == 1
    assert await poller.poll(source(server, "/gz.xml", name="gz")) == 1


async def test_robots_txt_is_obeyed_for_pages_and_an_unreadable_one_disallows(
    poller: Poller, server: MisbehavingServer, redis: aioredis.Redis, registry: CollectorRegistry
) -> None:
    server.routes["/robots.txt"] = lambda h: send(
        h, 200, b"User-agent: newsmon\nDisallow: /private/\n"
    )
    server.routes["/feed.xml"] = server.feed("private/x.html", "public.html")
    count, logs = await poll_logged(poller, source(server))
    assert count == 1 and "/private/x.html" not in server.requests
    assert any(e["event"] == "page disallowed by robots.txt" for e in logs)
    assert server.requests.count("/robots.txt") == 1  # cached
    assert metric(registry, "newsmon_fetcher_items_skipped_total", reason="robots_disallowed") == 1

    other = MisbehavingServer()
    try:
        other.routes["/robots.txt"] = lambda h: send(h, 503)
        other.routes["/feed.xml"] = other.feed("blocked.html")
        assert await poller.poll(source(other, name="other")) == 0
        assert other.pages_fetched() == []
    finally:
        other.close()


async def test_the_loop_keeps_running_through_misbehaving_sources(
    redis: aioredis.Redis, server: MisbehavingServer, registry: CollectorRegistry
) -> None:
    server.routes["/bomb.xml"] = lambda h: send(h, 200, BOMB, "application/rss+xml")
    server.routes["/error.xml"] = lambda h: send(h, 500)
    server.routes["/loop.xml"] = lambda h: send(h, 302, Location="/loop.xml")
    server.routes["/good.xml"] = server.feed("good.html")
    sources = [
        source(server, f"/{name}.xml", name=name) for name in ("bomb", "error", "loop", "good")
    ]
    settings = FetcherSettings(host_min_interval_seconds=0, tick_seconds=0.05)
    async with client_for(settings) as http:
        poller = make_poller(redis, registry, http, settings, sources=tuple(sources))
        task = asyncio.create_task(poller.run_forever())
        await asyncio.wait_for(poller.round_completed.wait(), timeout=30)
        assert not task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [a.source for a in await published(redis)] == ["good"]
    assert metric(registry, "newsmon_fetcher_sources", state="active") == 4
    assert metric(registry, "newsmon_fetcher_polls_total", outcome="failed") == 2


class CrashingHttp:
    """Real HTTP, except that a GET of `url` raises an unexpected error (a bug's stand-in)."""

    def __init__(self, inner: HttpClient, url: str) -> None:
        self.inner = inner
        self.url = url
        self.crashes = 0

    async def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> HttpResponse:
        if url == self.url:
            self.crashes += 1
            raise RuntimeError("boom")
        return await self.inner.get(url, headers=headers)


class Counter:
    count = 0

    async def reach(self, count: int) -> None:
        while self.count < count:
            await asyncio.sleep(0.01)


def count_refreshes(poller: Poller) -> Counter:
    """Counts the poller's loop re-reading the schedule from Redis."""
    counter = Counter()
    refresh = poller.refresh

    async def counted() -> None:
        await refresh()
        counter.count += 1

    poller.refresh = counted  # type: ignore[method-assign]
    return counter


@pytest.mark.parametrize("fault", ["crash", "redis"])
async def test_a_poll_that_crashes_is_not_retried_on_the_next_tick(
    redis: aioredis.Redis, server: MisbehavingServer, registry: CollectorRegistry, fault: str
) -> None:
    server.routes["/feed.xml"] = server.feed("a.html")
    src = source(server)
    seen = seen_key("newsmon:fetcher")
    if fault == "redis":
        await redis.set(seen, "not a set")  # every seen-ids command now fails in Redis
    settings = FetcherSettings(
        host_min_interval_seconds=0, tick_seconds=0.02, state_refresh_seconds=0.02
    )
    now = [NOW]
    async with client_for(settings) as real:
        http = CrashingHttp(real, src.url if fault == "crash" else "")
        poller = make_poller(redis, registry, http, settings, sources=(src,), clock=lambda: now[0])
        refreshes = count_refreshes(poller)
        task = asyncio.create_task(poller.run_forever())
        try:
            with capture_logs() as logs:
                await asyncio.wait_for(poller.round_completed.wait(), timeout=10)
                # 25 more ticks, each re-reading the schedule from Redis
                await asyncio.wait_for(refreshes.reach(refreshes.count + 25), timeout=10)
            assert server.requests.count("/feed.xml") + http.crashes == 1
            event = "poll crashed" if fault == "crash" else "poll skipped: Redis unavailable"
            [entry] = [e for e in logs if e["event"] == event]
            assert entry["retry_in_seconds"] >= settings.min_poll_seconds
            assert (await poller.store.load_state("s")).next_poll_at == 0.0  # Redis untouched

            http.url = ""  # the fault is gone; once the backoff has passed, it is polled
            await redis.delete(seen)
            now[0] = datetime.fromtimestamp(NOW.timestamp() + settings.max_poll_seconds, UTC)
            for _ in range(200):
                if await published(redis):
                    break
                await asyncio.sleep(0.02)
            assert [a.url for a in await published(redis)] == [f"{server.base_url}/a.html"]
            assert not task.done()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_no_source_is_polled_more_often_than_the_minimum_interval(
    poller: Poller, server: MisbehavingServer
) -> None:
    shortest = poller._settings.min_poll_seconds
    server.routes["/feed.xml"] = server.feed("a.html")
    await poller.poll(source(server, interval_seconds=2))
    assert (await poller.store.load_state("s")).next_poll_at - NOW.timestamp() >= shortest

    server.routes["/feed.xml"] = lambda h: send(h, 500)
    await poller.poll(source(server, interval_seconds=2))
    assert (await poller.store.load_state("s")).next_poll_at - NOW.timestamp() >= shortest


async def test_a_host_queue_series_lives_only_while_requests_wait(
    redis: aioredis.Redis, server: MisbehavingServer, registry: CollectorRegistry
) -> None:
    def slow_feed(name: str) -> Route:
        def respond(handler: BaseHTTPRequestHandler) -> None:
            time.sleep(0.3)
            server.feed(name)(handler)

        return respond

    server.routes["/one.xml"] = slow_feed("one.html")
    server.routes["/two.xml"] = slow_feed("two.html")
    host = server.base_url.removeprefix("http://")
    settings = FetcherSettings(host_min_interval_seconds=0, host_concurrency=1)
    depths: list[float | None] = []

    async def sample() -> None:
        while True:
            depths.append(
                registry.get_sample_value("newsmon_fetcher_host_queue_depth", {"host": host})
            )
            await asyncio.sleep(0.01)

    async with client_for(settings) as http:
        poller = make_poller(redis, registry, http, settings)
        sampler = asyncio.create_task(sample())
        counts = await asyncio.gather(
            poller.poll(source(server, "/one.xml", name="one")),
            poller.poll(source(server, "/two.xml", name="two")),
        )
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    assert list(counts) == [1, 1]
    assert max(d or 0.0 for d in depths) >= 1  # one feed waited for the other
    series = [s for m in registry.collect() for s in m.samples if "queue_depth" in s.name]
    assert series == []  # none left behind once nothing waits


def sitemap_index(base: str, count: int) -> bytes:
    children = "".join(f"<sitemap><loc>{base}/map-{k}.xml</loc></sitemap>" for k in range(count))
    return (
        f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{children}'
        "</sitemapindex>"
    ).encode()


def urlset(base: str, *names: str) -> bytes:
    urls = "".join(f"<url><loc>{base}/{name}</loc></url>" for name in names)
    return (f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>').encode()


def child(server: MisbehavingServer, name: str) -> Route:
    """A child sitemap listing one page."""
    body = urlset(server.base_url, name)
    return lambda handler: send(handler, 200, body, "application/xml")


async def test_every_child_of_a_sitemap_index_is_read_over_successive_polls(
    redis: aioredis.Redis, server: MisbehavingServer, registry: CollectorRegistry
) -> None:
    conditional: list[str | None] = []

    def index(handler: BaseHTTPRequestHandler) -> None:
        conditional.append(handler.headers.get("If-None-Match"))
        if handler.headers.get("If-None-Match") == '"i1"':
            send(handler, 304, ETag='"i1"')
        else:
            send(handler, 200, sitemap_index(server.base_url, 5), "application/xml", ETag='"i1"')

    server.routes["/index.xml"] = index
    for k in range(5):
        server.routes[f"/map-{k}.xml"] = child(server, f"page-{k}.html")
    server.routes["/map-3.xml"] = lambda h: send(h, 503)  # down for one poll
    settings = FetcherSettings(host_min_interval_seconds=0, max_child_sitemaps=2)
    src = source(server, "/index.xml", kind="sitemap")
    async with client_for(settings) as http:
        poller = make_poller(redis, registry, http, settings)
        assert await poller.poll(src) == 2  # children 0, 1
        assert (await poller.store.load_state("s")).etag is None  # not read in full
        with capture_logs() as logs:
            assert await poller.poll(src) == 1  # child 2; child 3 fails and stops the batch
        assert any(e["event"] == "child sitemap failed, retrying next poll" for e in logs)
        assert (await poller.store.load_state("s")).sitemap_cursor == 3
        server.routes["/map-3.xml"] = child(server, "page-3.html")
        assert await poller.poll(src) == 2  # children 3, 4: the whole index is read
        state = await poller.store.load_state("s")
        assert state.etag == '"i1"' and state.sitemap_cursor == 0
        server.requests.clear()
        assert await poller.poll(src) == 0
    assert server.requests == ["/index.xml"]  # 304: no child sitemap read again
    assert conditional == [None, None, None, '"i1"']
    assert sorted(a.url.rsplit("/", 1)[1] for a in await published(redis)) == [
        f"page-{k}.html" for k in range(5)
    ]


async def test_a_moved_source_does_not_send_the_old_validators_to_its_new_address(
    poller: Poller, server: MisbehavingServer
) -> None:
    received: list[str | None] = []

    def new_feed(handler: BaseHTTPRequestHandler) -> None:
        since = handler.headers.get("If-Modified-Since")
        received.append(since)
        if since is not None:  # a server comparing dates: "not modified since then"
            send(handler, 304)
        else:
            server.feed("a.html", Last_Modified="Thu, 09 Oct 2025 10:00:00 GMT")(handler)

    server.routes["/old.xml"] = lambda h: send(h, 308, Location="/new.xml")
    server.routes["/new.xml"] = new_feed
    await poller.store.update_state(
        "s", etag='"old"', last_modified="Fri, 01 Jan 2100 00:00:00 GMT"
    )
    assert await poller.poll(source(server, "/old.xml")) == 1
    state = await poller.store.load_state("s")
    assert state.url == f"{server.base_url}/new.xml" and state.etag is None
    assert state.last_modified == "Thu, 09 Oct 2025 10:00:00 GMT"
    assert received == ["Fri, 01 Jan 2100 00:00:00 GMT", None]  # refetched without them


async def requested(server: MisbehavingServer, path: str) -> None:
    while path not in server.requests:
        await asyncio.sleep(0.01)


async def test_a_poll_whose_lease_another_replica_took_stops_and_leaves_it_to_that_replica(
    redis: aioredis.Redis, server: MisbehavingServer, registry: CollectorRegistry
) -> None:
    release = threading.Event()

    def held_feed(handler: BaseHTTPRequestHandler) -> None:
        release.wait(timeout=10)
        server.feed("a.html")(handler)

    server.routes["/feed.xml"] = held_feed
    settings = FetcherSettings(host_min_interval_seconds=0, poll_lease_seconds=0.3)
    src = source(server)
    lock = fetcher_key("newsmon:fetcher", "lock", "s")
    try:
        async with local_http(settings, timeout_seconds=10) as http:
            poller = make_poller(redis, registry, http, settings, sources=(src,))
            poll = asyncio.create_task(poller._poll_under_lease(src))
            await asyncio.wait_for(requested(server, "/feed.xml"), timeout=10)
            await redis.set(lock, "another replica")  # as if the lease had run out and been taken
            with pytest.raises(LeaseLostError, match="taken"):
                await asyncio.wait_for(poll, timeout=10)
    finally:
        release.set()
    assert await redis.get(lock) == b"another replica"
    assert await published(redis) == []
    assert (await poller.store.load_state("s")).last_poll_at is None
