"""Batch grouping on the live decision path: for backfills, `newsmon group` and benchmarks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from services.detector.core import DEFAULT_PARAMS, ArticleIn, GroupingParams
from services.detector.index import MemoryStoryIndex, StoryIndex, place_article


def _optional_text(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} must be a string, got {type(value).__name__}")
    return value


def article_from_json(obj: Mapping[str, Any]) -> ArticleIn:
    """An article from one JSONL object with `id`, `title`, `text` and optional `lang`, `url`,
    `published` (ISO 8601, UTC when no offset) and `source`; ValueError names what is wrong."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    article_id = obj.get("id")
    if isinstance(article_id, int) and not isinstance(article_id, bool):
        article_id = str(article_id)
    if not isinstance(article_id, str) or not article_id:
        raise ValueError("missing or empty 'id' (a non-empty string)")
    for required in ("title", "text"):
        if not isinstance(obj.get(required), str):
            raise ValueError(f"article {article_id!r}: missing or non-string {required!r}")
    published_text = _optional_text(obj, "published")
    published = None
    if published_text:
        try:
            published = datetime.fromisoformat(published_text)
        except ValueError as exc:
            raise ValueError(
                f"article {article_id!r}: 'published' is not ISO 8601: {published_text!r}"
            ) from exc
    if published is not None and published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    return ArticleIn(
        article_id=article_id,
        title=obj["title"],
        text=obj["text"],
        lang=_optional_text(obj, "lang") or None,
        source=_optional_text(obj, "source") or "unknown",
        url=_optional_text(obj, "url") or "",
        published=published,
    )


async def group_articles(
    articles: Iterable[ArticleIn],
    index: StoryIndex | None = None,
    now: datetime | None = None,
    params: GroupingParams = DEFAULT_PARAMS,
) -> list[tuple[str, str]]:
    """(article_id, story_id) in input order, placing articles as a stream in that order.

    Each article's time is its `published` date when known, else `now` (default: the current
    time, read once).
    """
    story_index: StoryIndex = index if index is not None else MemoryStoryIndex()
    fallback_time = now if now is not None else datetime.now(UTC)
    assignments: list[tuple[str, str]] = []
    for article in articles:
        placement = await place_article(
            story_index, article, article.published or fallback_time, params=params
        )
        assignments.append((article.article_id, placement.story_id))
    return assignments
