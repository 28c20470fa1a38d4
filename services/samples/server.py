"""A tiny local HTTP server for the sample news site (demo and tests).

`with SampleSite() as site:` serves `services/samples/site` on 127.0.0.1 on a random port in a
background thread; `site.feed_url` is the RSS feed, whose `{{BASE_URL}}` placeholders are
replaced by the server's own address. `python -m services.samples.server --port 8765` serves
until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

BASE_URL_PLACEHOLDER = "{{BASE_URL}}"
"""Where the committed pages and feed (made by tools/build_site.py) say the site's own address."""
SITE_DIR = Path(__file__).parent / "site"
FEED_NAME = "feed.xml"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".xml": "application/rss+xml; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
}


def sample_pages(site_dir: Path = SITE_DIR) -> list[Path]:
    """The article pages of the sample site, in seed order."""
    return sorted(site_dir.glob("[0-9][0-9][0-9]-*.html"))


def load_site(site_dir: Path, base_url: str) -> dict[str, tuple[bytes, str]]:
    """URL path -> (body, content type) for every file of the site, feed links resolved."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(site_dir.iterdir()):
        content_type = CONTENT_TYPES.get(path.suffix)
        if not path.is_file() or content_type is None:
            continue
        body = path.read_bytes()
        if path.name == FEED_NAME:
            body = body.replace(BASE_URL_PLACEHOLDER.encode(), base_url.encode())
        files[f"/{path.name}"] = (body, content_type)
    if "/index.html" in files:
        files["/"] = files["/index.html"]
    return files


class _Handler(BaseHTTPRequestHandler):
    """Serves the preloaded files; anything else is a 404."""

    server: _SiteServer

    def do_GET(self) -> None:
        self._respond(with_body=True)

    def do_HEAD(self) -> None:
        self._respond(with_body=False)

    def _respond(self, *, with_body: bool) -> None:
        found = self.server.files.get(unquote(urlsplit(self.path).path))
        if found is None:
            body, content_type = b"not found\n", "text/plain; charset=utf-8"
            self.send_response(HTTPStatus.NOT_FOUND)
        else:
            body, content_type = found
            self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line on stderr per request."""


class _SiteServer(ThreadingHTTPServer):
    daemon_threads = True
    files: dict[str, tuple[bytes, str]]


class SampleSite:
    """The sample site served on 127.0.0.1 from a background thread; a context manager."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", site_dir: Path = SITE_DIR):
        self._host = host
        self._port = port
        self._site_dir = site_dir
        self._server: _SiteServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """http://host:port of the running server, without a trailing slash."""
        if self._server is None:
            raise RuntimeError("SampleSite is not running; call start() or use `with`")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def feed_url(self) -> str:
        return f"{self.base_url}/{FEED_NAME}"

    def start(self) -> SampleSite:
        if self._server is not None:
            return self
        server = _SiteServer((self._host, self._port), _Handler)
        self._server = server
        server.files = load_site(self._site_dir, self.base_url)
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sample-site",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port; safe to call more than once."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> SampleSite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the newsmon sample news site.")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (0 = random)")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    with SampleSite(port=args.port, host=args.host) as site:
        print(f"serving the sample site; feed at {site.feed_url} (Ctrl-C to stop)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
