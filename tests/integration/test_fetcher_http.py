"""HttpxClient against real HTTP servers on 127.0.0.1, including misbehaving ones."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import pytest_asyncio

from services.fetcher.http import (
    HttpxClient,
    PermanentFetchError,
    TransientFetchError,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

FRENCH = (
    "Lors d'un récent entretien, le président de la société a expliqué que la compétition "
    "dans le domaine de l'intelligence artificielle passe d'une bataille axée sur les "
    "algorithmes à une lutte globale impliquant la puissance de calcul, les capitaux et "
    "l'énergie. Selon lui, le coût de l'électricité sera une variable clé : les centres de "
    "données exigent des réseaux fiables, et les investisseurs préfèrent désormais les "
    "projets où l'approvisionnement est garanti. Les élèves ingénieurs, eux, rêvent déjà "
    "d'une carrière à l'étranger, près des laboratoires les plus réputés du monde."
)
"""A paragraph with the accents a wrong decoding mangles, long enough to detect."""


def _page(handler: BaseHTTPRequestHandler) -> None:
    _send(
        handler, 200, "<html><body>Bonjour, café</body></html>".encode(), "text/html; charset=utf-8"
    )


def _echo_headers(handler: BaseHTTPRequestHandler) -> None:
    body = json.dumps({k.lower(): v for k, v in handler.headers.items()}).encode()
    _send(handler, 200, body, "application/json")


def _gzipped(handler: BaseHTTPRequestHandler) -> None:
    if "gzip" not in handler.headers.get("Accept-Encoding", ""):
        _send(handler, 406, b"", "text/plain")
        return
    _send(handler, 200, gzip.compress(b"<rss/>" * 100), "application/rss+xml", encoding="gzip")


def _status(status: int, **headers: str) -> Callable[[BaseHTTPRequestHandler], None]:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        _send(handler, status, b"error page", "text/plain", **headers)

    return respond


def _redirect(location: str) -> Callable[[BaseHTTPRequestHandler], None]:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return respond


def _conditional(handler: BaseHTTPRequestHandler) -> None:
    if handler.headers.get("If-None-Match") == '"v1"':
        handler.send_response(304)
        handler.send_header("ETag", '"v1"')
        handler.end_headers()
        return
    _send(handler, 200, b"<rss/>", "application/rss+xml", ETag='"v1"')


def _slow(handler: BaseHTTPRequestHandler) -> None:
    time.sleep(1.0)
    _send(handler, 200, b"late", "text/plain")


def _drip(handler: BaseHTTPRequestHandler) -> None:
    """Headers at once, then one byte every 50 ms: no single read ever times out."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain")
    handler.end_headers()
    for _ in range(60):
        handler.wfile.write(b".")
        handler.wfile.flush()
        time.sleep(0.05)


def _huge(handler: BaseHTTPRequestHandler) -> None:
    """50 kB without a Content-Length: only counting while reading can stop it."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.end_headers()
    for _ in range(50):
        handler.wfile.write(b"x" * 1000)


def _huge_declared(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(10**9))
    handler.end_headers()
    handler.wfile.write(b"x" * 100)


def _charset(body: bytes, content_type: str) -> Callable[[BaseHTTPRequestHandler], None]:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        _send(handler, 200, body, content_type)

    return respond


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    content_type: str,
    *,
    encoding: str | None = None,
    **headers: str,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    if encoding:
        handler.send_header("Content-Encoding", encoding)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    handler.wfile.write(body)


ROUTES: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {
    "/page": _page,
    "/headers": _echo_headers,
    "/gzip": _gzipped,
    "/missing": _status(404),
    "/gone": _status(410),
    "/error": _status(500),
    "/unavailable": _status(503, Retry_After="120"),
    "/busy": _status(429, Retry_After="7"),
    "/redirect": _redirect("/page"),
    "/redirect-twice": _redirect("/redirect"),
    "/loop": _redirect("/loop"),
    "/to-ftp": _redirect("ftp://127.0.0.1/file"),
    "/conditional": _conditional,
    "/slow": _slow,
    "/drip": _drip,
    "/huge": _huge,
    "/huge-declared": _huge_declared,
    "/utf8-declared-latin1": _charset(FRENCH.encode("utf-8"), "text/html; charset=ISO-8859-1"),
    "/cp1252-declared-utf8-with-meta": _charset(
        ('<html><head><meta charset="windows-1252"></head><body>' + FRENCH).encode("cp1252"),
        "text/html; charset=utf-8",
    ),
    "/unknown-charset": _charset(FRENCH.encode("utf-8"), "text/html; charset=x-no-such-charset"),
    "/cp1252-undeclared": _charset(FRENCH.encode("cp1252"), "text/html"),
    "/bom-declared-latin1": _charset(FRENCH.encode("utf-8-sig"), "text/html; charset=iso-8859-1"),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        route = ROUTES.get(self.path)
        if route is None:
            _send(self, 404, b"", "text/plain")
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            route(self)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests' output is the assertions."""


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up mid-response is what several tests do on purpose."""


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client() -> AsyncIterator[HttpxClient]:
    """One client for the module, as the fetcher keeps one: its TLS setup costs ~0.1 s."""
    async with HttpxClient(
        user_agent="newsmon-test/1.0 (+https://example.org/bot)",
        timeout_seconds=0.3,
        max_body_bytes=10_000,
        max_redirects=3,
        allowed_private_hosts=["127.0.0.1:*"],
    ) as http:
        yield http


async def test_a_page_comes_back_with_status_headers_and_body(
    client: HttpxClient, base_url: str
) -> None:
    response = await client.get(f"{base_url}/page")
    assert response.status == 200
    assert response.url == f"{base_url}/page"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text() == "<html><body>Bonjour, café</body></html>"


async def test_requests_carry_the_user_agent_gzip_and_the_callers_headers(
    client: HttpxClient, base_url: str
) -> None:
    response = await client.get(f"{base_url}/headers", headers={"X-Probe": "1"})
    sent = json.loads(response.body)
    assert sent["user-agent"] == "newsmon-test/1.0 (+https://example.org/bot)"
    assert "gzip" in sent["accept-encoding"]
    assert sent["x-probe"] == "1"


async def test_a_gzipped_body_arrives_decompressed(client: HttpxClient, base_url: str) -> None:
    response = await client.get(f"{base_url}/gzip")
    assert response.body == b"<rss/>" * 100


@pytest.mark.parametrize(("path", "status"), [("/missing", 404), ("/gone", 410)])
async def test_client_errors_are_permanent(
    client: HttpxClient, base_url: str, path: str, status: int
) -> None:
    with pytest.raises(PermanentFetchError) as raised:
        await client.get(base_url + path)
    assert raised.value.reason == f"http_{status}"
    assert raised.value.status == status
    assert raised.value.url == base_url + path
    assert str(status) in str(raised.value)


async def test_server_errors_are_transient(client: HttpxClient, base_url: str) -> None:
    with pytest.raises(TransientFetchError) as raised:
        await client.get(f"{base_url}/error")
    assert raised.value.reason == "http_500"


async def test_rate_limiting_is_transient_with_the_servers_retry_after(
    client: HttpxClient, base_url: str
) -> None:
    with pytest.raises(TransientFetchError) as raised:
        await client.get(f"{base_url}/busy")
    assert raised.value.reason == "http_429"
    assert raised.value.retry_after_seconds == 7.0


async def test_redirects_are_followed_and_the_final_url_reported(
    client: HttpxClient, base_url: str
) -> None:
    response = await client.get(f"{base_url}/redirect-twice")
    assert response.status == 200
    assert response.url == f"{base_url}/page"


async def test_a_redirect_loop_is_permanent(client: HttpxClient, base_url: str) -> None:
    with pytest.raises(PermanentFetchError) as raised:
        await client.get(f"{base_url}/loop")
    assert raised.value.reason == "too_many_redirects"


async def test_a_redirect_off_http_is_permanent(client: HttpxClient, base_url: str) -> None:
    with pytest.raises(PermanentFetchError) as raised:
        await client.get(f"{base_url}/to-ftp")
    assert raised.value.reason == "unsupported_scheme"


async def test_not_modified_is_a_response_for_conditional_gets(
    client: HttpxClient, base_url: str
) -> None:
    first = await client.get(f"{base_url}/conditional")
    again = await client.get(
        f"{base_url}/conditional", headers={"If-None-Match": first.headers["etag"]}
    )
    assert (first.status, again.status, again.body) == (200, 304, b"")


async def test_a_server_slower_than_the_timeout_is_transient(
    client: HttpxClient, base_url: str
) -> None:
    with pytest.raises(TransientFetchError) as raised:
        await client.get(f"{base_url}/slow")
    assert raised.value.reason == "timeout"


async def test_a_body_trickling_past_the_deadline_is_transient(
    client: HttpxClient, base_url: str
) -> None:
    with pytest.raises(TransientFetchError) as raised:
        await client.get(f"{base_url}/drip")
    assert raised.value.reason == "timeout"


@pytest.mark.parametrize("path", ["/huge", "/huge-declared"])
async def test_a_body_over_the_cap_is_cut_and_permanent(
    client: HttpxClient, base_url: str, path: str
) -> None:
    with pytest.raises(PermanentFetchError) as raised:
        await client.get(base_url + path)
    assert raised.value.reason == "body_too_large"


async def test_a_refused_connection_is_transient(client: HttpxClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(TransientFetchError) as raised:
        await client.get(f"http://127.0.0.1:{closed_port}/")
    assert raised.value.reason == "connect_error"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/feed", "file:///etc/passwd", "/relative"])
async def test_only_http_and_https_are_fetched(client: HttpxClient, url: str) -> None:
    with pytest.raises(PermanentFetchError) as raised:
        await client.get(url)
    assert raised.value.reason == "unsupported_scheme"


@pytest.mark.parametrize("url", ["http://[::1/feed", "http://127.0.0.1:99999/"])
async def test_a_malformed_url_is_permanent(client: HttpxClient, url: str) -> None:
    with pytest.raises(PermanentFetchError) as raised:
        await client.get(url)
    assert raised.value.reason == "invalid_url"


@pytest.mark.parametrize(
    "path",
    [
        "/utf8-declared-latin1",
        "/cp1252-declared-utf8-with-meta",
        "/unknown-charset",
        "/cp1252-undeclared",
        "/bom-declared-latin1",
    ],
)
async def test_text_survives_a_wrong_or_missing_charset(
    client: HttpxClient, base_url: str, path: str
) -> None:
    response = await client.get(base_url + path)
    assert FRENCH in response.text()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
async def test_loopback_is_refused_unless_allow_listed(base_url: str, host: str) -> None:
    port = base_url.rsplit(":", 1)[1]
    async with HttpxClient(user_agent="t", timeout_seconds=1) as strict:
        with pytest.raises(PermanentFetchError) as raised:
            await strict.get(f"http://{host}:{port}/page")
    assert raised.value.reason == "blocked_address"
    assert "allowed_private_hosts" in str(raised.value)


async def test_an_allow_listed_host_is_reached_on_its_listed_port_only(base_url: str) -> None:
    """Allowing the sample site on 127.0.0.1 must not open the other services there."""
    port = int(base_url.rsplit(":", 1)[1])
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        other_port = other.getsockname()[1]
        for allowed in ([f"127.0.0.1:{port}"], ["127.0.0.1"]):
            async with HttpxClient(
                user_agent="t", timeout_seconds=2, allowed_private_hosts=allowed
            ) as http:
                with pytest.raises(PermanentFetchError) as raised:
                    await http.get(f"http://127.0.0.1:{other_port}/admin")
                assert raised.value.reason == "blocked_address", allowed
    async with HttpxClient(
        user_agent="t", timeout_seconds=2, allowed_private_hosts=[f"127.0.0.1:{port}"]
    ) as http:
        assert (await http.get(f"{base_url}/page")).status == 200


async def test_an_allow_listed_name_may_resolve_to_loopback(base_url: str) -> None:
    port = base_url.rsplit(":", 1)[1]
    async with HttpxClient(user_agent="t", allowed_private_hosts=[f"localhost:{port}"]) as http:
        try:
            response = await http.get(f"http://localhost:{port}/page")
        except TransientFetchError:
            pytest.skip("localhost resolves to no address this server listens on")
    assert response.status == 200
