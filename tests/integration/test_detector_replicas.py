"""Two detector processes on one consumer group: copies of one story handled at the same
instant by different replicas still make one story."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from harness import ServiceProcess

from contracts import CleanArticle, StoryEvent
from contracts.streams import ARTICLES_CLEAN, STORIES_EVENTS, dead_letter_stream
from services.common.bus import DATA_FIELD, publish

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

STORIES = 500
COPIES = 4
NOW = datetime(2025, 10, 10, 12, 0, tzinfo=UTC)


def _story_text(rng: random.Random, vocabulary: list[str]) -> str:
    """Twelve sentences of random words, naming the story's own people and figures."""
    names = ["".join(rng.choices("bdfgklmnprstvz", k=6)).title() for _ in range(6)]
    figures = [str(rng.randint(100, 99_999)) for _ in range(4)]
    sentences = [
        " ".join([*rng.choices(vocabulary, k=12), rng.choice(names), rng.choice(figures)]) + "."
        for _ in range(12)
    ]
    return " ".join(sentences)


def _copies(story: int, text: str) -> list[CleanArticle]:
    """The wire story, and three syndicated copies: a new headline, a byline, a footer."""
    variants = [
        ("wire", f"story {story}", text),
        ("mirror", f"breaking: story {story}", text),
        ("daily", f"story {story}", f"by our correspondent in the field. {text}"),
        ("weekly", f"story {story}", f"{text} subscribe to our newsletter for more."),
    ]
    return [
        CleanArticle(
            article_id=f"st{story}-c{copy}",
            url=f"https://{source}.example/{story}",
            source=source,
            title=title,
            text=body,
            lang="en",
            fetched_at=NOW,
            cleaned_at=NOW,
        )
        for copy, (source, title, body) in enumerate(variants)
    ]


def _start_detector(config: Path, redis_url: str, logs: Path) -> ServiceProcess:
    """`newsmon serve detector` with the default settings, its output in `logs`."""
    logs.mkdir()
    replica = ServiceProcess("detector", redis_url, config, logs)
    replica.env = {**os.environ, "REDIS_URL": redis_url, "NEWSMON_HTTP_PORT": "0"}
    replica.start()
    return replica


async def _wait_for_events(redis: aioredis.Redis, count: int, timeout: float) -> int:
    """Distinct event ids on the output stream once `count` arrived or `timeout` passed."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    last = "-"
    while len(seen) < count and time.monotonic() < deadline:
        entries = await redis.xrange(STORIES_EVENTS, min=last, count=500)
        fresh = [(entry_id, fields) for entry_id, fields in entries if entry_id != last]
        for entry_id, fields in fresh:
            seen.add(StoryEvent.model_validate_json(fields[DATA_FIELD]).event_id)
            last = entry_id
        if not fresh:
            await asyncio.sleep(0.5)
    return len(seen)


async def test_two_detector_processes_make_every_story_exactly_once(
    redis: aioredis.Redis, redis_url: str, tmp_path: Path
) -> None:
    rng = random.Random(5)
    vocabulary = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=7)) for _ in range(4000)]
    articles = [a for s in range(STORIES) for a in _copies(s, _story_text(rng, vocabulary))]
    order: list[CleanArticle] = []
    for block in range(0, len(articles), COPIES * 10):
        chunk = articles[block : block + COPIES * 10]
        rng.shuffle(chunk)
        order.extend(chunk)
    config = tmp_path / "newsmon.yaml"
    config.write_text("sources: []\n", encoding="utf-8")
    replicas = [_start_detector(config, redis_url, tmp_path / f"replica-{k}") for k in range(2)]
    try:
        for article in order:
            await publish(redis, ARTICLES_CLEAN, article)
        total = await _wait_for_events(redis, len(order), timeout=480)
        logs = [r.log_path(1).read_text(encoding="utf-8")[-1500:] for r in replicas]
        assert total == len(order), "\n".join(logs)
    finally:
        for replica in replicas:
            replica.stop()

    # Delivery is at least once (an entry idle past the reclaim delay is handled again, with
    # the same event id), so events count once per event id, the first time.
    events: dict[str, StoryEvent] = {}
    for _, fields in await redis.xrange(STORIES_EVENTS):
        event = StoryEvent.model_validate_json(fields[DATA_FIELD])
        events.setdefault(event.event_id, event)
    stories_of: dict[str, set[str]] = defaultdict(set)
    for event in events.values():
        stories_of[event.article.article_id.split("-")[0]].add(event.story.story_id)
    assert len(events) == STORIES * COPIES
    assert all(len(ids) == 1 for ids in stories_of.values())
    assert len({next(iter(ids)) for ids in stories_of.values()}) == STORIES
    assert sum(event.kind == "created" for event in events.values()) == STORIES
    assert await redis.xlen(dead_letter_stream(ARTICLES_CLEAN)) == 0
