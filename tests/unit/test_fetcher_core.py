"""The fetcher's pure core: feed parsing, URL identity and poll scheduling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.fetcher.core import (
    FeedError,
    Lease,
    ParsedFeed,
    article_id,
    canonical_url,
    lease_ms,
    next_poll_at,
    parse_feed,
    pushed_page_url,
)

BASE = "https://news.example.com/feeds/world.xml"

RSS2 = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel>
  <title>World &amp; More</title>
  <ttl>30</ttl>
  <item>
    <title>First story</title>
    <link>/2024/first?utm_source=rss&amp;id=7</link>
    <guid isPermaLink="false">story-1</guid>
    <pubDate>Mon, 06 May 2024 16:45:00 +0200</pubDate>
  </item>
  <item><title>No link, skipped</title><description>text</description></item>
  <item><title>Same page again</title><link>https://NEWS.example.com:443/2024/first?id=7#top</link></item>
  <item><title>  Second
     story </title><link>https://other.example.org/b</link></item>
  <item><title>Mail</title><link>mailto:desk@example.com</link></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Atom news</title>
  <entry>
    <title>Atom entry</title>
    <id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id>
    <link rel="alternate" href="articles/atom-1.html"/>
    <updated>2024-05-06T10:00:00Z</updated>
  </entry>
</feed>"""

RSS1 = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">
  <channel rdf:about="https://example.net/"><title>RDF news</title></channel>
  <item rdf:about="https://example.net/rdf-1"><title>RDF item</title>
    <link>https://example.net/rdf-1</link></item>
</rdf:RDF>"""

RSS091 = b"""<rss version="0.91"><channel><title>Old</title>
  <item><title>Old item</title><link>http://example.net/old</link></item>
</channel></rss>"""


def test_rss2_items_are_canonical_absolute_deduplicated_and_in_feed_order() -> None:
    feed = parse_feed(RSS2, base_url=BASE)
    assert feed.title == "World & More"
    assert [item.url for item in feed.items] == [
        "https://news.example.com/2024/first?id=7",
        "https://other.example.org/b",
    ]
    assert feed.items[1].title == "Second story"


def test_rss2_item_keeps_guid_and_publication_time_in_utc() -> None:
    first = parse_feed(RSS2, base_url=BASE).items[0]
    assert first.guid == "story-1"
    assert first.published == datetime(2024, 5, 6, 14, 45, tzinfo=UTC)


def test_rss_ttl_minutes_become_seconds() -> None:
    assert parse_feed(RSS2, base_url=BASE).ttl_seconds == 1800.0


@pytest.mark.parametrize("ttl", ["soon", "-5", "0", ""])
def test_unreadable_or_non_positive_ttl_is_ignored(ttl: str) -> None:
    body = RSS091.replace(b"<title>Old</title>", f"<title>Old</title><ttl>{ttl}</ttl>".encode())
    assert parse_feed(body, base_url=BASE).ttl_seconds is None


def test_atom_relative_link_resolves_against_base_url() -> None:
    feed = parse_feed(ATOM, base_url=BASE)
    assert feed.title == "Atom news"
    (entry,) = feed.items
    assert entry.url == "https://news.example.com/feeds/articles/atom-1.html"
    assert entry.guid == "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a"
    assert entry.published == datetime(2024, 5, 6, 10, 0, tzinfo=UTC)


def test_rss1_and_rss091_are_read() -> None:
    assert [i.url for i in parse_feed(RSS1, base_url=BASE).items] == ["https://example.net/rdf-1"]
    assert [i.url for i in parse_feed(RSS091, base_url=BASE).items] == ["http://example.net/old"]


def test_empty_channel_is_a_feed_without_items() -> None:
    feed = parse_feed(
        b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>', base_url=BASE
    )
    assert feed == ParsedFeed(title="Quiet", items=(), ttl_seconds=None)


def test_truncated_feed_keeps_the_items_read_before_the_break() -> None:
    truncated = RSS091[: RSS091.index(b"</item>") + len(b"</item>")]
    assert [i.title for i in parse_feed(truncated, base_url=BASE).items] == ["Old item"]


@pytest.mark.parametrize(
    "body",
    [b"", b"hello world", b"<html><body><p>A page, not a feed</p></body></html>", b"\x00\xff\xfe"],
)
def test_a_body_that_is_not_a_feed_raises_feed_error_with_a_reason(body: bytes) -> None:
    with pytest.raises(FeedError, match=r"not a feed: .+"):
        parse_feed(body, base_url=BASE)


def test_body_naming_a_local_file_is_not_read_as_that_file(tmp_path: Path) -> None:
    local_feed = tmp_path / "feed.xml"
    local_feed.write_bytes(RSS2)
    with pytest.raises(FeedError):
        parse_feed(str(local_feed).encode(), base_url=BASE)


@given(st.binary(max_size=2000))
def test_parse_feed_on_arbitrary_bytes_returns_a_feed_or_raises_feed_error(body: bytes) -> None:
    try:
        feed = parse_feed(body, base_url=BASE)
    except FeedError:
        return
    assert all(item.url.startswith(("http://", "https://")) for item in feed.items)


@given(
    st.sampled_from([RSS2, ATOM, RSS1, RSS091]),
    st.integers(min_value=0, max_value=len(RSS2)),
    st.integers(min_value=0, max_value=40),
    st.binary(max_size=20),
)
def test_damaged_feeds_return_a_feed_or_raise_feed_error(
    feed: bytes, at: int, removed: int, inserted: bytes
) -> None:
    damaged = feed[:at] + inserted + feed[at + removed :]
    try:
        parsed = parse_feed(damaged, base_url=BASE)
    except FeedError:
        return
    assert all(canonical_url(item.url) == item.url for item in parsed.items)


@given(st.text(max_size=300))
def test_arbitrary_link_text_never_breaks_parsing(link: str) -> None:
    escaped = link.replace("&", "&amp;").replace("<", "&lt;").encode("utf-8", "replace")
    body = b'<rss version="2.0"><channel><item><link>' + escaped + b"</link></item></channel></rss>"
    try:
        feed = parse_feed(body, base_url=BASE)
    except FeedError:
        return
    assert all(canonical_url(item.url) == item.url for item in feed.items)


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTPS://News.Example.COM/World/Story", "https://news.example.com/World/Story"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        ("https://example.com/a#comments", "https://example.com/a"),
        ("https://example.com", "https://example.com/"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("https://example.com/a?b=2&a=1", "https://example.com/a?a=1&b=2"),
        ("https://example.com/a?tag=x&tag=a", "https://example.com/a?tag=x&tag=a"),
        ("https://[2001:DB8::1]:443/a", "https://[2001:db8::1]/a"),
        ("https://example.com/a%2Fb?q=caf%C3%A9", "https://example.com/a%2Fb?q=caf%C3%A9"),
        (
            "https://example.com/été 2024?q=café",
            "https://example.com/%C3%A9t%C3%A9%202024?q=caf%C3%A9",
        ),
    ],
)
def test_canonical_url_normalises_what_does_not_change_the_page(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


@pytest.mark.parametrize(
    "tracking",
    [
        "utm_source=x",
        "UTM_Campaign=y",
        "fbclid=abc",
        "gclid=1",
        "mc_cid=2",
        "mc_eid=3",
        "ref=home",
        "utm_medium",
    ],
)
def test_canonical_url_drops_tracking_parameters(tracking: str) -> None:
    assert canonical_url(f"https://example.com/a?id=1&{tracking}") == "https://example.com/a?id=1"


def test_canonical_url_drops_the_query_mark_when_only_tracking_remains() -> None:
    assert canonical_url("https://example.com/a?utm_source=x&fbclid=y") == "https://example.com/a"


@pytest.mark.parametrize("url", ["https://example.com:port/a", "https://[::1/a", "http://h:99999/"])
def test_canonical_url_rejects_unparseable_urls(url: str) -> None:
    with pytest.raises(ValueError):
        canonical_url(url)


_SAFE_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
_URLS = st.builds(
    lambda scheme, host, port, path, query, fragment: (
        f"{scheme}://{host}{port}/{path}{query}{fragment}"
    ),
    st.sampled_from(["http", "HTTPS", "https", "Http"]),
    st.from_regex(r"[A-Za-z0-9-]{1,12}(\.[A-Za-z]{2,6}){1,2}", fullmatch=True),
    st.sampled_from(["", ":80", ":443", ":8080", ":0080"]),
    _SAFE_TEXT,
    st.lists(
        st.tuples(st.sampled_from(["utm_source", "id", "Ref", "a", "b", "fbclid", ""]), _SAFE_TEXT),
        max_size=5,
    ).map(lambda pairs: "?" + "&".join(f"{k}={v}" for k, v in pairs) if pairs else ""),
    st.one_of(st.just(""), _SAFE_TEXT.map(lambda text: "#" + text)),
)


@given(_URLS)
def test_canonical_url_is_idempotent(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once


@given(st.text(max_size=120))
def test_canonical_url_on_any_text_is_idempotent_or_refuses(url: str) -> None:
    try:
        once = canonical_url(url)
    except ValueError:
        return
    assert canonical_url(once) == once


def test_article_id_is_short_stable_and_shared_by_spellings_of_one_page() -> None:
    ident = article_id("https://example.com/a?b=1&utm_source=rss")
    assert ident == article_id("HTTPS://EXAMPLE.com:443/a?b=1#x")
    assert ident.startswith("a-")
    assert len(ident) == 18 and set(ident[2:]) <= set("0123456789abcdef")
    assert ident != article_id("https://example.com/A?b=1")


NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)


def test_next_poll_is_one_interval_later() -> None:
    assert next_poll_at(NOW, interval_seconds=300) == NOW + timedelta(seconds=300)


def test_a_longer_feed_ttl_wins_and_a_shorter_one_is_ignored() -> None:
    assert next_poll_at(NOW, interval_seconds=300, ttl_seconds=1800) == NOW + timedelta(
        seconds=1800
    )
    assert next_poll_at(NOW, interval_seconds=300, ttl_seconds=60) == NOW + timedelta(seconds=300)


def test_too_short_an_interval_is_raised_to_the_minimum() -> None:
    assert next_poll_at(NOW, interval_seconds=5, min_seconds=60) == NOW + timedelta(seconds=60)


def test_jitter_stretches_the_delay_deterministically() -> None:
    got = next_poll_at(NOW, interval_seconds=300, jitter_ratio=0.1)
    assert got == NOW + timedelta(seconds=330)


def test_next_poll_keeps_the_callers_timezone() -> None:
    paris = NOW.astimezone(timezone(timedelta(hours=2)))
    assert next_poll_at(paris, interval_seconds=300) == NOW + timedelta(seconds=300)


@pytest.mark.parametrize(
    ("interval", "shortest", "longest"), [(0, 60, 86400), (-60, 60, 86400), (60, 10, 5)]
)
def test_next_poll_rejects_nonsense(interval: float, shortest: float, longest: float) -> None:
    with pytest.raises(ValueError):
        next_poll_at(NOW, interval_seconds=interval, min_seconds=shortest, max_seconds=longest)


def test_next_poll_refuses_a_naive_clock() -> None:
    with pytest.raises(ValueError, match="timezone"):
        next_poll_at(datetime(2024, 5, 6, 12, 0), interval_seconds=300)


def test_a_pushed_page_url_is_canonical() -> None:
    assert (
        pushed_page_url(" HTTPS://Example.org:443/a?utm_source=x#top ") == "https://example.org/a"
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://example.org:99999/a", "invalid port"),
        ("http://[::1/a", "Invalid IPv6"),
        ("javascript:alert(1)", "not javascript:"),
        ("ftp://example.org/a", "not ftp:"),
        ("file:///etc/passwd", "not file:"),
        ("example.org/a", "not a relative URL"),
        ("https:///a", "no host"),
    ],
)
def test_a_pushed_page_url_must_be_absolute_http_with_a_host(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        pushed_page_url(url)


def test_a_lease_is_held_until_its_length_after_the_request_that_took_it() -> None:
    lease = Lease(seconds=5.0, since=100.0)
    assert lease.held(100.0)
    assert lease.held(104.99)
    assert not lease.held(105.0)


def test_a_lease_is_renewed_a_third_into_it_and_counts_from_the_renewal_sent() -> None:
    lease = Lease(seconds=6.0, since=100.0)
    assert lease.renew_at(100.5, failed=False) == 102.0
    renewed = lease.renewed(102.1)
    assert renewed == Lease(seconds=6.0, since=102.1)
    assert renewed.renew_at(102.2, failed=False) == pytest.approx(104.1)
    assert renewed.expires_at == pytest.approx(108.1)


def test_a_failed_renewal_is_tried_again_soon_but_never_past_the_lease() -> None:
    lease = Lease(seconds=5.0, since=100.0)
    assert lease.renew_at(102.0, failed=True) == pytest.approx(102.5)  # ten tries in 5 s
    assert lease.renew_at(104.9, failed=True) == 105.0


@given(
    seconds=st.floats(min_value=0.001, max_value=3600),
    since=st.floats(min_value=0, max_value=1e6),
    after=st.floats(min_value=0, max_value=1),
)
def test_a_lease_is_always_renewed_while_it_is_held(
    seconds: float, since: float, after: float
) -> None:
    lease = Lease(seconds=seconds, since=since)
    now = since + after * seconds
    assert lease.renew_at(now, failed=False) < lease.expires_at
    assert now <= lease.renew_at(now, failed=True) <= lease.expires_at


@pytest.mark.parametrize(("seconds", "ms"), [(5.0, 5000), (0.25, 250), (0.0001, 1)])
def test_a_lease_length_goes_to_redis_in_whole_milliseconds(seconds: float, ms: int) -> None:
    assert lease_ms(seconds) == ms


def test_a_feed_declaring_an_unknown_encoding_is_refused_as_a_feed_error() -> None:
    broken = RSS2.replace(b'encoding="utf-8"', b'encoding="u-tf-8"')
    try:
        parse_feed(broken, base_url=BASE)
    except FeedError:
        return
