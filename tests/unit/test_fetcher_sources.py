"""The fetcher's pure core beyond RSS: JSON Feed, sitemaps, XML safety, address policy,
cache and retry hints, robots.txt and backoff."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import NewsmonConfig, SourceConfig
from contracts.config import allow_list_entry
from services.common.outbound import is_allowed, is_public_address
from services.fetcher.core import (
    FeedError,
    SourceState,
    SourceStatus,
    Validators,
    after_failure,
    after_success,
    child_sitemap_batch,
    freshness_seconds,
    gunzip_capped,
    host_of,
    origin_of,
    parse_feed,
    parse_sitemap,
    refuse_xml_entities,
    retry_after_seconds,
    robots_allows,
)
from services.fetcher.store import describe_source

NOW = datetime(2025, 10, 9, 12, 0, tzinfo=UTC)
BASE = "https://news.example.com/sitemap.xml"

NEWS_SITEMAP = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
  <url><loc>https://news.example.com/old</loc><lastmod>2025-01-01</lastmod></url>
  <url>
    <loc>https://news.example.com/new?utm_source=gn</loc>
    <news:news>
      <news:publication><news:name>Ex</news:name><news:language>fr</news:language></news:publication>
      <news:publication_date>2025-10-09T10:00:00+02:00</news:publication_date>
      <news:title>Une nouvelle</news:title>
    </news:news>
  </url>
  <url><loc>/relative-undated</loc></url>
  <url><loc>https://news.example.com/old</loc></url>
</urlset>"""


def test_a_google_news_sitemap_lists_pages_newest_first_with_title_date_and_language() -> None:
    sitemap = parse_sitemap(NEWS_SITEMAP, base_url=BASE)
    assert [i.url for i in sitemap.items] == [
        "https://news.example.com/new",
        "https://news.example.com/old",
        "https://news.example.com/relative-undated",
    ]
    newest = sitemap.items[0]
    assert (newest.title, newest.lang) == ("Une nouvelle", "fr")
    assert newest.published == datetime(2025, 10, 9, 8, 0, tzinfo=UTC)
    assert sitemap.sitemaps == ()


def test_a_gzipped_sitemap_index_lists_its_child_sitemaps() -> None:
    index = gzip.compress(
        b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<sitemap><loc>/s1.xml</loc></sitemap><sitemap><loc>/s2.xml.gz</loc></sitemap>"
        b"</sitemapindex>"
    )
    sitemap = parse_sitemap(index, base_url=BASE)
    assert sitemap.sitemaps == (
        "https://news.example.com/s1.xml",
        "https://news.example.com/s2.xml.gz",
    )


@pytest.mark.parametrize(
    "body",
    [b"<html><body>not a sitemap</body></html>", b"<urlset><url>", b"{}"],
)
def test_what_is_not_a_sitemap_is_a_feed_error(body: bytes) -> None:
    with pytest.raises(FeedError):
        parse_sitemap(body, base_url=BASE)


def test_a_gzip_bomb_is_refused_past_the_cap() -> None:
    with pytest.raises(FeedError, match="larger than"):
        gunzip_capped(gzip.compress(b"0" * 2_000_000), max_bytes=1_000_000)


BOMB = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><rss version="2.0"><channel>
<title>&b;</title><item><link>https://x.org/1</link></item></channel></rss>"""


def test_xml_declaring_entities_is_refused_in_feeds_and_sitemaps() -> None:
    with pytest.raises(FeedError, match="entity"):
        parse_feed(BOMB, base_url=BASE)
    with pytest.raises(FeedError, match="entity"):
        parse_sitemap(BOMB.replace(b"rss", b"urlset"), base_url=BASE)
    with pytest.raises(FeedError):
        refuse_xml_entities(
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
        )


def test_malformed_xml_without_entities_is_left_to_the_lenient_parser() -> None:
    refuse_xml_entities(b"<rss><channel><title>a & b</title>")


def test_a_json_feed_is_read() -> None:
    body = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "JSON news",
            "language": "de",
            "items": [
                {
                    "id": "1",
                    "url": "/a?utm_medium=x",
                    "title": " A ",
                    "date_published": "2025-10-01T08:00:00Z",
                },
                {"id": "2", "external_url": "https://other.org/b"},
                {"id": "3", "content_text": "no link"},
                {"id": "4", "url": "/a"},
            ],
        }
    ).encode()
    feed = parse_feed(body, base_url="https://j.example/feed.json")
    assert feed.title == "JSON news"
    assert [(i.url, i.title, i.lang) for i in feed.items] == [
        ("https://j.example/a", "A", "de"),
        ("https://other.org/b", None, "de"),
    ]
    assert feed.items[0].published == datetime(2025, 10, 1, 8, 0, tzinfo=UTC)


def test_json_that_is_not_a_json_feed_is_a_feed_error() -> None:
    with pytest.raises(FeedError, match="JSON feed"):
        parse_feed(b'{"hello": "world"}', base_url=BASE)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700::6810:84e5", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.251", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("not an address", False),
    ],
)
def test_only_globally_routable_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert is_public_address(address) is public


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"cache-control": "public, max-age=600"}, 600.0),
        ({"cache-control": "no-cache, max-age=600"}, None),
        ({"expires": "Thu, 09 Oct 2025 13:00:00 GMT"}, 3600.0),
        (
            {"expires": "Thu, 09 Oct 2025 13:00:00 GMT", "date": "Thu, 09 Oct 2025 12:30:00 GMT"},
            1800.0,
        ),
        ({"expires": "0"}, None),
        ({"expires": "Thu, 09 Oct 2025 11:00:00 GMT"}, None),
        ({}, None),
    ],
)
def test_freshness_comes_from_max_age_then_expires(
    headers: dict[str, str], seconds: float | None
) -> None:
    assert freshness_seconds(headers, NOW) == seconds


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("120", NOW) == 120.0
    assert retry_after_seconds("Thu, 09 Oct 2025 12:05:00 GMT", NOW) == 300.0
    assert retry_after_seconds("Thu, 09 Oct 2025 11:00:00 GMT", NOW) == 0.0
    assert retry_after_seconds("soon", NOW) is None
    assert retry_after_seconds(None, NOW) is None


ROBOTS = "User-agent: *\nDisallow: /private/\n\nUser-agent: newsmon\nDisallow: /no-bots/\n"


@pytest.mark.parametrize(
    ("status", "body", "path", "allowed"),
    [
        (200, ROBOTS, "/news/1", True),
        (200, ROBOTS, "/no-bots/1", False),
        (200, "User-agent: *\nDisallow: /\n", "/news/1", False),
        (404, "", "/anything", True),
        (403, "", "/anything", True),
        (500, "", "/anything", False),
        (503, "", "/anything", False),
        (None, "", "/anything", False),
    ],
)
def test_robots_txt_4xx_allows_5xx_disallows_and_2xx_is_obeyed(
    status: int | None, body: str, path: str, allowed: bool
) -> None:
    url = "https://news.example.com" + path
    assert robots_allows(status, body, user_agent="newsmon/0.1 (+x)", url=url) is allowed


def test_origin_and_host_are_the_politeness_units() -> None:
    assert origin_of("HTTPS://News.Example.com:443/a?b#c") == "https://news.example.com"
    assert host_of("http://user@127.0.0.1:8080/x") == "127.0.0.1:8080"


def test_a_source_state_survives_its_redis_hash_and_reads_as_the_api_shows_it() -> None:
    state = SourceState(
        etag='W/"x"',
        next_poll_at=NOW.timestamp(),
        failures=2,
        status="broken",
        url="https://moved.example/feed",
        last_poll_at=NOW.timestamp() - 60,
        last_status="http_500",
        sitemap_cursor=5,
    )
    raw = {k.encode(): str(v).encode() for k, v in state.to_fields().items()}
    assert SourceState.from_fields(raw) == state
    assert SourceState.from_fields({}) == SourceState()
    shown = describe_source(
        SourceConfig(name="n", url="https://old.example/feed"), state, origin="config"
    )
    assert shown["state"] == "broken" and shown["error_count"] == 2
    assert shown["current_url"] == "https://moved.example/feed"
    assert shown["next_poll_at"] == NOW.isoformat()


@pytest.mark.parametrize(
    ("status", "due"), [("active", True), ("broken", True), ("paused", False), ("disabled", False)]
)
def test_only_active_and_broken_sources_are_polled(status: SourceStatus, due: bool) -> None:
    assert SourceState(status=status).is_due(NOW.timestamp()) is due


def test_validators_are_sent_unless_a_sitemap_index_is_part_read() -> None:
    state = SourceState(etag='"e"', last_modified="Thu, 09 Oct 2025 10:00:00 GMT")
    assert state.conditional_headers() == {
        "If-None-Match": '"e"',
        "If-Modified-Since": "Thu, 09 Oct 2025 10:00:00 GMT",
    }
    assert SourceState(etag='"e"', sitemap_cursor=3).conditional_headers() == {}


@pytest.mark.parametrize(
    ("count", "cursor", "limit", "batch"),
    [
        (7, 0, 5, [0, 1, 2, 3, 4]),
        (7, 5, 5, [5, 6]),  # the rest of the pass
        (7, 7, 5, [0, 1, 2, 3, 4]),  # past the end: a new pass
        (3, 5, 5, [0, 1, 2]),  # the index shrank
        (1, 0, 5, [0]),
        (0, 0, 5, []),
    ],
)
def test_child_sitemaps_are_read_in_batches_from_the_cursor(
    count: int, cursor: int, limit: int, batch: list[int]
) -> None:
    assert list(child_sitemap_batch(count, cursor, limit)) == batch


@given(st.integers(0, 200), st.integers(1, 20))
def test_successive_batches_read_every_child_once_per_pass(count: int, limit: int) -> None:
    read: list[int] = []
    cursor = 0
    while True:
        batch = child_sitemap_batch(count, cursor, limit)
        read.extend(batch)
        cursor = batch.stop
        if cursor >= count:
            break
    assert read == list(range(count))


@pytest.mark.parametrize(
    ("entry", "parsed"),
    [
        ("Example.org:8080", ("example.org", "8080")),
        ("127.0.0.1:*", ("127.0.0.1", "*")),
        ("127.0.0.1", ("127.0.0.1", "")),
        ("[::1]:8080", ("::1", "8080")),
        ("::1", ("::1", "")),
    ],
)
def test_allow_list_entries_name_a_host_and_its_port(entry: str, parsed: tuple[str, str]) -> None:
    assert allow_list_entry(entry) == parsed


def test_a_bare_host_opens_its_web_ports_only_and_a_bad_port_is_refused() -> None:
    entries = [allow_list_entry("127.0.0.1"), allow_list_entry("10.0.0.5:8080")]
    assert is_allowed(entries, "127.0.0.1", 443) and is_allowed(entries, "127.0.0.1", 80)
    assert not is_allowed(entries, "127.0.0.1", 6379)
    assert is_allowed(entries, "10.0.0.5", 8080) and not is_allowed(entries, "10.0.0.5", 8081)
    for bad in ("host:port", "host:0", "host:70000", ":80"):
        with pytest.raises(ValueError, match="host:port"):
            NewsmonConfig(allowed_private_hosts=(bad,))


FAILURE = {"reason": "http_503", "error": "HTTP 503", "broken_retry_seconds": 21_600.0}


def test_failures_back_off_then_break_the_source_and_a_success_recovers_it() -> None:
    state = SourceState(etag='"v1"', status="active")
    events = []
    for _ in range(3):
        outcome = after_failure(
            state, now=1000.0, backoff_seconds=120.0, gone=False, broken_after_failures=3, **FAILURE
        )
        state = outcome.state
        events.append(outcome.event)
    assert events == [None, None, "broken"] and state.status == "broken"
    assert state.next_poll_at == 1000.0 + 21_600.0  # a broken source waits the long retry
    again = after_failure(
        state, now=1000.0, backoff_seconds=120.0, gone=False, broken_after_failures=3, **FAILURE
    )
    assert again.event is None  # broken once, not again on every failure

    recovered = after_success(
        state, now=2000.0, next_poll_at=2300.0, last_status="ok", validators=None
    )
    assert recovered.event == "recovered"
    assert (recovered.state.status, recovered.state.failures) == ("active", 0)
    assert recovered.state.etag == '"v1"'  # nothing new to check against: kept


def test_a_gone_feed_is_disabled_and_new_validators_replace_old_ones() -> None:
    gone = after_failure(
        SourceState(), now=0.0, backoff_seconds=60.0, gone=True, broken_after_failures=8, **FAILURE
    )
    assert (gone.event, gone.state.status) == ("disabled", "disabled")
    fresh = after_success(
        SourceState(etag='"v1"', body_digest="old"),
        now=0.0,
        next_poll_at=300.0,
        last_status="ok",
        validators=Validators('"v2"', None, "new"),
    )
    assert (fresh.state.etag, fresh.state.body_digest, fresh.event) == ('"v2"', "new", None)
