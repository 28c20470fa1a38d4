"""Names of every Redis stream and consumer group on the wire.

Services refer to streams only through these names, never through inline
strings, so a rename is one edit and a newcomer finds every channel here.
"""

from __future__ import annotations

import re
import unicodedata

ARTICLES_RAW = "articles.raw"
"""Fetcher -> cleaner: one `RawArticle` per new item."""

ARTICLES_CLEAN = "articles.clean"
"""Cleaner -> detector: one `CleanArticle` per raw article."""

STORIES_EVENTS = "stories.events"
"""Detector -> alerter: one `StoryEvent` per article assigned to a story."""

ALERTS = "alerts"
"""Alerter -> subscribers: every `TopicAlert`, all topics."""

DLQ_SUFFIX = ".dlq"

GROUP_CLEANER = "cleaner"
GROUP_DETECTOR = "detector"
GROUP_ALERTER = "alerter"

CONSUMED_STREAMS: dict[str, str] = {
    ARTICLES_RAW: GROUP_CLEANER,
    ARTICLES_CLEAN: GROUP_DETECTOR,
    STORIES_EVENTS: GROUP_ALERTER,
}
"""Each consumed stream and the consumer group that reads it."""

DEAD_LETTER_RETENTION_SECONDS = 30 * 86_400
"""How long a dead letter stays on its `.dlq` stream by default (seconds): time to look at it,
fix the cause and replay it; older ones are dropped as new ones arrive."""
ALERTS_RETENTION_SECONDS = 30 * 86_400
"""How long alerts stay on `alerts` and `{alerts}.<topic>` by default (seconds): the alert
history subscribers can resume from; older entries are dropped as new alerts arrive."""

_TOPIC_SLUG = re.compile(r"[^\w-]+")


def hash_tag(name: str) -> str:
    """`name` as a Redis Cluster hash tag: keys that contain `{name}` share the hash slot of
    the key `name` itself, so one script or transaction can touch them and `name` together.
    A name that holds a tag already is kept as it is."""
    return name if "{" in name else "{" + name + "}"


def dead_letter_stream(stream: str) -> str:
    """The dead-letter stream that holds what failed on `stream`: `{articles.raw}.dlq`, in
    `stream`'s hash slot, so a replay moves a letter back in one transaction on a cluster."""
    return hash_tag(stream) + DLQ_SUFFIX


def stream_of_dead_letters(dlq: str) -> str:
    """The stream whose dead letters `dlq` holds (`{articles.raw}.dlq` -> `articles.raw`)."""
    name = dlq.removesuffix(DLQ_SUFFIX)
    bare = name.removeprefix("{").removesuffix("}")
    return bare if hash_tag(bare) == name else name


def topic_slug(topic: str) -> str:
    """A topic name as it appears in a stream name: letters and digits of any script, case
    folded (NFKC), `-` for spaces and punctuation: "Nuclear energy" -> "nuclear-energy",
    "OpenAI" and "OPENAI" -> "openai", "日本" -> "日本". Topics whose names give one slug share
    one stream, so a configuration or API that holds both is refused."""
    folded = unicodedata.normalize("NFKC", topic).casefold()
    slug = _TOPIC_SLUG.sub("-", folded).strip("-")
    return slug or "topic"


def topic_alerts_stream(topic: str) -> str:
    """The stream that carries the alerts of one topic: `{alerts}.<topic>`, in the hash slot
    of `alerts`, so an alert is published on both in one atomic step on a cluster too."""
    return f"{hash_tag(ALERTS)}.{topic_slug(topic)}"
