"""The fetcher's HTTP boundary: one small interface, httpx behind it.

Callers see `HttpResponse` or a `FetchError` that already says whether to retry
(`TransientFetchError`) or give up (`PermanentFetchError`); httpx's exceptions
are translated here, where they enter, and never leak into the fetcher.
"""

from __future__ import annotations

import asyncio
import codecs
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import urlsplit

import httpx

from services.common.outbound import BlockedAddressError, guarded_client
from services.fetcher.core import http_date, retry_after_seconds

SUPPORTED_SCHEMES = frozenset({"http", "https"})

DEFAULT_ACCEPT = (
    "text/html,application/xhtml+xml,application/rss+xml,application/atom+xml,"
    "application/xml;q=0.9,*/*;q=0.8"
)

RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})
"""4xx statuses that mean "not now" rather than "never": request timeout, rate limited."""

_CHARSET_PARAM = re.compile(rb"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""")
_META_CHARSET = re.compile(
    rb"""<meta\b[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)
_CHAOS_MARGIN = 0.02
"""Guesses whose mess ratio is within this of the cleanest one count as equally clean."""
_SNIFF_BYTES = 4096
"""How far into a body to look for an in-document charset declaration, bytes."""

_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_LATIN1_ALIASES = frozenset({"latin-1", "iso8859-1", "ascii", "cp1252"})
"""Codecs servers declare by default; browsers read all of them as windows-1252."""

PERMANENT_REDIRECTS = frozenset({301, 308})


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A response whose body was read in full (or a bodiless 304)."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    moved_permanently: bool = False
    """Every redirect on the way was a 301 or 308: `url` is the resource's new address."""

    def text(self) -> str:
        """The body decoded as declared, or as detected when the declaration is missing or wrong."""
        return decode_body(self.body, self.headers.get("content-type"))


class FetchError(Exception):
    """A URL could not be fetched; `reason` is a short machine-readable class of failure."""

    def __init__(self, url: str, reason: str, detail: str, *, status: int | None = None) -> None:
        super().__init__(f"cannot fetch {url}: {detail}")
        self.url = url
        self.reason = reason
        self.status = status


class TransientFetchError(FetchError):
    """Worth retrying later: timeouts, connection failures, 429, 5xx."""

    def __init__(
        self,
        url: str,
        reason: str,
        detail: str,
        *,
        status: int | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(url, reason, detail, status=status)
        self.retry_after_seconds = retry_after_seconds


class PermanentFetchError(FetchError):
    """Retrying will not help: 4xx, redirect loops, oversized bodies, unsupported URLs,
    refused addresses."""


class HttpClient(Protocol):
    """What the fetcher needs from HTTP: one GET with redirects followed."""

    async def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> HttpResponse: ...


class HttpxClient:
    """`HttpClient` on httpx: polite headers, bounded time, bounded body, translated errors.

    `timeout_seconds` bounds the whole GET including redirects and the body;
    `connect_timeout_seconds` and `read_timeout_seconds` (default: the total) bound
    each connection attempt and each read. Hosts resolving to private, loopback,
    link-local or multicast addresses are refused unless in `allowed_private_hosts`.
    Environment proxies are ignored (they would bypass the address check). An
    injected `client` is used as is (its transport, redirect limit and address
    policy) and is left open by `aclose`.
    """

    def __init__(
        self,
        *,
        user_agent: str,
        timeout_seconds: float = 20.0,
        connect_timeout_seconds: float | None = None,
        read_timeout_seconds: float | None = None,
        max_body_bytes: int = 15_000_000,
        max_redirects: int = 5,
        allowed_private_hosts: Collection[str] = (),
        max_connections: int = 100,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._timeout_seconds = timeout_seconds
        self._max_body_bytes = max_body_bytes
        self._headers = {
            "user-agent": user_agent,
            "accept-encoding": "gzip, deflate, br",
            "accept": DEFAULT_ACCEPT,
        }
        self._timeout = httpx.Timeout(
            timeout_seconds,
            connect=connect_timeout_seconds or timeout_seconds,
            read=read_timeout_seconds or timeout_seconds,
        )
        self._owns_client = client is None
        self._client = (
            client
            if client is not None
            else self._guarded_client(allowed_private_hosts, max_redirects, max_connections)
        )

    def _guarded_client(
        self, allowed_private_hosts: Collection[str], max_redirects: int, max_connections: int
    ) -> httpx.AsyncClient:
        return guarded_client(
            allowed_private_hosts=allowed_private_hosts,
            timeout=self._timeout,
            follow_redirects=True,
            max_redirects=max_redirects,
            max_connections=max_connections,
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> HttpResponse:
        """GET `url`; 2xx and 304 are returned, anything else raises a `FetchError`."""
        try:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            _ = parts.port  # raises on a port that is not a number in 0..65535
        except ValueError as exc:
            raise PermanentFetchError(url, "invalid_url", str(exc)) from exc
        if scheme not in SUPPORTED_SCHEMES:
            raise PermanentFetchError(
                url, "unsupported_scheme", f"only http and https are fetched, not {scheme!r}"
            )
        request_headers = {**self._headers, **{k.lower(): v for k, v in (headers or {}).items()}}
        try:
            async with asyncio.timeout(self._timeout_seconds):
                return await self._get(url, request_headers)
        except TimeoutError as exc:
            raise TransientFetchError(
                url, "timeout", f"no complete response within {self._timeout_seconds:g} s"
            ) from exc
        except httpx.HTTPError as exc:
            raise _translate(url, exc) from exc
        except httpx.InvalidURL as exc:
            raise PermanentFetchError(url, "invalid_url", str(exc)) from exc
        except BlockedAddressError as exc:
            raise PermanentFetchError(url, "blocked_address", str(exc)) from exc

    async def _get(self, url: str, headers: Mapping[str, str]) -> HttpResponse:
        async with self._client.stream(
            "GET", url, headers=headers, follow_redirects=True, timeout=self._timeout
        ) as response:
            final_url = str(response.url)
            _raise_for_status(final_url, response)
            body = await _read_capped(final_url, response, self._max_body_bytes)
            return HttpResponse(
                url=final_url,
                status=response.status_code,
                headers=dict(response.headers.items()),
                body=body,
                moved_permanently=bool(response.history)
                and all(hop.status_code in PERMANENT_REDIRECTS for hop in response.history),
            )


def _raise_for_status(url: str, response: httpx.Response) -> None:
    """Decide on the status before reading the body: an error page is not worth downloading."""
    status = response.status_code
    if 200 <= status < 300 or status == 304:
        return
    detail = f"HTTP {status} {response.reason_phrase}".strip()
    reason = f"http_{status}"
    if status >= 500 or status in RETRYABLE_CLIENT_STATUSES:
        raise TransientFetchError(
            url,
            reason,
            detail,
            status=status,
            retry_after_seconds=retry_after_seconds(
                response.headers.get("retry-after"),
                http_date(response.headers.get("date")) or datetime.now(UTC),
            ),
        )
    raise PermanentFetchError(url, reason, detail, status=status)


async def _read_capped(url: str, response: httpx.Response, max_body_bytes: int) -> bytes:
    """The decoded body, refusing to hold more than `max_body_bytes` bytes of it."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body_bytes:
        raise _too_large(url, max_body_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_body_bytes:
            raise _too_large(url, max_body_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(url: str, max_body_bytes: int) -> PermanentFetchError:
    return PermanentFetchError(url, "body_too_large", f"body exceeds {max_body_bytes} bytes")


def _translate(url: str, exc: httpx.HTTPError) -> FetchError:
    """httpx's exception, as the retry decision the fetcher needs."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return TransientFetchError(url, "timeout", detail)
    if isinstance(exc, httpx.TooManyRedirects):
        return PermanentFetchError(url, "too_many_redirects", detail)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return PermanentFetchError(url, "unsupported_scheme", detail)
    if isinstance(exc, httpx.DecodingError):
        return PermanentFetchError(url, "bad_content_encoding", detail)
    if isinstance(exc, httpx.LocalProtocolError):
        return PermanentFetchError(url, "invalid_request", detail)
    if isinstance(exc, httpx.ConnectError):
        return TransientFetchError(url, "connect_error", detail)
    if isinstance(exc, httpx.RemoteProtocolError):
        return TransientFetchError(url, "protocol_error", detail)
    return TransientFetchError(url, "network_error", detail)


def decode_body(body: bytes, content_type: str | None) -> str:
    """Bytes to text: byte-order mark, then the declared charset, then the document's own
    declaration, then UTF-8, then charset detection; never raises.

    A declared Latin-1/ASCII/windows-1252 is the usual server default, so a body
    that is valid UTF-8 with non-ASCII bytes is read as UTF-8 instead.
    """
    for mark, encoding in _BYTE_ORDER_MARKS:
        if body.startswith(mark):
            return body.decode(encoding, errors="replace")
    declared = None
    if content_type is not None:
        declared = _codec_name(_CHARSET_PARAM.search(content_type.encode("latin-1", "replace")))
    if declared in _LATIN1_ALIASES:
        if not body.isascii() and _is_utf8(body):
            return body.decode("utf-8")
        return _strict_decode(body, "cp1252") or body.decode("latin-1")
    if declared is not None and (text := _strict_decode(body, declared)) is not None:
        return text
    head = body[:_SNIFF_BYTES]
    in_document = _codec_name(_XML_ENCODING.search(head) or _META_CHARSET.search(head))
    if in_document is not None and (text := _strict_decode(body, in_document)) is not None:
        return text
    if _is_utf8(body):
        return body.decode("utf-8")
    return _detected(body)


def _codec_name(found: re.Match[bytes] | None) -> str | None:
    """Python's name for a declared charset, or None when absent or unknown."""
    if found is None:
        return None
    try:
        return codecs.lookup(found.group(1).decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return None


def _strict_decode(body: bytes, encoding: str) -> str | None:
    try:
        return body.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def _is_utf8(body: bytes) -> bool:
    return _strict_decode(body, "utf-8") is not None


def _detected(body: bytes) -> str:
    """charset_normalizer's guess when it is installed, else UTF-8 with replacement.

    Its least-chaotic guess confuses close single-byte code pages (French read as
    Baltic cp1257); among guesses about as clean, the one whose text reads most
    like a language (coherence) wins.
    """
    try:
        from charset_normalizer import from_bytes
    except ImportError:
        return body.decode("utf-8", errors="replace")
    guesses = from_bytes(body)
    best = guesses.best()
    if best is None:
        return body.decode("utf-8", errors="replace")
    clean = [guess for guess in guesses if guess.chaos <= best.chaos + _CHAOS_MARGIN]
    return str(max(clean, key=lambda guess: guess.coherence, default=best))
