"""The stories read model, pure: what is kept of each story event, which stories a query
wants, which title a reader gets, and the cursors of paged answers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from contracts import StoryEvent
from contracts.stories import StoryArticle, StoryDetail, StoryRecord, StorySummary
from contracts.streams import topic_slug
from services.alerter.core import fold

UNKNOWN_LANGUAGE = "?"
MAX_PAGE_ITEMS = 100
DEFAULT_PAGE_ITEMS = 20
MAX_QUERY_CHARS = 200
MAX_QUERY_WORDS = 10
MAX_LANGUAGES_WANTED = 50
MAX_TOPIC_PARAM_CHARS = 200
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8})?$")
_RELATIVE = re.compile(r"^([0-9]{1,6})([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_CURSOR = re.compile(r"^([0-9]{1,15}):([A-Za-z0-9_-]{1,64})$")


class QueryError(ValueError):
    """A query parameter a client sent is not valid; the message says which and why."""


def story_record(event: StoryEvent, topics: Iterable[str]) -> StoryRecord:
    """What the read model keeps of the story after `event`: its latest snapshot, the title
    of its first article in each language, and the topics it matched so far."""
    story = event.story
    titles: dict[str, str] = {}
    for member in story.members:
        if member.title:
            titles.setdefault(member.lang or UNKNOWN_LANGUAGE, member.title)
    return StoryRecord(
        story_id=story.story_id,
        titles=titles,
        first_title=story.members[0].title if story.members else event.article.title,
        languages=story.languages,
        sources=story.sources,
        article_count=max(len(story.members), 1),
        first_seen=story.first_seen,
        last_seen=story.last_seen,
        topics=tuple(sorted(topics)),
    )


def story_article(event: StoryEvent) -> StoryArticle:
    """The article `event` placed, as `GET /stories/{id}` lists it."""
    article = event.article
    return StoryArticle(
        article_id=article.article_id,
        title=article.title,
        url=article.canonical_url or article.url,
        lang=article.lang,
        source=article.source,
        published=article.published,
        fetched_at=article.fetched_at,
        joined_at=event.occurred_at,
        reason=event.reason,
        similarity=event.similarity,
    )


def preferred_languages(lang: str | None, accept_language: str | None) -> tuple[str, ...]:
    """Languages a reader asked for, best first: `lang` (comma separated), else the
    `Accept-Language` header by its q-values ("fr-CH, fr;q=0.9, en;q=0.8" -> fr, en)."""
    if lang:
        return tuple(dict.fromkeys(_primary(part) for part in lang.split(",") if part.strip()))
    if not accept_language:
        return ()
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")[:MAX_LANGUAGES_WANTED]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        tag = tag.strip().lower()
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, position, _primary(tag)))
    return tuple(dict.fromkeys(tag for _, _, tag in sorted(weighted)))


def _primary(tag: str) -> str:
    """The language of a language tag: "pt-BR" -> "pt"."""
    return tag.strip().lower().split("-")[0]


def choose_title(record: StoryRecord, preferred: Iterable[str]) -> tuple[str, str | None]:
    """The story's title in the first preferred language it has, else its first title;
    with the title's language (None when unknown)."""
    for lang in preferred:
        if lang in record.titles:
            return record.titles[lang], lang
    for lang, title in record.titles.items():
        if title == record.first_title:
            return title, None if lang == UNKNOWN_LANGUAGE else lang
    return record.first_title, None


def summary(record: StoryRecord, preferred: Iterable[str]) -> StorySummary:
    title, lang = choose_title(record, preferred)
    return StorySummary(**record.model_dump(), title=title, title_lang=lang)


def detail(
    record: StoryRecord, articles: Iterable[StoryArticle], preferred: Iterable[str]
) -> StoryDetail:
    ordered = sorted(articles, key=lambda a: (a.joined_at, a.article_id))
    title, lang = choose_title(record, preferred)
    return StoryDetail(**record.model_dump(), title=title, title_lang=lang, articles=tuple(ordered))


@dataclass(frozen=True, slots=True)
class StoryQuery:
    """Which stories a reader wants, newest activity first."""

    topic: str | None = None
    lang: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_languages: int = 1
    min_sources: int = 1
    words: tuple[str, ...] = ()
    """Folded words that must all be in one of the story's titles."""
    limit: int = DEFAULT_PAGE_ITEMS
    after: tuple[int, str] | None = None
    """Continue after this (last activity in ms, story id): the previous page's last item."""


def wanted(record: StoryRecord, query: StoryQuery) -> bool:
    """Whether `record` passes every filter of `query` (the time range is the index's)."""
    if query.topic is not None and topic_slug(query.topic) not in {
        topic_slug(t) for t in record.topics
    }:
        return False
    if query.lang is not None and query.lang not in record.languages:
        return False
    if len(record.languages) < query.min_languages or len(record.sources) < query.min_sources:
        return False
    return not query.words or has_words(searchable_titles(record), query.words)


def searchable_titles(record: StoryRecord) -> str:
    """The story's titles folded as topic matching folds text, one a line."""
    return "\n".join(fold(title).replace("\n", " ") for title in record.titles.values())


def has_words(folded_titles: str, words: tuple[str, ...]) -> bool:
    """Whether one of the folded titles holds every word (all titles hold no words)."""
    if not words:
        return True
    return any(all(word in title for word in words) for title in folded_titles.split("\n"))


def query_words(q: str) -> tuple[str, ...]:
    """The words of a search, folded as topic matching folds text."""
    if len(q) > MAX_QUERY_CHARS:
        raise QueryError(f"q: at most {MAX_QUERY_CHARS} characters")
    words = tuple(dict.fromkeys(fold(q).split()))
    if len(words) > MAX_QUERY_WORDS:
        raise QueryError(f"q: at most {MAX_QUERY_WORDS} words")
    return words


def parse_time(value: str, now: datetime, name: str) -> datetime:
    """A point in time given as ISO 8601 ("2026-12-06T08:00:00Z"; UTC when no offset) or as
    an age ("30m", "2h", "7d": that long before `now`)."""
    relative = _RELATIVE.match(value)
    if relative:
        return now - timedelta(seconds=int(relative[1]) * _UNIT_SECONDS[relative[2]])
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise QueryError(f"{name}: an ISO 8601 time or an age such as 2h") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def bounded_int(params: Mapping[str, str], name: str, default: int, top: int) -> int:
    """Parameter `name` as a whole number from 1 to `top` (`default` when absent)."""
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= top:
        raise QueryError(f"{name}: a whole number from 1 to {top}")
    return int(raw)


def topic_param(params: Mapping[str, str]) -> str | None:
    """The `topic` parameter, bounded like a topic name's longest spelling."""
    topic = params.get("topic")
    if topic is not None and not 1 <= len(topic) <= MAX_TOPIC_PARAM_CHARS:
        raise QueryError(f"topic: 1 to {MAX_TOPIC_PARAM_CHARS} characters")
    return topic


def parse_story_query(params: Mapping[str, str], now: datetime) -> StoryQuery:
    """The query of `GET /stories` from its parameters; QueryError says what is wrong."""
    lang = params.get("lang")
    if lang is not None and not _LANGUAGE.match(lang.lower()):
        raise QueryError("lang: a language code such as en or pt-br")
    topic = topic_param(params)
    cursor = params.get("cursor")
    return StoryQuery(
        topic=topic,
        lang=_primary(lang) if lang else None,
        since=parse_time(params["since"], now, "since") if "since" in params else None,
        until=parse_time(params["until"], now, "until") if "until" in params else None,
        min_languages=bounded_int(params, "min_languages", 1, MAX_LANGUAGES_WANTED),
        min_sources=bounded_int(params, "min_sources", 1, 1000),
        words=query_words(params.get("q", "")),
        limit=bounded_int(params, "limit", DEFAULT_PAGE_ITEMS, MAX_PAGE_ITEMS),
        after=decode_cursor(cursor) if cursor is not None else None,
    )


def activity_ms(moment: datetime) -> int:
    """A story's place in the listing: its last activity, in milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def encode_cursor(score_ms: int, story_id: str) -> str:
    return f"{score_ms}:{story_id}"


def decode_cursor(cursor: str) -> tuple[int, str]:
    match = _CURSOR.match(cursor)
    if match is None:
        raise QueryError("cursor: pass back the next_cursor of a previous page")
    return int(match[1]), match[2]
