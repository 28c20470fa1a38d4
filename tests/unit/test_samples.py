"""The sample news site: served locally, a valid feed, one page per seed with its headline."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest

from services.samples.server import SampleSite, sample_pages
from tools.build_site import SEED_META, build

SEEDS_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "seeds"


@pytest.fixture(scope="module")
def site() -> Iterator[SampleSite]:
    with SampleSite() as running:
        yield running


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as http:
        yield http


def seed_texts() -> dict[str, str]:
    if not SEEDS_DIR.is_dir():
        pytest.skip(f"seeds absent: {SEEDS_DIR} (../shared is not part of the repo)")
    return {p.name[:3]: p.read_text(encoding="utf-8") for p in SEEDS_DIR.glob("[0-9]*_*.txt")}


def test_feed_lists_five_pages_with_links_that_resolve(
    site: SampleSite, client: httpx.Client
) -> None:
    response = client.get(site.feed_url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/rss+xml")
    assert "{{BASE_URL}}" not in response.text

    feed = feedparser.parse(response.content)
    assert not feed.bozo
    assert len(feed.entries) == 5
    for entry in feed.entries:
        assert entry.link.startswith(site.base_url + "/")
        assert entry.published_parsed.tm_year == 2025
        page = client.get(entry.link)
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert html.escape(entry.title, quote=False) in page.text


def test_unknown_path_is_404(site: SampleSite, client: httpx.Client) -> None:
    assert client.get(f"{site.base_url}/../pyproject.toml").status_code == 404
    assert client.get(f"{site.base_url}/nope.html").status_code == 404


def test_stop_is_idempotent_and_frees_the_server(client: httpx.Client) -> None:
    running = SampleSite().start()
    feed_url = running.feed_url
    running.stop()
    running.stop()
    with pytest.raises(httpx.TransportError):
        client.get(feed_url)


def test_every_page_carries_its_seed_headline() -> None:
    pages = {path.name[:3]: path.read_text(encoding="utf-8") for path in sample_pages()}
    assert sorted(pages) == ["000", "001", "002", "003", "004"]
    for seed_id, text in seed_texts().items():
        headline = SEED_META[seed_id].headline or text.splitlines()[0].strip()
        assert f"<h1>{html.escape(headline, quote=False)}</h1>" in pages[seed_id]


def test_committed_site_matches_a_fresh_build() -> None:
    site_dir = sample_pages()[0].parent
    for name, content in build(seed_texts()).items():
        assert (site_dir / name).read_text(encoding="utf-8") == content, name
