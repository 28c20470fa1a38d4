"""Topic names and terms as users write them: one readable name, one stream, bounded size."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from contracts import NewsmonConfig, TopicConfig
from contracts.streams import topic_alerts_stream
from contracts.topics import MAX_TERMS_PER_TOPIC


@pytest.mark.parametrize(
    ("name", "stream"),
    [
        ("Nuclear energy", "{alerts}.nuclear-energy"),
        ("OPENAI", "{alerts}.openai"),
        ("日本", "{alerts}.日本"),
        ("مرحبا", "{alerts}.مرحبا"),
        ("Ｆｕｌｌ ｗｉｄｔｈ", "{alerts}.full-width"),  # noqa: RUF001
    ],
)
def test_a_topic_in_any_script_gets_a_stream_of_its_own_name(name: str, stream: str) -> None:
    assert topic_alerts_stream(TopicConfig(name=name, keywords=("x",)).name) == stream


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("a\x00b", "U+0000"),
        ("two\nlines", "U+000A"),
        ("evil\u202etxt", "U+202E"),
        ("x" * 10_000, "at most 80"),
        ("   ", "blank"),
        ("!!!", "letter or a digit"),
    ],
)
def test_an_unreadable_topic_name_is_refused_with_its_reason(name: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(reason)):
        TopicConfig(name=name, keywords=("x",))


def test_a_topic_with_too_many_terms_is_refused() -> None:
    keywords = tuple(f"word{n}" for n in range(MAX_TERMS_PER_TOPIC + 1))
    with pytest.raises(ValidationError, match=f"at most {MAX_TERMS_PER_TOPIC}"):
        TopicConfig(name="big", keywords=keywords)


def test_topics_that_would_share_a_stream_are_refused_together() -> None:
    with pytest.raises(ValidationError, match=re.escape("{alerts}.openai")):
        NewsmonConfig(
            topics=(
                TopicConfig(name="OpenAI", keywords=("OpenAI",)),
                TopicConfig(name="OPENAI", keywords=("OpenAI",)),
            )
        )
