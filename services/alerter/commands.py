"""`newsmon stories`: the newest stories, or one story, read from the stories read model."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import TextIO

from contracts.stories import StoryDetail, StorySummary
from services.alerter.settings import AlerterSettings
from services.alerter.stories import StoryView
from services.alerter.views import QueryError, detail, parse_story_query, summary
from services.common.clock import Clock
from services.common.redis import connect

TITLE_WIDTH = 60


def stories_table(stories: Sequence[StorySummary]) -> str:
    """Stories as a terminal table: id, last activity, articles, languages, title."""
    lines = [f"{'STORY':<16} {'LAST SEEN (UTC)':<16} {'ART':>3}  {'LANGUAGES':<14} TITLE"]
    for story in stories:
        languages = _short(",".join(story.languages) or "?", 14)
        lines.append(
            f"{story.story_id:<16} {story.last_seen:%Y-%m-%d %H:%M} {story.article_count:>3}"
            f"  {languages:<14} {_short(story.title, TITLE_WIDTH)}"
        )
    return "\n".join(lines)


def story_text(story: StoryDetail) -> str:
    """One story and its articles, for the terminal."""
    lines = [
        f"{story.story_id}  {story.title}",
        f"  {story.article_count} article(s); languages: {', '.join(story.languages) or '?'};"
        f" outlets: {', '.join(story.sources)}",
        f"  first seen {story.first_seen:%Y-%m-%d %H:%M}, last {story.last_seen:%Y-%m-%d %H:%M}"
        f" UTC; topics: {', '.join(story.topics) or '-'}",
    ]
    for article in story.articles:
        how = (
            article.reason
            if article.reason == "new"
            else f"{article.reason} {article.similarity:.2f}"
        )
        lines.append(f"  [{article.lang or '??'}] {article.title}  ({article.source}; {how})")
        lines.append(f"       {article.url}")
    return "\n".join(lines)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


async def run_stories_command(url: str, args: argparse.Namespace, out: TextIO, clock: Clock) -> int:
    """`newsmon stories [ID] [--topic T] [--lang L] [--since 2h] [--limit N] [--json]`;
    returns the exit status."""
    settings = AlerterSettings()
    redis = connect(url)
    view = StoryView(
        redis, key_prefix=settings.key_prefix, retention_seconds=settings.stories_retention_seconds
    )
    wanted = (args.lang,) if args.lang else ()
    try:
        if args.story_id:
            found = await view.story(args.story_id)
            if found is None:
                out.write(f"no story {args.story_id} (unknown, or past the retention)\n")
                return 1
            story = detail(*found, wanted)
            out.write((story.model_dump_json(indent=2) if args.json else story_text(story)) + "\n")
            return 0
        params = {
            name: str(value)
            for name, value in (
                ("topic", args.topic),
                ("lang", args.lang),
                ("since", args.since),
                ("limit", args.limit),
            )
            if value is not None
        }
        try:
            query = parse_story_query(params, clock())
        except QueryError as exc:
            out.write(f"newsmon stories: {exc}\n")
            return 2
        listing = await view.page(query, clock())
        stories = [summary(record, wanted) for record in listing.records]
        if args.json:
            out.write(json.dumps([s.model_dump(mode="json") for s in stories], ensure_ascii=False))
            out.write("\n")
        else:
            out.write(stories_table(stories) + "\n")
        return 0
    finally:
        await redis.aclose()
