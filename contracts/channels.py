"""The catalogue of channels: every stream, the message it carries, who writes and
reads it. The AsyncAPI document (`contracts/asyncapi.json`) is generated from it."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from contracts.messages import CleanArticle, DeadLetter, RawArticle, StoryEvent, TopicAlert
from contracts.streams import (
    ALERTS,
    ARTICLES_CLEAN,
    ARTICLES_RAW,
    CONSUMED_STREAMS,
    STORIES_EVENTS,
    dead_letter_stream,
    hash_tag,
)


@dataclass(frozen=True, slots=True)
class Channel:
    """A Redis stream and its contract."""

    address: str
    message: type[BaseModel]
    producer: str
    consumer: str | None
    description: str


CHANNELS: tuple[Channel, ...] = (
    Channel(ARTICLES_RAW, RawArticle, "fetcher", "cleaner", "Each new feed item's page, once."),
    Channel(ARTICLES_CLEAN, CleanArticle, "cleaner", "detector", "The article extracted."),
    Channel(STORIES_EVENTS, StoryEvent, "detector", "alerter", "An article joined a story."),
    Channel(ALERTS, TopicAlert, "alerter", "subscribers", "Every alert, all topics."),
    Channel(
        f"{hash_tag(ALERTS)}.{{topic}}",
        TopicAlert,
        "alerter",
        "subscribers",
        "The alerts of one topic: `{topic}` is the topic's slug; the braces of `{alerts}` are"
        " part of the name (a Redis Cluster hash tag: the stream lives beside `alerts`).",
    ),
    *(
        Channel(
            dead_letter_stream(stream),
            DeadLetter,
            group,
            None,
            f"What failed on {stream}, with the reason; `newsmon dlq` reads it. The braces are"
            " part of the name (a Redis Cluster hash tag: it lives beside the stream).",
        )
        for stream, group in CONSUMED_STREAMS.items()
    ),
)
