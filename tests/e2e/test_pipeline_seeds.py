"""Feed in, alerts out: the five seed pages through the whole pipeline on a real
Redis, served by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from contracts.streams import ALERTS, ARTICLES_RAW, STORIES_EVENTS, topic_alerts_stream
from services.common.pipeline import RunningPipeline, running_services, wait_until_done
from services.common.settings import CommonSettings
from services.demo import RunSummary, demo_config, read_summary, render_summary
from services.fetcher.core import article_id
from services.fetcher.store import fetcher_key
from services.registry import SERVICES
from services.samples.server import SampleSite, sample_pages

pytestmark = pytest.mark.e2e


def _groups(summary: RunSummary, site: SampleSite) -> set[frozenset[str]]:
    """Stories as sets of seed numbers (the first three characters of page names)."""
    seed_of = {article_id(f"{site.base_url}/{page.name}"): page.name[:3] for page in sample_pages()}
    return {frozenset(seed_of[m.article_id] for m in story.members) for story in summary.stories}


async def _run_once(redis_url: str, data_dir: Path, feed_url: str) -> tuple[RunSummary, str]:
    settings = CommonSettings(redis_url=redis_url, data_dir=data_dir, http_port=0)
    async with running_services(
        list(SERVICES.values()), settings=settings, config=demo_config(feed_url)
    ) as pipeline:
        assert await wait_until_done(pipeline, timeout_seconds=90), "pipeline did not drain"
        metrics = await _check_http(pipeline)
        return await read_summary(pipeline.redis), metrics


async def _check_http(pipeline: RunningPipeline) -> str:
    async with httpx.AsyncClient(base_url=pipeline.http_url) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        return (await client.get("/metrics")).text


async def test_seeds_make_three_stories_and_one_alert_per_story_and_topic(
    redis: aioredis.Redis, redis_url: str, tmp_path: Path
) -> None:
    with SampleSite() as site:
        first, metrics = await _run_once(redis_url, tmp_path, site.feed_url)

        assert first.articles_fetched == 5
        assert _groups(first, site) == {
            frozenset({"000", "002", "004"}),
            frozenset({"001"}),
            frozenset({"003"}),
        }
        story_a = next(s for s in first.stories if len(s.members) == 3)
        assert set(story_a.languages) == {"fr", "it", "pt"}

        openai = [a for a in first.alerts if a.topic == "OpenAI"]
        assert sorted(a.story_id for a in openai) == sorted(s.story_id for s in first.stories)
        nuclear = [a for a in first.alerts if a.topic == "nuclear energy"]
        assert [a.story_id for a in nuclear] == [story_a.story_id]
        assert await redis.xlen(topic_alerts_stream("OpenAI")) == 3
        assert first.dead_letters == 0
        assert 'newsmon_fetcher_items_total{source="sample-news"} 5.0' in metrics
        assert 'newsmon_detector_articles_total{reason="translation"} 2.0' in metrics

        # a second run over the same feed (the source made due again) adds nothing
        await redis.hset(fetcher_key("newsmon:fetcher", "source", "sample-news"), "next_poll_at", 0)
        lengths = [await redis.xlen(s) for s in (ARTICLES_RAW, STORIES_EVENTS, ALERTS)]
        second, _ = await _run_once(redis_url, tmp_path, site.feed_url)
        assert [await redis.xlen(s) for s in (ARTICLES_RAW, STORIES_EVENTS, ALERTS)] == lengths
        assert second.alerts == first.alerts

    text = render_summary(first, seconds=1.0, metrics_lines=[])
    assert "Fetched 5 articles; 3 stories" in text
