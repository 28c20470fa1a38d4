"""The fetcher service over real HTTP: manage sources at run time, push pages, and
`newsmon ingest` for files; all publish through the same once-only path."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from harness import LocalHttpServer, send

from contracts import NewsmonConfig, RawArticle, SourceConfig
from contracts.streams import ARTICLES_RAW
from services.common.bus import DATA_FIELD
from services.common.pipeline import running_services
from services.common.settings import CommonSettings
from services.fetcher.app import create_service

pytestmark = pytest.mark.integration

TOKEN = "fetcher-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def api_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fetcher API is off without a token: these tests run it with one."""
    monkeypatch.setenv("NEWSMON_FETCHER_API_TOKEN", TOKEN)


class Site(LocalHttpServer):
    """A feed (/feed.xml) and a sitemap (/sitemap.xml), each listing one page."""

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        base = self.base_url
        if handler.path == "/feed.xml":
            body = f'<rss version="2.0"><channel><item><link>{base}/f.html</link></item>'
            send(handler, 200, (body + "</channel></rss>").encode(), "application/rss+xml")
        elif handler.path == "/sitemap.xml":
            body = (
                '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                f"<url><loc>{base}/s.html</loc></url></urlset>"
            )
            send(handler, 200, body.encode(), "application/xml")
        elif handler.path == "/robots.txt":
            send(handler, 404)
        else:
            send(handler, 200, b"<html><body>page</body></html>", "text/html")


@pytest.fixture
def site() -> Iterator[Site]:
    with Site() as served:
        yield served


async def urls_published(redis: aioredis.Redis) -> list[str]:
    entries = await redis.xrange(ARTICLES_RAW)
    return [RawArticle.model_validate_json(f[DATA_FIELD]).url for _, f in entries]


async def wait_for(redis: aioredis.Redis, count: int) -> list[str]:
    for _ in range(200):
        if len(urls := await urls_published(redis)) >= count:
            return urls
        await asyncio.sleep(0.05)
    return await urls_published(redis)


async def test_sources_are_added_listed_paused_resumed_and_removed_over_http(
    redis: aioredis.Redis, redis_url: str, site: Site
) -> None:
    config = NewsmonConfig(
        sources=(SourceConfig(name="configured", url=f"{site.base_url}/feed.xml"),),
        allowed_private_hosts=("127.0.0.1:*",),
    )
    settings = CommonSettings(redis_url=redis_url, http_port=0)
    async with (
        running_services([create_service], settings=settings, config=config) as pipeline,
        httpx.AsyncClient(base_url=pipeline.http_url, headers=AUTH) as client,
    ):
        assert await wait_for(redis, 1) == [f"{site.base_url}/f.html"]

        sitemap = {"name": "map", "url": f"{site.base_url}/sitemap.xml", "kind": "sitemap"}
        added = await client.post("/sources", json={**sitemap, "lang": "fr", "tags": ["t"]})
        assert added.status_code == 201 and added.json()["origin"] == "api"
        assert (await client.post("/sources", json=sitemap)).status_code == 409
        assert (await client.post("/sources", json={"name": "x"})).status_code == 422
        assert (await wait_for(redis, 2))[1] == f"{site.base_url}/s.html"

        listed = (await client.get("/sources")).json()["sources"]
        assert [s["name"] for s in listed] == ["configured", "map"]
        state = (await client.get("/sources/map")).json()
        assert state["last_status"] == "ok" and state["error_count"] == 0
        assert state["last_poll_at"] and state["next_poll_at"] and state["state"] == "active"

        paused = await client.post("/sources/map/pause")
        assert paused.json()["state"] == "paused"
        resumed = await client.post("/sources/map/resume")
        assert resumed.json()["state"] == "active"
        assert (await client.delete("/sources/configured")).status_code == 409
        assert (await client.delete("/sources/map")).status_code == 204
        assert (await client.get("/sources/map")).status_code == 404

        pushed = {"url": "https://example.org/pushed?utm_source=x", "html": "<p>pushed</p>"}
        first = await client.post("/ingest", json=pushed)
        assert first.status_code == 202 and first.json()["outcome"] == "published"
        assert (await client.post("/ingest", json=pushed)).json()["outcome"] == "seen"
        fetched = await client.post("/ingest", json={"url": f"{site.base_url}/pushed.html"})
        assert fetched.json()["outcome"] == "published"
        refused = await client.post("/ingest", json={"url": "http://10.1.2.3/x"})
        assert refused.status_code == 502 and "blocked_address" in refused.json()["error"]
        metrics = (await client.get("/metrics")).text
    assert 'newsmon_fetcher_sources{state="active"}' in metrics
    assert "newsmon_fetcher_host_queue_depth" in metrics
    urls = await urls_published(redis)
    assert len(urls) == len(set(urls)) == 4 and "https://example.org/pushed" in urls


async def test_without_the_token_nothing_is_pushed_added_or_paused(
    redis: aioredis.Redis, redis_url: str, site: Site
) -> None:
    config = NewsmonConfig(
        sources=(SourceConfig(name="configured", url=f"{site.base_url}/feed.xml"),),
        allowed_private_hosts=("127.0.0.1:*",),
    )
    settings = CommonSettings(redis_url=redis_url, http_port=0)
    fake = {"url": "https://www.reuters.com/world/fake", "html": "<p>x</p>"}
    async with (
        running_services([create_service], settings=settings, config=config) as pipeline,
        httpx.AsyncClient(base_url=pipeline.http_url) as anonymous,
    ):
        assert await wait_for(redis, 1) == [f"{site.base_url}/f.html"]
        wrong = {"Authorization": "Bearer guess"}
        assert (await anonymous.post("/ingest", json=fake)).status_code == 401
        assert (await anonymous.post("/ingest", json=fake, headers=wrong)).status_code == 401
        junk = {"name": "junk", "url": f"{site.base_url}/sitemap.xml", "kind": "sitemap"}
        assert (await anonymous.post("/sources", json=junk)).status_code == 401
        assert (await anonymous.post("/sources/configured/pause")).status_code == 401
        assert (await anonymous.get("/sources")).status_code == 401
        listed = await anonymous.get("/sources", headers=AUTH)
        assert [s["name"] for s in listed.json()["sources"]] == ["configured"]
        assert listed.json()["sources"][0]["state"] == "active"
    assert await urls_published(redis) == [f"{site.base_url}/f.html"]


async def test_the_api_is_off_without_a_token_and_refuses_oversized_bodies(
    redis: aioredis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = CommonSettings(redis_url=redis_url, http_port=0)
    monkeypatch.delenv("NEWSMON_FETCHER_API_TOKEN")
    async with (
        running_services([create_service], settings=settings, config=NewsmonConfig()) as off,
        httpx.AsyncClient(base_url=off.http_url, headers=AUTH) as client,
    ):
        page = {"url": "https://example.org/a", "html": "<p>x</p>"}
        response = await client.post("/ingest", json=page)
        assert response.status_code == 503
        assert "NEWSMON_FETCHER_API_TOKEN" in response.json()["error"]
    monkeypatch.setenv("NEWSMON_FETCHER_API_TOKEN", TOKEN)
    monkeypatch.setenv("NEWSMON_FETCHER_API_MAX_BODY_BYTES", "100000")
    async with (
        running_services([create_service], settings=settings, config=NewsmonConfig()) as on,
        httpx.AsyncClient(base_url=on.http_url, headers=AUTH) as client,
    ):
        huge = {"url": "https://example.org/huge", "html": "<p>" + "x" * 200_000 + "</p>"}
        assert (await client.post("/ingest", json=huge)).status_code == 413
        assert (await client.post("/ingest", json=page)).status_code == 202
    assert await urls_published(redis) == ["https://example.org/a"]


async def test_newsmon_ingest_publishes_files_folders_and_jsonl_once(
    redis: aioredis.Redis, redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "pages").mkdir()
    canonical = '<link rel="canonical" href="https://example.org/a">'
    (tmp_path / "pages" / "a.html").write_text(f"<html><head>{canonical}</head></html>")
    (tmp_path / "pages" / "b.htm").write_text("<html><body>no canonical link</body></html>")
    lines = [
        {"url": "https://example.org/c", "html": "<p>c</p>"},
        {"url": "https://example.org/a#again", "html": "<p>a</p>"},
    ]
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    run = subprocess.run(
        [sys.executable, "-m", "services.cli", "ingest", str(tmp_path / "pages"), str(jsonl)],
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    outcomes = [json.loads(line)["outcome"] for line in run.stdout.splitlines()]
    assert outcomes == ["published", "published", "published", "seen"]
    urls = await urls_published(redis)
    assert urls[0] == "https://example.org/a" and urls[1].startswith("file://")
    assert urls[2] == "https://example.org/c" and len(urls) == 3


@pytest.mark.parametrize(
    ("url", "html", "says"),
    [
        ("https://example.org:99999/a", "<p>x</p>", "invalid port"),
        ("https://example.org:http/a", None, "invalid port"),
        ("javascript:alert(1)", "<p>x</p>", "only http and https"),
        ("ftp://example.org/a", "<p>x</p>", "only http and https"),
        ("ftp://example.org/a", None, "only http and https"),
        ("/a/relative/path", "<p>x</p>", "only http and https"),
        ("http:///no-host", "<p>x</p>", "no host"),
    ],
)
async def test_ingest_answers_400_for_what_is_not_an_http_url(
    redis: aioredis.Redis, redis_url: str, url: str, html: str | None, says: str
) -> None:
    settings = CommonSettings(redis_url=redis_url, http_port=0)
    async with (
        running_services([create_service], settings=settings, config=NewsmonConfig()) as pipeline,
        httpx.AsyncClient(base_url=pipeline.http_url, headers=AUTH) as client,
    ):
        pushed = {"url": url} if html is None else {"url": url, "html": html}
        refused = await client.post("/ingest", json=pushed)
    assert refused.status_code == 400 and says in refused.json()["error"]
    assert await urls_published(redis) == []


async def test_pushed_pages_carry_their_publisher_and_are_counted_as_ingest(
    redis: aioredis.Redis, redis_url: str, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    publishers = {"newsletter #1": "n1-token-0123456789", "newsletter #2": "n2-token-0123456789"}
    monkeypatch.setenv("NEWSMON_FETCHER_PUSH_TOKENS", json.dumps(publishers))
    config = NewsmonConfig(
        sources=(SourceConfig(name="broken", url=f"{site.base_url}/not-a-feed.html"),),
        allowed_private_hosts=("127.0.0.1:*",),
    )
    settings = CommonSettings(redis_url=redis_url, http_port=0)
    dead = {"stream": ARTICLES_RAW, "reason": "broken_feed"}
    async with (
        running_services([create_service], settings=settings, config=config) as pipeline,
        httpx.AsyncClient(base_url=pipeline.http_url) as client,
    ):
        for number, token in enumerate(publishers.values()):
            page = {"url": f"https://example.org/{number}", "html": "<p>x</p>"}
            pushed = await client.post("/ingest", json=page, headers=_bearer(token))
            assert pushed.status_code == 202, pushed.text
        # the source is who pushed, never what the body claims
        claim = {"url": "https://www.reuters.com/world/fake", "html": "<p>x</p>", "source": "x"}
        claimed = await client.post("/ingest", json=claim, headers=_bearer("n1-token-0123456789"))
        assert claimed.status_code == 422 and "source" in claimed.json()["error"].lower()
        # a push token pushes, and does nothing else
        sources = await client.get("/sources", headers=_bearer("n1-token-0123456789"))
        assert sources.status_code == 401
        for _ in range(200):
            if pipeline.registry.get_sample_value("newsmon_dead_letters_total", dead):
                break
            await asyncio.sleep(0.05)
        metrics = (await client.get("/metrics")).text
    assert pipeline.registry.get_sample_value("newsmon_dead_letters_total", dead) == 1
    assert 'newsmon_fetcher_items_total{source="ingest"} 2.0' in metrics
    assert "newsletter" not in metrics  # a publisher's name never becomes a label
    entries = await redis.xrange(ARTICLES_RAW)
    sources = [RawArticle.model_validate_json(f[DATA_FIELD]).source for _, f in entries]
    assert sources == ["newsletter #1", "newsletter #2"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
