"""Messages on the wire between services (pydantic v2).

Every message carries `schema_version`; a consumer validates what it receives
against these models and parks anything that does not fit in the stream's
dead-letter stream with the validation error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Final = 1


class WireModel(BaseModel):
    """Base of every message: unknown fields are refused, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION


class RawArticle(WireModel):
    """A page as the fetcher downloaded it, once per new feed item."""

    article_id: str = Field(min_length=1, description="Stable id: hash of the canonical URL.")
    url: str = Field(min_length=1, description="Item URL as listed in the feed, canonicalised.")
    final_url: str = Field(min_length=1, description="URL after redirects.")
    source: str = Field(min_length=1, description="Name of the configured source.")
    feed_url: str | None = None
    fetched_at: datetime
    http_status: int = 200
    content_type: str | None = None
    html: str = Field(description="The page's HTML, decoded to text.")
    lang_hint: str | None = Field(default=None, description="Language the source declares.")
    feed_title: str | None = None
    feed_published: datetime | None = None
    tags: tuple[str, ...] = ()


class CleanArticle(WireModel):
    """The article extracted from a page: main text and metadata."""

    article_id: str = Field(min_length=1)
    url: str = Field(min_length=1)
    canonical_url: str | None = None
    source: str = Field(min_length=1)
    site_name: str | None = None
    title: str = ""
    text: str = ""
    lang: str | None = Field(default=None, description="ISO 639-1 code, or None if unknown.")
    published: datetime | None = None
    author: str | None = None
    word_count: int = Field(default=0, ge=0)
    fetched_at: datetime
    cleaned_at: datetime
    empty_reason: str | None = Field(
        default=None, description="Why no article text was found; None when there is text."
    )
    tags: tuple[str, ...] = ()


JoinReason = Literal["new", "exact", "near_duplicate", "translation"]


class StoryMember(WireModel):
    """One article of a story and why it joined."""

    article_id: str
    lang: str | None = None
    source: str
    url: str
    title: str = ""
    reason: JoinReason
    similarity: float = Field(ge=0.0, le=1.0, description="Similarity to the story, 0..1.")
    joined_at: datetime


class StorySnapshot(WireModel):
    """A story as it stands after an assignment."""

    story_id: str
    members: tuple[StoryMember, ...]
    languages: tuple[str, ...]
    sources: tuple[str, ...]
    first_seen: datetime
    last_seen: datetime
    closes_at: datetime | None = Field(
        default=None, description="When the story stops accepting articles if none joins."
    )


class StoryEvent(WireModel):
    """An article joined a story (`created` for the story's first article)."""

    event_id: str = Field(description="Idempotency key: story id and article id.")
    kind: Literal["created", "updated"]
    story: StorySnapshot
    article: CleanArticle = Field(description="The article that was just assigned.")
    reason: JoinReason
    similarity: float = Field(ge=0.0, le=1.0)
    occurred_at: datetime


class MatchedTerm(WireModel):
    """A topic term found in a story, and where."""

    term: str
    article_id: str
    field: Literal["title", "text"]
    excerpt: str = ""


class TopicAlert(WireModel):
    """A story matched a topic: sent once per (story, topic)."""

    alert_id: str = Field(description="Idempotency key: story id, topic and update number.")
    kind: Literal["new", "update"] = Field(
        default="new", description="`new`: first alert of the story; `update`: it spread."
    )
    topic: str
    story_id: str
    title: str
    languages: tuple[str, ...]
    sources: tuple[str, ...]
    urls: tuple[str, ...]
    matched: tuple[MatchedTerm, ...]
    created_at: datetime
    update_number: int = Field(default=0, ge=0, description="0 for `new`, then 1, 2...")
    added_languages: tuple[str, ...] = Field(
        default=(), description="Languages the story gained since the previous alert."
    )
    added_sources: tuple[str, ...] = Field(
        default=(), description="Sources (outlets) the story gained since the previous alert."
    )


class DeadLetter(WireModel):
    """A message that could not be processed, parked with the reason."""

    stream: str
    entry_id: str
    service: str
    reason: str = Field(description="Short class of failure, e.g. 'invalid_message'.")
    error: str = Field(description="The error, human readable.")
    payload: str = Field(description="The original message body (UTF-8, invalid bytes escaped).")
    failed_at: datetime
