"""What the stories read API answers (`GET /stories`, `GET /stories/{id}`, `GET /alerts`).

The alerter keeps one `StoryRecord` per story (the latest snapshot it saw, plus the topics the
story matched) and one `StoryArticle` per article; the API adds the title chosen for the
caller's language. `newsmon stories` prints the same models.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from contracts.messages import JoinReason, TopicAlert


class ApiModel(BaseModel):
    """Base of API answers: unknown fields refused, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StoryArticle(ApiModel):
    """One article of a story, and how it joined."""

    article_id: str
    title: str
    url: str
    lang: str | None = Field(description="ISO 639-1 code, or None when unknown.")
    source: str = Field(description="The outlet (configured source) it came from.")
    published: datetime | None = Field(description="When the outlet says it was published.")
    fetched_at: datetime
    joined_at: datetime
    reason: JoinReason = Field(
        description="new: it started the story; exact: a copy; near_duplicate: an edited"
        " copy; translation: the same article in another language."
    )
    similarity: float = Field(ge=0.0, le=1.0, description="Its similarity to the story, 0..1.")


class StoryRecord(ApiModel):
    """A story as the read API keeps it."""

    story_id: str
    titles: dict[str, str] = Field(
        description="Language (or '?' when unknown) -> title of the story's first article in it."
    )
    first_title: str = Field(description="Title of the story's first article.")
    languages: tuple[str, ...]
    sources: tuple[str, ...] = Field(description="Outlets, in the order they joined.")
    article_count: int = Field(ge=1)
    first_seen: datetime
    last_seen: datetime
    topics: tuple[str, ...] = Field(description="Topics whose terms the story matched.")


class StorySummary(StoryRecord):
    """An item of `GET /stories`: the record and the title for the caller's language."""

    title: str
    title_lang: str | None = Field(description="Language of `title`, None when unknown.")


class StoryDetail(StorySummary):
    """`GET /stories/{id}`: the story and its articles in the order they joined."""

    articles: tuple[StoryArticle, ...]


class StoryPage(ApiModel):
    """`GET /stories`: newest activity first; pass `next_cursor` as `cursor` for more."""

    items: tuple[StorySummary, ...]
    next_cursor: str | None = Field(description="None when there is nothing older.")


class AlertItem(ApiModel):
    """An alert as it was sent, with its id on the alerts stream."""

    id: str = Field(description="Stream entry id; the same as the SSE event id.")
    alert: TopicAlert


class AlertPage(ApiModel):
    """`GET /alerts`: newest first; pass `next_cursor` as `cursor` for more."""

    items: tuple[AlertItem, ...]
    next_cursor: str | None
