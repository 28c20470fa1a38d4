"""The seeds through the live pipeline: topics written once match across languages, and
each (story, topic) alerts exactly once, even fed twice with the alerter restarted."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
import redis.asyncio as aioredis

from contracts import CleanArticle, NewsmonConfig, StoryEvent, TopicAlert
from contracts.streams import ALERTS, ARTICLES_CLEAN, STORIES_EVENTS
from contracts.topics import TermConfig, TopicConfig
from services.alerter.core import CompiledTopics
from services.alerter.lexicon import load_lexicon, simplemma_lemma
from services.common.bus import DATA_FIELD
from services.common.pipeline import running_services, wait_until_done
from services.common.settings import CommonSettings
from services.demo import demo_config
from services.fetcher.core import article_id
from services.fetcher.store import fetcher_key
from services.registry import SERVICES
from services.samples.server import SampleSite, sample_pages

pytestmark = pytest.mark.e2e

TOPICS = (
    TopicConfig(name="nuclear energy", keywords=("nuclear energy",)),
    TopicConfig(name="OpenAI", keywords=("OpenAI",)),
    TopicConfig(
        name="Microsoft deal",
        all_of=(TermConfig(term="Microsoft", entity=True),),
        any_of=("deal", "accord", "accordo", "acordo"),
    ),
)


def _config(feed_url: str) -> NewsmonConfig:
    return demo_config(feed_url).model_copy(update={"topics": TOPICS})


async def _run(redis_url: str, data_dir: Path, config: NewsmonConfig) -> None:
    settings = CommonSettings(redis_url=redis_url, data_dir=data_dir, http_port=0)
    async with running_services(list(SERVICES.values()), settings=settings, config=config) as p:
        assert await wait_until_done(p, timeout_seconds=90), "pipeline did not drain"


async def _entries(redis: aioredis.Redis, stream: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(stream))


async def _alerts(redis: aioredis.Redis) -> list[TopicAlert]:
    return [TopicAlert.model_validate_json(f[DATA_FIELD]) for _, f in await _entries(redis, ALERTS)]


async def test_topics_match_across_languages_and_alert_once_per_story(
    redis: aioredis.Redis, redis_url: str, tmp_path: Path
) -> None:
    with SampleSite() as site:
        config = _config(site.feed_url)
        seed_of = {
            article_id(f"{site.base_url}/{page.name}"): page.name[:3] for page in sample_pages()
        }
        await _run(redis_url, tmp_path, config)
        first = await _alerts(redis)

        # each seed article on its own, as the live alerter matches it
        compiled = CompiledTopics(TOPICS, lexicon=load_lexicon(), lemmatize=simplemma_lemma)
        matched_by_seed = {}
        for _, fields in await _entries(redis, ARTICLES_CLEAN):
            article = CleanArticle.model_validate_json(fields[DATA_FIELD])
            matches = compiled.match(
                article_id=article.article_id,
                title=article.title,
                text=article.text,
                lang=article.lang,
            )
            matched_by_seed[seed_of[article.article_id]] = {m.topic for m in matches}
        assert {s for s, t in matched_by_seed.items() if "nuclear energy" in t} == {
            "000",
            "002",
            "004",
        }
        assert all("OpenAI" in topics for topics in matched_by_seed.values())
        assert {s for s, t in matched_by_seed.items() if "Microsoft deal" in t} == {"001"}

        story_of = {}
        for _, fields in await _entries(redis, STORIES_EVENTS):
            parsed = StoryEvent.model_validate_json(fields[DATA_FIELD])
            story_of[seed_of[parsed.article.article_id]] = parsed.story.story_id
        story_a, story_b, story_c = story_of["000"], story_of["001"], story_of["003"]
        assert story_of["002"] == story_of["004"] == story_a

        expected = {
            ("nuclear energy", story_a),
            ("OpenAI", story_a),
            ("OpenAI", story_b),
            ("OpenAI", story_c),
            ("Microsoft deal", story_b),
        }
        assert sorted((a.topic, a.story_id) for a in first) == sorted(expected)
        assert all(a.kind == "new" and a.matched for a in first)
        nuclear = next(a for a in first if a.topic == "nuclear energy")
        assert {seed_of[m.article_id] for m in nuclear.matched} <= {"000", "002", "004"}

        # feed everything again: the feed polled anew and every story event replayed,
        # with the alerter restarted in between
        for _, fields in await _entries(redis, STORIES_EVENTS):
            await redis.xadd(STORIES_EVENTS, fields)
        await redis.hset(fetcher_key("newsmon:fetcher", "source", "sample-news"), "next_poll_at", 0)
        await _run(redis_url, tmp_path, config)
        assert await _alerts(redis) == first
