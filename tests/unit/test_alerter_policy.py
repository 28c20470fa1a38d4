"""Topic combinations, lexicon, entities, filters, story size, update policy, signatures,
backoff, and the alert payload's published JSON Schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from contracts import StoryMember, StorySnapshot, TopicConfig
from contracts.topics import TermConfig
from services.alerter.core import (
    AlertState,
    CompiledTopics,
    Lexicon,
    UpdatePolicy,
    new_alert,
    sign,
    story_is_large_enough,
    update_alert,
    verify_signature,
)
from services.alerter.lexicon import load_lexicon, simplemma_lemma
from services.alerter.schema import SCHEMA_PATH, render

NOW = datetime(2025, 1, 1, tzinfo=UTC)
LEXICON = Lexicon(({"en": ("nuclear energy",), "fr": ("énergie nucléaire",)},))
MS_DEAL = TopicConfig(
    name="ms deal",
    all_of=(TermConfig(term="Microsoft", entity=True),),
    any_of=("deal", "accord", "accordo", "acordo"),
)


def _matched(topic: TopicConfig, text: str, lang: str | None = None, **kw: object) -> bool:
    compiled = CompiledTopics([topic], lexicon=LEXICON, lemmatize=simplemma_lemma)
    return bool(compiled.match(article_id="a", title="", text=text, lang=lang, **kw))  # type: ignore[arg-type]


def _story(languages: tuple[str, ...], sources: tuple[str, ...]) -> StorySnapshot:
    member = StoryMember(
        article_id="a", source="s", url="http://x/a", reason="new", similarity=0, joined_at=NOW
    )
    return StorySnapshot(
        story_id="s-1",
        members=(member,),
        languages=languages,
        sources=sources,
        first_seen=NOW,
        last_seen=NOW,
    )


def test_a_term_written_in_english_matches_its_lexicon_translation_in_that_language() -> None:
    topic = TopicConfig(name="n", keywords=("nuclear energy",))
    assert _matched(topic, "Le coût des énergies nucléaires baisse.", lang="fr")


def test_lexicon_variants_do_not_fire_in_other_languages() -> None:
    topic = TopicConfig(name="n", keywords=("nuclear energy",))
    assert not _matched(topic, "Le coût de l'énergie nucléaire baisse.", lang="it")


def test_inflected_forms_match_through_lemmas() -> None:
    topic = TopicConfig(name="d", keywords=("accordo",))
    assert _matched(topic, "Firmati due accordi storici", lang="it")


def test_per_language_variants_given_in_the_topic_match() -> None:
    topic = TopicConfig(
        name="w", any_of=(TermConfig(term="wind farm", variants={"de": ("Windpark",)}),)
    )
    assert _matched(topic, "Der Windpark wächst", lang="de")
    assert not _matched(topic, "Der Windpark wächst", lang="fr")


def test_all_any_none_combinations() -> None:
    assert _matched(MS_DEAL, "Microsoft signe un accord avec OpenAI", lang="fr")
    assert not _matched(MS_DEAL, "Microsoft investit dans le calcul", lang="fr")
    assert not _matched(MS_DEAL, "Un accord est signé", lang="fr")
    vetoed = MS_DEAL.model_copy(update={"none_of": ("rumour",)})
    assert not _matched(vetoed, "Microsoft deal rumour", lang="en")


def test_entity_terms_match_only_capitalised_names() -> None:
    topic = TopicConfig(name="apple", entities=("Apple",))
    assert _matched(topic, "Apple unveils a phone")
    assert not _matched(topic, "an apple a day")


def test_filters_on_language_source_and_tags() -> None:
    topic = TopicConfig(name="o", keywords=("OpenAI",), languages=("fr",), tags=("tech",))
    assert _matched(topic, "OpenAI", lang="fr", tags=("tech",))
    assert not _matched(topic, "OpenAI", lang="en", tags=("tech",))
    assert not _matched(topic, "OpenAI", lang="fr", tags=("sport",))
    by_source = TopicConfig(name="o", keywords=("OpenAI",), sources=("wire",))
    assert _matched(by_source, "OpenAI", source="wire")
    assert not _matched(by_source, "OpenAI", source="blog")


def test_the_matched_terms_say_where_they_were_found() -> None:
    compiled = CompiledTopics([MS_DEAL], lemmatize=simplemma_lemma)
    (match,) = compiled.match(
        article_id="a-7", title="Microsoft et OpenAI", text="Un accord.", lang="fr"
    )
    assert [(t.term, t.field, t.article_id) for t in match.matched] == [
        ("Microsoft", "title", "a-7"),
        ("accord", "text", "a-7"),
    ]


def test_minimum_story_size_is_met_by_either_outlets_or_languages() -> None:
    topic = TopicConfig(name="o", keywords=("x",), min_sources=2, min_languages=2)
    assert not story_is_large_enough(topic, _story(("fr",), ("a",)))
    assert story_is_large_enough(topic, _story(("fr", "it"), ("a",)))
    assert story_is_large_enough(topic, _story(("fr",), ("a", "b")))
    assert story_is_large_enough(TopicConfig(name="o", keywords=("x",)), _story(("fr",), ("a",)))


def test_an_update_needs_a_new_language_or_enough_new_outlets_and_is_debounced() -> None:
    policy = UpdatePolicy(min_new_sources=2, debounce_seconds=600)
    first = new_alert(_story(("fr",), ("a",)), "t", (), NOW)
    state = AlertState(0, first.languages, first.sources, first.created_at)
    later = NOW + timedelta(seconds=601)
    assert update_alert(_story(("fr",), ("a", "b")), "t", (), state, policy, later) is None
    spread = update_alert(_story(("fr", "it"), ("a",)), "t", (), state, policy, later)
    assert spread is not None
    assert (spread.kind, spread.update_number, spread.added_languages) == ("update", 1, ("it",))
    assert spread.alert_id != first.alert_id
    soon = NOW + timedelta(seconds=60)
    assert update_alert(_story(("fr", "it"), ("a",)), "t", (), state, policy, soon) is None
    outlets = update_alert(_story(("fr",), ("a", "b", "c")), "t", (), state, policy, later)
    assert outlets is not None and outlets.added_sources == ("b", "c")


def test_a_signature_verifies_and_a_tampered_or_stale_one_does_not() -> None:
    body = b'{"alert_id": "al-1"}'
    header = sign("s3cret-s3cret-s3cret", 1_700_000_000, body)
    assert verify_signature("s3cret-s3cret-s3cret", header, body, now=1_700_000_010)
    assert not verify_signature("s3cret-s3cret-s3cret", header, body + b" ", now=1_700_000_010)
    assert not verify_signature("other-secret-xxxxxx", header, body, now=1_700_000_010)
    assert not verify_signature("s3cret-s3cret-s3cret", header, body, now=1_700_009_999)


def test_built_in_lexicon_loads_and_knows_common_terms() -> None:
    lexicon = load_lexicon()
    assert "fr" in lexicon.variants("Nuclear Energy")
    assert lexicon.variants("no such term here") == {}


def test_the_published_alert_schema_matches_the_model() -> None:
    assert json.loads(SCHEMA_PATH.read_text(encoding="utf-8")) == json.loads(render()), (
        "regenerate with: python -m services.alerter.schema"
    )
