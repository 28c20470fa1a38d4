"""Pages to backfill from disk (`newsmon ingest PATH...`): HTML files, folders of them,
and JSONL files of {"url", "html"} objects."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import lxml.html
from lxml.etree import ParserError

from services.fetcher.http import decode_body

HTML_SUFFIXES = (".html", ".htm", ".html.gz", ".htm.gz")
JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True, slots=True)
class PushedPage:
    """One page to publish: where it came from (path, or path:line), its URL and HTML."""

    origin: str
    url: str
    html: str


@dataclass(frozen=True, slots=True)
class InputError:
    """An input that could not be read."""

    origin: str
    error: str


def page_url(html: str, path: Path) -> str:
    """The page's own URL (`<link rel=canonical>`, else `og:url`), else its file:// URI."""
    try:
        document = lxml.html.fromstring(html)
    except (ParserError, ValueError):
        return path.resolve().as_uri()
    for query in ('//link[@rel="canonical"]/@href', '//meta[@property="og:url"]/@content'):
        found = [str(v).strip() for v in document.xpath(query) if str(v).strip()]
        if found and found[0].startswith(("http://", "https://")):
            return found[0]
    return path.resolve().as_uri()


def _html_file(path: Path) -> PushedPage | InputError:
    try:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        return InputError(str(path), f"cannot read {path}: {exc}")
    html = decode_body(data, None)
    return PushedPage(str(path), page_url(html, path), html)


def _jsonl_file(path: Path) -> Iterator[PushedPage | InputError]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        yield InputError(str(path), f"cannot read {path}: {exc}")
        return
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        origin = f"{path}:{number}"
        try:
            record = json.loads(line)
            url, html = record["url"], record["html"]
        except (ValueError, KeyError, TypeError) as exc:
            yield InputError(origin, f"not an object with url and html: {exc}")
            continue
        if not isinstance(url, str) or not isinstance(html, str) or not url.strip():
            yield InputError(origin, "url and html must be non-empty strings")
            continue
        yield PushedPage(origin, url.strip(), html)


def read_pages(paths: Sequence[str]) -> Iterator[PushedPage | InputError]:
    """Every page under `paths`, in order (a folder's files sorted by name, recursively)."""
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            for file in files:
                if file.name.lower().endswith(HTML_SUFFIXES):
                    yield _html_file(file)
                elif file.name.lower().endswith(JSONL_SUFFIXES):
                    yield from _jsonl_file(file)
        elif path.name.lower().endswith(JSONL_SUFFIXES):
            yield from _jsonl_file(path)
        elif path.exists():
            yield _html_file(path)
        else:
            yield InputError(name, f"no such file or folder: {name}")
