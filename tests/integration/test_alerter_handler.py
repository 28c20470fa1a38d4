"""The alert policy as subscribers live it: a story spreading through the live handler on a
real Redis gives one new alert, then debounced update alerts, and never a repeat."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from harness import GrowingStory
from prometheus_client import CollectorRegistry

from contracts import (
    NewsmonConfig,
    StoryEvent,
    TopicAlert,
    TopicConfig,
)
from contracts.streams import ALERTS, topic_alerts_stream
from services.alerter.catalog import Catalog
from services.alerter.core import Lexicon, UpdatePolicy
from services.alerter.handlers import AlertHandler
from services.alerter.metrics import AlerterMetrics
from services.alerter.stories import StoryView
from services.common.bus import DATA_FIELD

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
DEBOUNCE = timedelta(hours=1)


class Clock:
    """A clock the test moves forward."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class Story(GrowingStory):
    """A test story: article `number` of it, titled "Article <number>"."""

    def __init__(self, story_id: str) -> None:
        super().__init__(story_id, START)

    def add_article(
        self, number: int, lang: str, source: str, text: str, when: datetime
    ) -> StoryEvent:
        title = f"Article {number}"
        article_id = f"{self.story_id}-a{number}"
        return self.add(article_id, lang=lang, source=source, title=title, text=text, when=when)


def _handler(redis: aioredis.Redis, topics: tuple[TopicConfig, ...], clock: Clock) -> AlertHandler:
    catalog = Catalog(
        redis,
        NewsmonConfig(topics=topics),
        key_prefix="test",
        lexicon=Lexicon(),
        lemmatize=lambda word, lang: word,
    )
    return AlertHandler(
        redis=redis,
        catalog=catalog,
        metrics=AlerterMetrics(CollectorRegistry()),
        clock=clock,
        key_prefix="test",
        view=StoryView(redis, key_prefix="test", retention_seconds=86_400),
        sent_ttl_seconds=3600 * 24,
        policy=UpdatePolicy(min_new_sources=2, debounce_seconds=DEBOUNCE.total_seconds()),
    )


async def _alerts(redis: aioredis.Redis) -> list[TopicAlert]:
    entries = await redis.xrange(ALERTS)
    return [TopicAlert.model_validate_json(fields[DATA_FIELD]) for _, fields in entries]


async def test_a_spreading_story_alerts_once_then_updates_at_most_once_per_interval(
    redis: aioredis.Redis,
) -> None:
    clock = Clock()
    handle = _handler(redis, (TopicConfig(name="OpenAI", keywords=("OpenAI",)),), clock)
    story = Story("s1")
    text = "OpenAI signs a new agreement."
    first = story.add_article(1, "en", "wire", text, clock.now)
    await handle(first)
    await handle(first)  # redelivered: nothing more
    clock.now += timedelta(minutes=5)
    await handle(story.add_article(2, "en", "paper", text, clock.now))  # one new outlet: not enough
    clock.now += timedelta(minutes=5)
    await handle(
        story.add_article(3, "fr", "journal", text, clock.now)
    )  # a new language, debounced
    clock.now = START + DEBOUNCE + timedelta(minutes=1)
    await handle(story.add_article(4, "fr", "gazette", text, clock.now))  # interval passed: update
    clock.now += timedelta(minutes=1)
    await handle(story.add_article(5, "de", "zeitung", text, clock.now))  # debounced again
    alerts = await _alerts(redis)
    assert [(a.kind, a.update_number) for a in alerts] == [("new", 0), ("update", 1)]
    update = alerts[1]
    assert set(update.added_languages) == {"fr"}
    assert {"paper", "journal", "gazette"} <= set(update.added_sources)


async def test_a_topic_needing_two_outlets_waits_for_the_second(redis: aioredis.Redis) -> None:
    clock = Clock()
    topic = TopicConfig(name="OpenAI", keywords=("OpenAI",), min_sources=2)
    handle = _handler(redis, (topic,), clock)
    story = Story("s2")
    await handle(story.add_article(1, "en", "wire", "OpenAI news.", clock.now))
    assert await _alerts(redis) == []
    # the second outlet does not name the topic: the story matched already, and is now large
    await handle(story.add_article(2, "en", "paper", "Unrelated words here.", clock.now))
    ((alert,),) = [await _alerts(redis)]
    assert alert.kind == "new" and set(alert.sources) == {"wire", "paper"}


async def test_alerts_older_than_the_retention_leave_both_streams(redis: aioredis.Redis) -> None:
    clock = Clock()
    stream = topic_alerts_stream("OpenAI")
    for key in (ALERTS, stream):
        await redis.xadd(key, {DATA_FIELD: b"{}"}, id="1000-0")  # an alert from 1970
    handle = _handler(redis, (TopicConfig(name="OpenAI", keywords=("OpenAI",)),), clock)
    await handle(Story("s3").add_article(1, "en", "wire", "OpenAI news.", clock.now))
    for key in (ALERTS, stream):
        ((entry_id, fields),) = await redis.xrange(key)
        assert entry_id != b"1000-0"
        assert TopicAlert.model_validate_json(fields[DATA_FIELD]).kind == "new"


async def test_matching_many_topics_leaves_the_event_loop_serving(redis: aioredis.Redis) -> None:
    """500 topics of 100 terms (the limits) take a while to compile and match: other work
    of the process (health checks, SSE, other consumers) goes on meanwhile."""
    topics = tuple(
        TopicConfig(name=f"topic {n}", keywords=tuple(f"w{n}x{k} p{k}" for k in range(100)))
        for n in range(500)
    )
    handler = _handler(redis, topics, Clock())
    event = Story("s-busy").add_article(
        1, "en", "a", "The market rallied as rates held. " * 50, START
    )
    ticks = 0

    async def other_work() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    ticker = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    before = ticks
    await handler(event)
    served = ticks - before
    ticker.cancel()
    assert served > 100, f"the event loop ran {served} times while matching"
