"""Keywords made only of function words are refused, in any language and script; real
keywords, acronyms written in capitals among them, are not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts import TopicConfig
from contracts.config import ConfigError, load_config
from contracts.keywords import (
    fold,
    function_word_languages,
    function_word_refusal,
    function_words,
    parse_word_list,
)
from contracts.topics import STORED
from services.alerter.core import fold as matcher_fold

REAL_KEYWORDS = Path(__file__).parent / "data" / "real_keywords.txt"
SAMPLE_TOPICS = Path(__file__).parents[2] / "services" / "samples" / "topics.yaml"
EXAMPLE_CONFIG = Path(__file__).parents[2] / "examples" / "newsmon.yaml"


def _real_keywords() -> list[tuple[str, str]]:
    lines = REAL_KEYWORDS.read_text(encoding="utf-8").splitlines()
    rows = [line.split(" ", 1) for line in lines if line and not line.startswith("#")]
    return [(lang, keyword) for lang, keyword in rows]


@pytest.mark.parametrize(
    ("keyword", "languages", "found"),
    [
        ("the", (), ("en",)),
        ("a", ("en",), ("en",)),
        ("of the", (), ("en",)),
        ("Of The", (), ("en",)),
        ("le", ("fr",), ("fr",)),
        ("der", (), ("de",)),
        ("über", ("de",), ("de",)),
        ("и", (), ("ru", "uk")),
        ("的", (), ("zh",)),
        ("の", ("ja",), ("ja",)),
        ("و", ("ar",), ("ar",)),
        ("और", ("hi",), ("hi",)),
        ("det", ("no",), ("no",)),
        ("det", ("nb",), ("no",)),
        ("de la", ("fr-CA",), ("fr",)),
    ],
)
def test_a_keyword_of_function_words_is_found_in_its_languages(
    keyword: str, languages: tuple[str, ...], found: tuple[str, ...]
) -> None:
    assert function_word_languages(keyword, languages) == found


@pytest.mark.parametrize(
    ("keyword", "languages"),
    [
        ("US", ()),
        ("AI", ("it",)),
        ("IT", ("en",)),
        ("WHO", ()),
        ("ИИ", ("ru",)),
        ("the economy", ()),
        ("Uber", ("en",)),  # über is German: an English topic may follow Uber
        ("der", ("en",)),  # only German's
        ("日本", ()),
        ("", ()),
        ("the", ("sw",)),  # a language without a list is not checked
    ],
)
def test_acronyms_content_words_and_other_languages_pass(
    keyword: str, languages: tuple[str, ...]
) -> None:
    assert function_word_languages(keyword, languages) == ()


def test_the_refusal_names_the_keyword_and_the_way_out() -> None:
    refusal = function_word_refusal("us")
    assert refusal is not None
    assert "'us'" in refusal and "en" in refusal and "languages" in refusal
    assert "capitals" in refusal
    assert function_word_refusal("nuclear energy") is None


def test_every_language_file_reads_and_folds_as_the_matcher_does() -> None:
    lists = function_words()
    assert {"en", "fr", "de", "es", "ru", "zh", "ja", "ar", "hi"} <= set(lists)
    assert all(len(words) >= 10 for words in lists.values())
    for words in lists.values():
        assert all(word == matcher_fold(word) for word in words)
    for word in ("Über", "ÉNERGIE", "Ｆｕｌｌ", "ガス", "Привет"):  # noqa: RUF001
        assert fold(word) == matcher_fold(word)
    assert parse_word_list("# a comment\nDer  die\ndas # the\n") == {"der", "die", "das"}


@pytest.mark.parametrize(
    "topic",
    [
        {"name": "t", "keywords": ["the"]},
        {"name": "t", "any_of": ["of the"]},
        {"name": "t", "all_of": [{"term": "der"}], "any_of": ["Kanzler"]},
        {"name": "t", "keywords": ["Kanzler"], "none_of": ["die"]},
        {"name": "t", "entities": ["The"]},
        {"name": "t", "keywords": ["le"], "languages": ["fr"]},
        {"name": "t", "any_of": [{"term": "strike", "variants": {"fr": ["de la"]}}]},
    ],
)
def test_a_topic_holding_a_function_word_keyword_is_refused(topic: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="only function words"):
        TopicConfig.model_validate(topic)


def test_a_stored_topic_written_before_the_rule_still_loads() -> None:
    raw = '{"name": "old", "keywords": ["the"]}'
    assert TopicConfig.model_validate_json(raw, context=STORED).keywords == ("the",)


def test_a_config_file_with_a_function_word_keyword_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newsmon.yaml"
    path.write_text("topics:\n  - name: news\n    keywords: [der, die, das]\n")
    with pytest.raises(ConfigError, match=re.escape("'der'")):
        load_config(path)


def test_no_example_topic_and_no_real_keyword_is_refused() -> None:
    """False refusals: none on the bundled topics, and none on 219 real keywords (companies,
    people, places, acronyms, subjects in 27 languages) checked in their language; two of them
    checked in every language (a topic without `languages`): Uber (über, de) and Como (es,
    pt), which would match most German or Spanish articles there."""
    for path in (SAMPLE_TOPICS, EXAMPLE_CONFIG):
        assert load_config(path).topics
    rows = _real_keywords()
    assert len(rows) > 200
    in_their_language = [
        k for lang, k in rows if lang != "-" and function_word_languages(k, (lang,))
    ]
    assert in_their_language == []
    in_any_language = [k for _, k in rows if function_word_languages(k)]
    assert in_any_language == ["Uber", "Como"]
