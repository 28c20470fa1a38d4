"""What a reader gets from the stories read model: titles in their language, filters, times
and cursors they can type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.stories import StoryRecord
from services.alerter.views import (
    QueryError,
    StoryQuery,
    choose_title,
    decode_cursor,
    encode_cursor,
    parse_story_query,
    preferred_languages,
    query_words,
    wanted,
)

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
RECORD = StoryRecord(
    story_id="s-0123456789ab",
    titles={"pt": "Energia nuclear: o acordo", "fr": "Énergie nucléaire : l'accord"},
    first_title="Energia nuclear: o acordo",
    languages=("pt", "fr"),
    sources=("a", "b"),
    article_count=2,
    first_seen=NOW,
    last_seen=NOW,
    topics=("Nuclear energy",),
)


def test_the_title_is_in_the_language_asked_for_else_the_first_one() -> None:
    assert choose_title(RECORD, preferred_languages("fr", None)) == (RECORD.titles["fr"], "fr")
    header = "de-CH, en;q=0.9, fr;q=0.8, pt;q=0"
    assert preferred_languages(None, header) == ("de", "en", "fr")
    assert choose_title(RECORD, preferred_languages(None, header))[1] == "fr"
    assert choose_title(RECORD, ("ja",)) == (RECORD.first_title, "pt")


def test_filters_fold_words_and_topic_names_as_the_alerter_does() -> None:
    assert wanted(RECORD, StoryQuery(words=query_words("ENERGIE nucleaire")))
    assert not wanted(RECORD, StoryQuery(words=query_words("énergie acordo")))  # two titles
    assert wanted(RECORD, StoryQuery(topic="NUCLEAR ENERGY"))
    assert not wanted(RECORD, StoryQuery(lang="en"))
    assert not wanted(RECORD, StoryQuery(min_languages=3))
    assert wanted(RECORD, StoryQuery(min_sources=2))


def test_times_are_iso_or_an_age_and_cursors_round_trip() -> None:
    query = parse_story_query({"since": "2h", "until": "2026-12-06T07:30:00"}, NOW)
    assert query.since == NOW - timedelta(hours=2)
    assert query.until == datetime(2026, 12, 6, 7, 30, tzinfo=UTC)
    assert decode_cursor(encode_cursor(1765000000000, RECORD.story_id)) == (
        1765000000000,
        RECORD.story_id,
    )


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "101"},
        {"limit": "-1"},
        {"since": "yesterday"},
        {"lang": "english please"},
        {"cursor": "1:two:parts"},
        {"min_languages": "0"},
        {"q": "x" * 201},
        {"topic": ""},
    ],
)
def test_a_bad_parameter_is_named_in_the_error(params: dict[str, str]) -> None:
    with pytest.raises(QueryError, match=next(iter(params))):
        parse_story_query(params, NOW)
