"""Alerter handler: a StoryEvent in; the story recorded for readers (`StoryView`), at most one
new alert per (story, topic) and debounced update alerts out. Per-story state lives in one
Redis hash per story: `m:<topic>` the first explanation of a match, `a:<topic>` what the
last alert said, `n:<topic>` its update number (the compare-and-set guard of update alerts)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib.resources import files

import redis.asyncio as aioredis
from pydantic import TypeAdapter

from contracts import MatchedTerm, StoryEvent, TopicAlert
from contracts.streams import ALERTS, ALERTS_RETENTION_SECONDS, topic_alerts_stream
from services.alerter.catalog import Catalog
from services.alerter.core import (
    AlertState,
    UpdatePolicy,
    new_alert,
    state_after,
    story_is_large_enough,
    update_alert,
)
from services.alerter.keys import alerter_key
from services.alerter.metrics import AlerterMetrics
from services.alerter.stories import StoryView
from services.common.bus import DATA_FIELD, encode
from services.common.clock import Clock

SEND_ONCE = files("services.alerter").joinpath("send_once.lua").read_text("utf-8")
"""Record an alert and publish it on both streams in one atomic step (see the script)."""

_MATCHED = TypeAdapter(tuple[MatchedTerm, ...])


def encode_state(state: AlertState) -> str:
    return json.dumps(
        {
            "update_number": state.update_number,
            "languages": list(state.languages),
            "sources": list(state.sources),
            "alerted_at": state.alerted_at.isoformat(),
        }
    )


def decode_state(raw: bytes) -> AlertState:
    data = json.loads(raw)
    return AlertState(
        update_number=int(data["update_number"]),
        languages=tuple(data["languages"]),
        sources=tuple(data["sources"]),
        alerted_at=datetime.fromisoformat(data["alerted_at"]),
    )


class AlertHandler:
    """Matches each new article of a story against every topic; alerts per the policy."""

    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        catalog: Catalog,
        metrics: AlerterMetrics,
        clock: Clock,
        key_prefix: str,
        view: StoryView,
        sent_ttl_seconds: int,
        policy: UpdatePolicy,
        before_first: Callable[[], Awaitable[None]] | None = None,
        alerts_retention_seconds: float = ALERTS_RETENTION_SECONDS,
    ) -> None:
        self._redis = redis
        self._catalog = catalog
        self._metrics = metrics
        self._clock = clock
        self._key_prefix = key_prefix
        self._view = view
        self._sent_ttl_seconds = sent_ttl_seconds
        self._policy = policy
        self._before_first = before_first
        self._alerts_retention_ms = int(alerts_retention_seconds * 1000)
        self._send_once = redis.register_script(SEND_ONCE)

    async def __call__(self, event: StoryEvent) -> None:
        if self._before_first is not None:
            await self._before_first()
            self._before_first = None
        await self._catalog.refresh()
        compiled = self._catalog.compiled
        article = event.article
        # in a thread: with hundreds of topics, compiling them for a new language and
        # matching take a while, and the event loop keeps serving meanwhile
        matches = await asyncio.to_thread(
            compiled.match,
            article_id=article.article_id,
            title=article.title,
            text=article.text,
            lang=article.lang,
            source=article.source,
            tags=article.tags,
        )
        story_key = alerter_key(self._key_prefix, "story", event.story.story_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            for match in matches:
                pipe.hsetnx(story_key, f"m:{match.topic}", _MATCHED.dump_json(match.matched))
            pipe.expire(story_key, self._sent_ttl_seconds)
            pipe.hgetall(story_key)
            *_, state = await pipe.execute()
        matched_topics = [name[2:].decode() for name in state if name.startswith(b"m:")]
        await self._view.record(event, matched_topics, self._clock())
        for topic in compiled.topics:
            raw_matched = state.get(f"m:{topic.name}".encode())
            if raw_matched is None or not story_is_large_enough(topic, event.story):
                continue
            matched = _MATCHED.validate_json(raw_matched)
            raw_state = state.get(f"a:{topic.name}".encode())
            now = self._clock()
            if raw_state is None:
                alert: TopicAlert | None = new_alert(event.story, topic.name, matched, now)
                expected = ""
            elif topic.updates:
                previous = decode_state(raw_state)
                alert = update_alert(event.story, topic.name, matched, previous, self._policy, now)
                expected = str(previous.update_number)
            else:
                alert = None
                expected = ""
            if alert is None:
                continue
            await self._send(alert, event, story_key, expected)

    async def _send(
        self, alert: TopicAlert, event: StoryEvent, story_key: str, expected: str
    ) -> None:
        sent = await self._send_once(
            keys=[
                alerter_key(self._key_prefix, "sent", alert.alert_id),
                ALERTS,
                topic_alerts_stream(alert.topic),
                story_key,
            ],
            args=[
                encode(alert),
                event.event_id,
                self._sent_ttl_seconds,
                DATA_FIELD,
                f"a:{alert.topic}",
                encode_state(state_after(alert)),
                expected,
                f"n:{alert.topic}",
                alert.update_number,
                self._alerts_retention_ms,
            ],
        )
        if sent:
            self._metrics.alerts.labels(alert.topic, alert.kind).inc()
            self._metrics.fetch_to_alert_seconds.observe(
                max((alert.created_at - event.article.fetched_at).total_seconds(), 0.0)
            )
        else:
            self._metrics.suppressed.labels(alert.topic).inc()
