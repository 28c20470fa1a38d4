"""The fetcher's pure core: read feeds, name articles, decide when to poll again.

Nothing here touches the network, the clock or Redis: callers pass bytes and
times in and get data back, so every decision is unit-testable.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final, Literal
from urllib.parse import quote, unquote_plus, urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser
from xml.etree.ElementTree import Element, ParseError
from xml.sax import ContentHandler, SAXException

import feedparser
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeElementTree
from defusedxml import sax as safe_sax

TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "msclkid",
        "yclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "ref",
        "ref_src",
        "ref_url",
        "referrer",
        "_ga",
        "_gl",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "wt_mc",
        "cmpid",
        "ocid",
        "ncid",
        "sr_share",
        "s_cid",
        "spm",
        "share",
        "smid",
        "cmp",
    }
)
"""Query parameters that identify a campaign or a click, never the page (compared lower-case)."""

TRACKING_PREFIXES: tuple[str, ...] = ("utm_", "at_", "pk_", "hsa_")
"""Prefixes of tracking query parameters (Google Analytics, AT Internet, Matomo, HubSpot)."""

DEFAULT_PORTS: dict[str, str] = {"http": "80", "https": "443"}

_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_PAIR_SAFE = "/%:@!$'()*+,;=?-._~"
"""Characters left as they are; anything else (spaces, controls, non-ASCII) is %-encoded."""


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One entry of a feed, reduced to what the fetcher needs to fetch it once."""

    url: str
    title: str | None
    published: datetime | None
    guid: str | None
    lang: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A feed's title, its linked items in feed order, and its RSS <ttl> in seconds."""

    title: str | None
    items: tuple[FeedItem, ...]
    ttl_seconds: float | None


class FeedError(ValueError):
    """The body is not a feed, or is broken beyond recovery; retrying will not help."""


def parse_feed(body: bytes, *, base_url: str) -> ParsedFeed:
    """Read an RSS 0.9x/1.0/2.0 or Atom document; links are resolved against `base_url`.

    Items without a usable link are skipped, and an item whose canonical URL was
    already listed earlier in the same feed is dropped. Raises `FeedError` when
    feedparser finds neither a feed format nor any entry, or when the document
    declares XML entities (the billion-laughs bomb needs them; no feed does).
    A JSON Feed (version 1.x) is read too.
    """
    if body.lstrip()[:1] == b"{":
        return parse_json_feed(body, base_url=base_url)
    refuse_xml_entities(body)
    try:  # a BytesIO, never the bytes: feedparser would try to open bytes as a file path
        parsed: Any = feedparser.parse(
            io.BytesIO(body), response_headers={"content-location": base_url}
        )
    except (ValueError, LookupError) as exc:  # an encoding it cannot decode, a NUL in it...
        raise FeedError(f"not a feed: {type(exc).__name__}: {exc}") from exc
    entries: list[Any] = list(parsed.get("entries") or [])
    if not parsed.get("version") and not entries:
        raise FeedError(f"not a feed: {_bozo_reason(parsed)}")
    feed: Any = parsed.get("feed") or {}
    items: list[FeedItem] = []
    listed: set[str] = set()
    for entry in entries:
        item = _feed_item(entry, base_url=base_url)
        if item is None or item.url in listed:
            continue
        listed.add(item.url)
        items.append(item)
    return ParsedFeed(
        title=_clean_text(feed.get("title")),
        items=tuple(items),
        ttl_seconds=_ttl_seconds(feed.get("ttl")),
    )


def _bozo_reason(parsed: Any) -> str:
    if not parsed.get("bozo"):
        return "no RSS or Atom element found" if parsed.get("feed") else "empty document"
    exception = parsed.get("bozo_exception")
    message = str(exception).strip() if exception is not None else ""
    return message or type(exception).__name__


def _feed_item(entry: Any, *, base_url: str) -> FeedItem | None:
    url = _safe_item_url(entry.get("link") or _first_alternate_link(entry), base_url)
    if url is None:
        return None
    return FeedItem(
        url=url,
        title=_clean_text(entry.get("title")),
        published=_utc_datetime(_entry_date(entry)),
        guid=_clean_text(entry.get("id")),
    )


def _entry_date(entry: Any) -> object:
    """Publication date, else last update; read as a plain dict so that feedparser's
    deprecated updated->published alias neither warns nor answers."""
    return dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed")


def _first_alternate_link(entry: Any) -> str | None:
    for link in entry.get("links") or []:
        href = link.get("href")
        if isinstance(href, str) and link.get("rel", "alternate") == "alternate":
            return href
    return None


def _clean_text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    collapsed = " ".join(value.split())
    return collapsed or None


def _utc_datetime(value: object) -> datetime | None:
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime(*value[:6], tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def _ttl_seconds(value: object) -> float | None:
    """RSS <ttl> is in minutes; anything unreadable or not positive means no ttl."""
    if not isinstance(value, str):
        return None
    try:
        minutes = float(value.strip())
    except ValueError:
        return None
    if not minutes > 0 or minutes == float("inf"):
        return None
    return minutes * 60.0


def canonical_url(url: str) -> str:
    """One spelling per page, so the same article listed twice gets one id.

    Lower-cases scheme and host, drops the default port, the fragment and
    tracking parameters, sorts the remaining query parameters by name (keeping
    the order of repeated names), keeps the path's case and existing %-escapes,
    and %-encodes what a browser would (spaces, controls, non-ASCII).
    Raises `ValueError` for a URL that cannot be parsed (bad port, bad IPv6 host).
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    netloc = _canonical_netloc(parts.netloc, scheme)
    path = quote(parts.path, safe=_PATH_SAFE)
    if not path and netloc and scheme in DEFAULT_PORTS:
        path = "/"
    return urlunsplit((scheme, netloc, path, _canonical_query(parts.query), ""))


def _canonical_netloc(netloc: str, scheme: str) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    if hostport.startswith("["):
        closing = hostport.find("]")
        if closing < 0:
            raise ValueError(f"invalid IPv6 host in {netloc!r}")
        host, port = hostport[: closing + 1], hostport[closing + 1 :].removeprefix(":")
    else:
        host, _, port = hostport.partition(":")
    if port and not (port.isascii() and port.isdigit() and int(port) <= 65535):
        raise ValueError(f"invalid port in {netloc!r}")
    port = str(int(port)) if port else ""
    host = host.lower()
    if port and port != DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return f"{userinfo}{at}{host}"


def _canonical_query(query: str) -> str:
    kept = [
        quote(pair, safe=_QUERY_PAIR_SAFE)
        for pair in query.split("&")
        if pair and not _is_tracking(pair)
    ]
    return "&".join(sorted(kept, key=lambda pair: pair.partition("=")[0]))


def _is_tracking(pair: str) -> bool:
    name = unquote_plus(pair.partition("=")[0]).strip().lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def pushed_page_url(url: str) -> str:
    """The canonical URL of a page pushed from outside (POST /ingest).

    Raises `ValueError` saying why unless it is an absolute http(s) URL with a host
    and a valid port: a pushed page is published as that URL, so nothing else is taken.
    """
    try:
        canonical = canonical_url(url)
    except ValueError as exc:
        raise ValueError(f"invalid URL {url!r}: {exc}") from exc
    parts = urlsplit(canonical)
    if parts.scheme not in DEFAULT_PORTS:
        scheme = f"{parts.scheme}:" if parts.scheme else "a relative URL"
        raise ValueError(f"only http and https URLs are accepted, not {scheme}")
    if not parts.hostname:
        raise ValueError(f"invalid URL {url!r}: no host")
    return canonical


def article_id(url: str) -> str:
    """Stable short id of a page: "a-" and 16 hex digits of the SHA-256 of its canonical URL."""
    digest = hashlib.sha256(canonical_url(url).encode("utf-8", "surrogatepass")).hexdigest()
    return "a-" + digest[:16]


def next_poll_at(
    now: datetime,
    *,
    interval_seconds: float,
    ttl_seconds: float | None = None,
    min_seconds: float = 60,
    max_seconds: float = 86400,
    jitter_ratio: float = 0.0,
) -> datetime:
    """When to poll a feed next.

    The delay is the configured interval, or the feed's own ttl (how long it says
    it stays fresh: RSS <ttl>, Cache-Control max-age, Expires) when that is
    longer, stretched by `jitter_ratio` (e.g. a caller's random value in
    [-0.1, 0.1]) and bounded to [min_seconds, max_seconds], whatever the
    interval. All durations are seconds; `now` must be tz-aware. (A failed poll
    is scheduled by `backoff_seconds` instead.)
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not interval_seconds > 0:
        raise ValueError("interval_seconds must be positive")
    if min_seconds > max_seconds:
        raise ValueError("min_seconds cannot exceed max_seconds")
    delay = max(interval_seconds, ttl_seconds or 0.0)
    delay *= 1.0 + jitter_ratio
    bounded = min(max(delay, min_seconds), max_seconds)
    return now + timedelta(seconds=bounded)


def body_digest(body: bytes) -> str:
    """A short digest of a listing's bytes (sha256, 32 hex digits), to tell an unchanged feed
    without parsing it when the server sends no ETag or Last-Modified."""
    return hashlib.sha256(body).hexdigest()[:32]


def is_unchanged(previous_digest: str | None, body: bytes) -> bool:
    """True when `body` is byte for byte the listing last read in full."""
    return previous_digest is not None and previous_digest == body_digest(body)


def refuse_xml_entities(body: bytes) -> None:
    """Raise `FeedError` when an XML document declares entities or external references.

    defusedxml's SAX reader stops at the declaration, before any expansion; a body
    that is merely malformed passes, for feedparser's lenient parser to judge.
    """
    try:
        safe_sax.parseString(body, ContentHandler())
    except DefusedXmlException as exc:
        raise FeedError(f"XML entity declarations refused: {type(exc).__name__}") from exc
    except (SAXException, ValueError, LookupError):  # LookupError: an unknown encoding
        return


def parse_json_feed(body: bytes, *, base_url: str) -> ParsedFeed:
    """Read a JSON Feed 1.0/1.1 (https://jsonfeed.org); raises `FeedError` when it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise FeedError(f"not a JSON feed: {exc}") from exc
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or not version.startswith("https://jsonfeed.org/version/"):
        raise FeedError("not a JSON feed: no jsonfeed.org version")
    items: list[FeedItem] = []
    listed: set[str] = set()
    for entry in data.get("items") or []:
        if not isinstance(entry, dict):
            continue
        link = entry.get("url") or entry.get("external_url")
        url = _safe_item_url(link, base_url)
        if url is None or url in listed:
            continue
        listed.add(url)
        published = parse_iso_datetime(entry.get("date_published") or entry.get("date_modified"))
        guid = entry.get("id")
        items.append(
            FeedItem(
                url=url,
                title=_clean_text(entry.get("title")),
                published=published,
                guid=str(guid) if guid is not None else None,
                lang=_clean_text(entry.get("language") or data.get("language")),
            )
        )
    return ParsedFeed(title=_clean_text(data.get("title")), items=tuple(items), ttl_seconds=None)


def _safe_item_url(link: object, base_url: str) -> str | None:
    """The canonical http(s) URL of a link, or None when there is none."""
    if not isinstance(link, str) or not link.strip():
        return None
    try:
        url = canonical_url(urljoin(base_url, link.strip()))
    except ValueError:
        return None
    return url if urlsplit(url).scheme in DEFAULT_PORTS else None


def parse_iso_datetime(value: object) -> datetime | None:
    """An ISO 8601 date or date-time as UTC; a date alone is midnight UTC; None if unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class ParsedSitemap:
    """A sitemap's pages (newest first when dated) or, for an index, its child sitemaps."""

    items: tuple[FeedItem, ...]
    sitemaps: tuple[str, ...]


MAX_SITEMAP_BYTES = 50_000_000
"""The sitemap protocol's limit on an uncompressed sitemap, bytes."""

_GZIP_MAGIC = b"\x1f\x8b"


def gunzip_capped(body: bytes, max_bytes: int = MAX_SITEMAP_BYTES) -> bytes:
    """Decompress a gzip body (a `.xml.gz` sitemap served as is) without holding more
    than `max_bytes`; other bodies are returned unchanged. Raises `FeedError` past the cap."""
    if not body.startswith(_GZIP_MAGIC):
        return body
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise FeedError(f"broken gzip: {exc}") from exc
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise FeedError(f"sitemap larger than {max_bytes} bytes uncompressed")
    return data


def parse_sitemap(body: bytes, *, base_url: str) -> ParsedSitemap:
    """Read an XML sitemap, a sitemap index, or a Google News sitemap.

    Pages come newest first (by news publication date, else lastmod; undated
    last, in document order), each once. Entity declarations are refused.
    """
    try:
        root = SafeElementTree.fromstring(gunzip_capped(body))
    except DefusedXmlException as exc:
        raise FeedError(f"XML entity declarations refused: {type(exc).__name__}") from exc
    except ParseError as exc:
        raise FeedError(f"malformed sitemap: {exc}") from exc
    kind = _local_name(root.tag)
    if kind == "sitemapindex":
        children = (_safe_item_url(_child_text(node, "loc"), base_url) for node in root)
        return ParsedSitemap(items=(), sitemaps=tuple(dict.fromkeys(u for u in children if u)))
    if kind != "urlset":
        raise FeedError(f"not a sitemap: root element <{kind}>")
    items: dict[str, FeedItem] = {}
    for node in root:
        url = _safe_item_url(_child_text(node, "loc"), base_url)
        if url is None or url in items:
            continue
        news = _child(node, "news")
        published = parse_iso_datetime(_child_text(news, "publication_date")) or (
            parse_iso_datetime(_child_text(node, "lastmod"))
        )
        publication = _child(news, "publication")
        items[url] = FeedItem(
            url=url,
            title=_clean_text(_child_text(news, "title")),
            published=published,
            guid=None,
            lang=_clean_text(_child_text(publication, "language")),
        )
    oldest = datetime.min.replace(tzinfo=UTC)
    ordered = sorted(items.values(), key=lambda i: i.published or oldest, reverse=True)
    return ParsedSitemap(items=tuple(ordered), sitemaps=())


def child_sitemap_batch(count: int, cursor: int, limit: int) -> range:
    """Which of a sitemap index's `count` children to read in this poll: up to `limit`
    from `cursor` (the first child not read yet in the current pass), starting over at 0
    once the cursor is past the end (the index shrank, or the last pass finished)."""
    start = cursor if 0 <= cursor < count else 0
    return range(start, min(start + max(limit, 1), count))


def _local_name(tag: object) -> str:
    return str(tag).rpartition("}")[2]


def _child(node: Element | None, name: str) -> Element | None:
    if node is None:
        return None
    return next((c for c in node if _local_name(c.tag) == name), None)


def _child_text(node: Element | None, name: str) -> str | None:
    child = _child(node, name)
    return child.text.strip() if child is not None and child.text else None


_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\b", re.IGNORECASE)


def http_date(value: str | None) -> datetime | None:
    """An HTTP-date (RFC 9110) as an aware datetime, or None."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def freshness_seconds(headers: Mapping[str, str], now: datetime) -> float | None:
    """How long the response says it stays fresh, seconds: `Cache-Control: max-age`, else
    `Expires` minus `Date` (or `now`); None when it says nothing or forbids caching."""
    cache_control = headers.get("cache-control", "")
    if _NO_CACHE.search(cache_control):
        return None
    if found := _MAX_AGE.search(cache_control):
        return float(found.group(1))
    expires = http_date(headers.get("expires"))
    if expires is None:
        return None
    origin = http_date(headers.get("date")) or now
    remaining = (expires - origin).total_seconds()
    return remaining if remaining > 0 else None


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds from `now`: delay-seconds or an HTTP-date; None if unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    when = http_date(text)
    if when is None:
        return None
    return max((when - now).total_seconds(), 0.0)


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, lower-cased, default port dropped."""
    parts = urlsplit(canonical_url(url))
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def host_of(url: str) -> str:
    """host[:port] of a URL: the unit of politeness (concurrency, rate)."""
    return urlsplit(origin_of(url)).netloc


def robots_allows(status: int | None, body: str, *, user_agent: str, url: str) -> bool:
    """Whether robots.txt lets `user_agent` fetch `url`.

    `status` is how /robots.txt answered: 2xx is obeyed, 4xx (no robots.txt) allows
    everything, 5xx or no answer (None) disallows everything until it can be read.
    """
    if status is None or status >= 500:
        return False
    if status >= 400:
        return True
    parser = RobotFileParser()
    parser.parse(body.splitlines())
    return parser.can_fetch(user_agent, url)


LEASE_RETRIES = 10
"""Tries to renew a lease within its length once a renewal failed (say, Redis away)."""


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease in Redis (a poll's, a request's host slot) as its holder can be sure of it:
    taken or last renewed by a request sent at `since`, for `seconds` (monotonic seconds).
    Redis got that request later, so it keeps the lease at least that long; the holder
    renews it every third of its length, and gives up what it does under the lease once
    it runs out unrenewed, so no other replica can take it while the holder still works."""

    seconds: float
    since: float

    @property
    def expires_at(self) -> float:
        return self.since + self.seconds

    def held(self, now: float) -> bool:
        return now < self.expires_at

    def renew_at(self, now: float, *, failed: bool) -> float:
        """When to renew next: a third into the lease, or soon after a failed renewal
        (`LEASE_RETRIES` tries in a lease's length), never after it runs out."""
        if failed:
            return min(now + self.seconds / LEASE_RETRIES, self.expires_at)
        return self.since + self.seconds / 3

    def renewed(self, sent_at: float) -> Lease:
        """The lease after a renewal sent at `sent_at` was confirmed."""
        return Lease(self.seconds, sent_at)


def lease_ms(seconds: float) -> int:
    """A lease length as Redis takes it: whole milliseconds, at least 1."""
    return max(int(seconds * 1000), 1)


# -- a source's state and how a poll changes it ---------------------------------------------

SourceStatus = Literal["active", "paused", "broken", "disabled"]
SOURCE_STATUSES: Final[tuple[SourceStatus, ...]] = ("active", "paused", "broken", "disabled")


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the fetcher remembers of a source between polls (times: Unix seconds)."""

    etag: str | None = None
    last_modified: str | None = None
    next_poll_at: float = 0.0
    failures: int = 0
    status: SourceStatus = "active"
    url: str | None = None
    """The URL a permanent redirect moved the source to; None: as configured."""
    last_poll_at: float | None = None
    last_status: str | None = None
    last_error: str | None = None
    sitemap_cursor: int = 0
    """A sitemap index read in part: the first child sitemap the next poll reads (0: none
    pending). While a pass is under way the index is fetched unconditionally."""
    body_digest: str | None = None
    """Digest of the last listing read in full (`core.body_digest`): a server that sends no
    validators still costs no parsing while its feed is unchanged."""

    def conditional_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.sitemap_cursor:
            return headers
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers

    def is_due(self, now: float) -> bool:
        return self.status in ("active", "broken") and self.next_poll_at <= now

    def to_fields(self) -> dict[str, str | float | int]:
        return {
            "etag": self.etag or "",
            "last_modified": self.last_modified or "",
            "next_poll_at": self.next_poll_at,
            "failures": self.failures,
            "status": self.status,
            "url": self.url or "",
            "last_poll_at": "" if self.last_poll_at is None else self.last_poll_at,
            "last_status": self.last_status or "",
            "last_error": self.last_error or "",
            "sitemap_cursor": self.sitemap_cursor,
            "body_digest": self.body_digest or "",
        }

    @classmethod
    def from_fields(cls, raw: Mapping[bytes, bytes]) -> SourceState:
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        status = fields.get("status") or "active"
        return cls(
            etag=fields.get("etag") or None,
            last_modified=fields.get("last_modified") or None,
            next_poll_at=float(fields.get("next_poll_at") or 0.0),
            failures=int(fields.get("failures") or 0),
            status=status if status in SOURCE_STATUSES else "active",
            url=fields.get("url") or None,
            last_poll_at=float(fields["last_poll_at"]) if fields.get("last_poll_at") else None,
            last_status=fields.get("last_status") or None,
            last_error=fields.get("last_error") or None,
            sitemap_cursor=int(fields.get("sitemap_cursor") or 0),
            body_digest=fields.get("body_digest") or None,
        )


SourceEvent = Literal["recovered", "broken", "disabled"]
"""A change of a source's health worth a log line and a metric."""


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """The source's state after a poll, and the health change the poll made, if any."""

    state: SourceState
    event: SourceEvent | None = None


@dataclass(frozen=True, slots=True)
class Validators:
    """What a response lets the next poll check for changes."""

    etag: str | None
    last_modified: str | None
    body_digest: str | None


def after_success(
    state: SourceState,
    *,
    now: float,
    next_poll_at: float,
    last_status: str,
    validators: Validators | None,
    sitemap_cursor: int = 0,
) -> PollOutcome:
    """A poll that worked: the source is active again (a broken one has recovered), its
    validators replaced unless `validators` is None, its next poll at `next_poll_at`."""
    kept = validators or Validators(state.etag, state.last_modified, state.body_digest)
    return PollOutcome(
        replace(
            state,
            etag=kept.etag,
            last_modified=kept.last_modified,
            body_digest=kept.body_digest,
            next_poll_at=next_poll_at,
            failures=0,
            status="active",
            last_poll_at=now,
            last_status=last_status,
            last_error=None,
            sitemap_cursor=sitemap_cursor,
        ),
        "recovered" if state.status == "broken" else None,
    )


def after_failure(
    state: SourceState,
    *,
    now: float,
    backoff_seconds: float,
    reason: str,
    error: str,
    gone: bool,
    broken_after_failures: int,
    broken_retry_seconds: float,
) -> PollOutcome:
    """A poll that failed: retried after `backoff_seconds`; a source that is gone (410) is
    disabled; after `broken_after_failures` failures in a row it is broken and retried no
    sooner than `broken_retry_seconds` (seconds; times: Unix seconds)."""
    failures = state.failures + 1
    status: SourceStatus = state.status
    event: SourceEvent | None = None
    delay = backoff_seconds
    if gone:
        status, event = "disabled", "disabled"
    elif failures >= broken_after_failures:
        delay = max(delay, broken_retry_seconds)
        event = None if status == "broken" else "broken"
        status = "broken"
    return PollOutcome(
        replace(
            state,
            next_poll_at=now + delay,
            failures=failures,
            status=status,
            last_poll_at=now,
            last_status=reason,
            last_error=error[:500],
        ),
        event,
    )
