"""Topic matching: keywords written once match across languages' case, accents and punctuation."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.topics import TopicConfig
from services.alerter.core import (
    EXCERPT_CHARS,
    CompiledTopics,
    alert_id,
    excerpt,
    fold,
    match_topics,
)

SEEDS = Path(__file__).resolve().parents[2] / ".." / "shared" / "seeds"

NUCLEAR = TopicConfig(
    name="nuclear energy",
    keywords=("nuclear energy", "énergie nucléaire", "energia nucleare", "energia nuclear"),
)
OPENAI = TopicConfig(name="OpenAI", keywords=("OpenAI",))
AI = TopicConfig(name="AI", keywords=("AI",))


def _topics_matched(topics: list[TopicConfig], text: str, title: str = "") -> list[str]:
    return [m.topic for m in match_topics(topics, article_id="a-1", title=title, text=text)]


def _seed(prefix: str) -> tuple[str, str]:
    if not SEEDS.is_dir():
        pytest.skip(f"seed articles absent at {SEEDS}")
    (path,) = SEEDS.glob(f"{prefix}_*.txt")
    title, _, text = path.read_text(encoding="utf-8").partition("\n")
    return title, text


@pytest.mark.parametrize(("seed", "expected"), [("000", True), ("002", True), ("004", True)])
def test_nuclear_energy_topic_matches_the_seed_translations_that_discuss_it(
    seed: str, expected: bool
) -> None:
    title, text = _seed(seed)
    assert ("nuclear energy" in _topics_matched([NUCLEAR], text, title)) is expected


@pytest.mark.parametrize("seed", ["001", "003"])
def test_nuclear_energy_topic_ignores_seed_articles_that_do_not(seed: str) -> None:
    title, text = _seed(seed)
    assert _topics_matched([NUCLEAR], text, title) == []


@pytest.mark.parametrize("seed", ["000", "001", "002", "003", "004"])
def test_openai_topic_matches_every_seed(seed: str) -> None:
    title, text = _seed(seed)
    assert _topics_matched([OPENAI], text, title) == ["OpenAI"]


@pytest.mark.parametrize(
    "text",
    [
        "energie nucleaire",
        "ÉNERGIE NUCLÉAIRE",
        "l\u2019Énergie Nucléaire",
        "e\u0301nergie nucle\u0301aire",
    ],
)
def test_keywords_match_across_case_and_accents(text: str) -> None:
    assert _topics_matched([NUCLEAR], f"Le débat sur {text} reprend.") == ["nuclear energy"]


@pytest.mark.parametrize(
    "text", ["nuclear-energy", "nuclear\n  energy", "NUCLEAR — ENERGY", "nuclear_energy"]
)
def test_multi_word_keywords_match_across_spacing_and_punctuation(text: str) -> None:
    assert _topics_matched([NUCLEAR], f"On {text} policy") == ["nuclear energy"]


def test_words_far_apart_do_not_make_a_phrase() -> None:
    assert _topics_matched([NUCLEAR], "nuclear plants need energy") == []


@pytest.mark.parametrize("text", ["energias nucleares", "nuclear energies.", "ENERGIAS NUCLEAR"])
def test_a_plural_ending_still_matches(text: str) -> None:
    topic = TopicConfig(name="n", keywords=("energia nuclear", "nuclear energie"))
    assert _topics_matched([topic], text) == ["n"]


@pytest.mark.parametrize("text", ["AIDS research", "he said so", "FAIR", "the aim", "AIMS", "raid"])
def test_a_short_keyword_does_not_match_inside_or_as_prefix_of_other_words(text: str) -> None:
    assert _topics_matched([AI], text) == []


@pytest.mark.parametrize("text", ["AI", "the AI race", "AI's bet", "(AI)", "d'AI", "AIs compete"])
def test_a_short_keyword_matches_as_a_whole_word(text: str) -> None:
    assert _topics_matched([AI], text) == ["AI"]


def test_a_keyword_is_not_matched_by_its_own_prefix() -> None:
    assert _topics_matched([TopicConfig(name="t", keywords=("energ",))], "energy prices") == []


def test_spaced_keyword_also_matches_its_joined_spelling() -> None:
    topic = TopicConfig(name="t", keywords=("Open AI", "GPT-5"))
    assert _topics_matched([topic], "OpenAI ships gpt5") == ["t"]


def test_sharp_s_and_ligatures_fold_like_their_spelled_out_forms() -> None:
    topic = TopicConfig(name="streets", keywords=("Straße", "fine"))
    result = match_topics([topic], article_id="a-1", title="", text="STRASSE und ﬁne")
    assert [term.term for term in result[0].matched] == ["Straße", "fine"]


def test_keywords_in_scripts_without_spaces_match_inside_runs() -> None:
    topic = TopicConfig(name="Tokyo", keywords=("東京",))
    assert _topics_matched([topic], "今日は東京で会議がありました。") == ["Tokyo"]


def test_kana_voicing_is_not_treated_as_an_accent() -> None:
    topic = TopicConfig(name="t", keywords=("ガス",))
    assert _topics_matched([topic], "カス") == []


def test_keyword_without_letters_or_digits_never_matches() -> None:
    topic = TopicConfig(name="t", keywords=("!!!", "AI"))
    assert _topics_matched([topic], "!!! wow !!!") == []


def test_topics_are_reported_in_config_order_and_only_when_matched() -> None:
    topics = [OPENAI, NUCLEAR, AI]
    assert _topics_matched(topics, "AI at OpenAI") == ["OpenAI", "AI"]
    assert _topics_matched(topics, "Nothing relevant here") == []


def test_each_keyword_is_reported_once_per_field_at_its_first_occurrence() -> None:
    topic = TopicConfig(name="t", keywords=("OpenAI", "Altman", "absent"))
    (match,) = match_topics(
        [topic],
        article_id="a-9",
        title="Altman speaks",
        text="OpenAI said. Later, OpenAI and Altman met.",
    )
    found = [(term.term, term.field, term.article_id) for term in match.matched]
    assert found == [
        ("Altman", "title", "a-9"),
        ("OpenAI", "text", "a-9"),
        ("Altman", "text", "a-9"),
    ]


def test_excerpt_quotes_the_original_text_around_the_match() -> None:
    filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 4
    text = f"{filler}Le coût de l\u2019ÉNERGIE NUCLÉAIRE\nreste élevé. {filler}"
    (match,) = match_topics([NUCLEAR], article_id="a-1", title="", text=text)
    (term,) = match.matched
    assert "l\u2019ÉNERGIE NUCLÉAIRE reste" in term.excerpt
    assert term.excerpt.startswith("…")
    assert term.excerpt.endswith("…")
    assert "\n" not in term.excerpt
    assert len(term.excerpt) <= EXCERPT_CHARS + 2


def test_excerpt_points_at_the_match_after_characters_that_fold_to_several() -> None:
    text = "ﬁ ß … " * 30 + "OpenAI wins"
    (match,) = match_topics([OPENAI], article_id="a-1", title="", text=text)
    assert match.matched[0].excerpt.endswith("OpenAI wins")


def test_excerpt_of_a_short_text_is_the_whole_text() -> None:
    assert excerpt("OpenAI wins", 0, 6) == "OpenAI wins"


def test_compiled_topics_match_many_articles_like_one_off_matching() -> None:
    compiled = CompiledTopics([NUCLEAR, OPENAI, AI])
    texts = ["AI news", "energia nucleare oggi", "rien", "OpenAI"]
    for text in texts:
        assert compiled.match(article_id="a", title="", text=text) == match_topics(
            [NUCLEAR, OPENAI, AI], article_id="a", title="", text=text
        )


def test_fold_drops_accents_and_case() -> None:
    assert fold("ÉNERGIE Nucléaire Straße") == "energie nucleaire strasse"


def test_alert_id_is_stable_and_distinct_per_story_and_topic() -> None:
    ident = alert_id("s-1", "OpenAI")
    assert ident == alert_id("s-1", "OpenAI")
    assert ident.startswith("al-")
    assert len({ident, alert_id("s-2", "OpenAI"), alert_id("s-1", "AI")}) == 3
    assert alert_id("s-1", "a\x00b") != alert_id("s-1\x00a", "b")


@given(st.text(max_size=400), st.text(max_size=400))
def test_matching_arbitrary_text_never_fails(title: str, text: str) -> None:
    for match in match_topics([NUCLEAR, OPENAI, AI], article_id="a", title=title, text=text):
        assert match.matched


@given(st.text(max_size=200), st.text(max_size=200))
def test_a_keyword_standing_alone_is_always_found(before: str, after: str) -> None:
    text = f"{before} ÉNERGIE NUCLÉAIRE {after}"
    (match,) = match_topics([NUCLEAR], article_id="a", title="", text=text)
    assert any("NUCLÉAIRE" in term.excerpt for term in match.matched)


@pytest.mark.parametrize(("keyword", "text"), [("हिन्दी", "यह हिन्दी है"), ("தமிழ்", "தமிழ் நாடு")])
def test_words_with_vowel_signs_match_whole_and_only_whole(keyword: str, text: str) -> None:
    topic = TopicConfig(name="t", keywords=(keyword,))
    assert _topics_matched([topic], text) == ["t"]
    assert _topics_matched([topic], keyword[:2]) == []
