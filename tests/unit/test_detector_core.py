"""Story grouping: fingerprints, the decision, and the in-memory decision path."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.detector.batch import article_from_json, group_articles
from services.detector.core import (
    DEFAULT_PARAMS,
    MAX_STORY_ANCHORS,
    MAX_STORY_SIMHASHES,
    SHINGLE_WORDS,
    ArticleIn,
    Decision,
    Fingerprint,
    StoryState,
    TokenStats,
    anchors_of,
    article_views,
    assign_story,
    fingerprint,
    fold,
    hamming,
    joinable,
    normalise_number,
    normalised_words,
    simhash_bands,
    story_after_join,
    text_simhash,
)
from services.detector.index import (
    BandTable,
    Generation,
    MemoryStoryIndex,
    epoch,
    generation,
    place_article,
)
from services.detector.stored import decode_placement, decode_story, encode_story

NOW = datetime(2025, 10, 10, 12, 0, tzinfo=UTC)
SEEDS = Path(__file__).resolve().parents[2] / ".." / "shared" / "seeds"
SEED_LANGUAGES = {"000": "fr", "001": "fr", "002": "it", "003": "fr", "004": "pt"}
BOILERPLATE_START = re.compile(
    r"^(Avertissement :|Esclusione di responsabilità:|Aviso Legal:|Chargement du thread)",
    re.MULTILINE,
)


def _seed(number: str) -> ArticleIn:
    """A seed article as the cleaner would deliver it: boilerplate tail cut, headline apart."""
    matches = sorted(SEEDS.glob(f"{number}_*.txt"))
    if not matches:
        pytest.skip(f"seed {number} absent from {SEEDS}")
    raw = matches[0].read_text(encoding="utf-8")
    tail = BOILERPLATE_START.search(raw)
    title, _, body = (raw[: tail.start()] if tail else raw).strip().partition("\n")
    return ArticleIn(
        article_id=number,
        title=title,
        text=body,
        lang=SEED_LANGUAGES[number],
        source=f"site-{number}",
        url=f"https://example.org/{number}",
    )


@pytest.fixture
def seeds() -> dict[str, ArticleIn]:
    return {number: _seed(number) for number in SEED_LANGUAGES}


async def test_seed_translations_form_one_story_and_other_interviews_stay_apart(
    seeds: dict[str, ArticleIn],
) -> None:
    index = MemoryStoryIndex()
    placements = {n: await place_article(index, seeds[n], NOW) for n in sorted(seeds)}
    story_a = placements["000"].story_id
    assert placements["000"].created
    assert placements["002"].story_id == story_a and placements["002"].reason == "translation"
    assert placements["004"].story_id == story_a and placements["004"].reason == "translation"
    stories = {placements[n].story_id for n in ("000", "001", "003")}
    assert len(stories) == 3
    assert placements["001"].created and placements["003"].created


async def test_story_snapshot_lists_members_languages_and_sources(
    seeds: dict[str, ArticleIn],
) -> None:
    index = MemoryStoryIndex()
    first = await place_article(index, seeds["000"], NOW)
    await place_article(index, seeds["002"], NOW + timedelta(hours=2))
    snapshot = await index.snapshot(first.story_id)
    assert snapshot is not None
    assert [m.article_id for m in snapshot.members] == ["000", "002"]
    assert snapshot.languages == ("fr", "it")
    assert snapshot.sources == ("site-000", "site-002")
    assert (snapshot.first_seen, snapshot.last_seen) == (NOW, NOW + timedelta(hours=2))
    assert await index.snapshot("s-unknown") is None


async def test_exact_copy_joins_as_exact(seeds: dict[str, ArticleIn]) -> None:
    index = MemoryStoryIndex()
    original = await place_article(index, seeds["001"], NOW)
    copy = ArticleIn("copy", seeds["001"].title, seeds["001"].text, "fr", "mirror", "u")
    placement = await place_article(index, copy, NOW)
    assert (placement.story_id, placement.reason, placement.similarity) == (
        original.story_id,
        "exact",
        1.0,
    )


async def test_edited_copy_joins_as_near_duplicate(seeds: dict[str, ArticleIn]) -> None:
    index = MemoryStoryIndex()
    original = await place_article(index, seeds["000"], NOW)
    edited = ArticleIn(
        article_id="edited",
        title="OpenAI : Altman parie tout sur l'infrastructure",
        text="Par Jeanne Martin, correspondante à San Francisco\n"
        + seeds["000"].text
        + "\nAbonnez-vous à notre newsletter pour ne rien manquer de l'actualité.",
        lang="fr",
        source="other-site",
        url="https://other.example/altman",
    )
    placement = await place_article(index, edited, NOW)
    assert placement.story_id == original.story_id
    assert placement.reason == "near_duplicate"


async def test_different_article_in_same_language_starts_a_story(
    seeds: dict[str, ArticleIn],
) -> None:
    index = MemoryStoryIndex()
    await place_article(index, seeds["001"], NOW)
    placement = await place_article(index, seeds["003"], NOW)
    assert placement.created and placement.reason == "new"


async def test_placing_an_article_again_changes_nothing(seeds: dict[str, ArticleIn]) -> None:
    index = MemoryStoryIndex()
    first = await place_article(index, seeds["000"], NOW)
    again = await place_article(index, seeds["000"], NOW + timedelta(minutes=5))
    assert again.story_id == first.story_id and not again.created
    snapshot = await index.snapshot(first.story_id)
    assert snapshot is not None and len(snapshot.members) == 1


async def test_copies_outside_the_window_start_a_new_story(seeds: dict[str, ArticleIn]) -> None:
    index = MemoryStoryIndex()
    first = await place_article(index, seeds["001"], NOW)
    late = ArticleIn("late", seeds["001"].title, seeds["001"].text, "fr", "s", "u")
    placement = await place_article(index, late, NOW + timedelta(days=30))
    assert placement.created and placement.story_id != first.story_id


def test_decision_prefers_an_exact_copy_over_a_near_duplicate(
    seeds: dict[str, ArticleIn],
) -> None:
    base = fingerprint(seeds["000"])
    edited = fingerprint(
        ArticleIn("e", "t", seeds["000"].text + "\nFin.", "fr", "s", "u"),
    )
    candidates = [
        story_after_join(None, "s-near", edited, NOW),
        story_after_join(None, "s-exact", base, NOW),
    ]
    probe = fingerprint(ArticleIn("p", "other title", seeds["000"].text, "fr", "s", "u"))
    decision = assign_story(probe, candidates, NOW)
    assert (decision.story_id, decision.reason) == ("s-exact", "exact")


def test_decision_without_candidates_creates_a_stable_story_id() -> None:
    fp = fingerprint(ArticleIn("a-1", "Title", "Some text here.", "en", "s", "u"))
    first, second = assign_story(fp, [], NOW), assign_story(fp, [], NOW)
    assert first.created and first.reason == "new"
    assert first.story_id == second.story_id and re.fullmatch(r"s-[0-9a-f]{12}", first.story_id)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1 400", "1400"),
        ("1.400", "1400"),
        ("1,400", "1400"),
        ("3,1", "3.1"),
        ("3.1", "3.1"),
        ("2008", "2008"),
        ("007", "7"),
    ],
)
def test_numbers_read_the_same_across_conventions(raw: str, expected: str) -> None:
    assert normalise_number(raw) == expected


def test_names_fold_across_accents_case_and_script() -> None:
    assert fold("MÜLLER") == fold("Müller") == "muller"
    assert fold("Обама") == "obama"


def test_anchors_keep_names_and_numbers_but_not_sentence_starts() -> None:
    anchors = anchors_of("The vote was won by Obama with 52,9 %. Then Obamovi gratulovali.")
    assert anchors["obam"] == 2
    assert anchors["#52.9"] == 1
    assert "the" not in anchors and "then" not in anchors


def test_content_hash_ignores_case_and_spacing_and_simhash_is_close() -> None:
    text = "Markets fell sharply on Monday after the central bank raised rates again. " * 5
    loud = fingerprint(ArticleIn("a", "t", text.upper().replace(" ", "  "), "en", "s", "u"))
    quiet = fingerprint(ArticleIn("b", "t", text, "en", "s", "u"))
    assert loud.content_hash == quiet.content_hash
    assert hamming(loud.simhash, quiet.simhash) == 0


@given(st.text(max_size=400), st.sampled_from(["en", "fr", None]))
def test_fingerprint_accepts_any_text(text: str, lang: str | None) -> None:
    fp = fingerprint(ArticleIn("x", text[:20], text, lang, "s", "u"))
    assert 0 <= fp.simhash < 2**64
    assert len(simhash_bands(fp.simhash)) == 4
    assert fp == fingerprint(ArticleIn("x", text[:20], text, lang, "s", "u"))


async def test_group_articles_returns_input_order(seeds: dict[str, ArticleIn]) -> None:
    order = ["003", "000", "004", "001", "002"]
    assignments = await group_articles([seeds[n] for n in order], now=NOW)
    assert [article_id for article_id, _ in assignments] == order
    story = dict(assignments)
    assert story["000"] == story["004"] == story["002"]
    assert len({story["000"], story["001"], story["003"]}) == 3


def test_article_from_json_reads_a_line() -> None:
    article = article_from_json(
        {"id": "a1", "title": "T", "text": "Body", "lang": "de", "published": "2024-05-01T10:00"}
    )
    assert article.article_id == "a1" and article.lang == "de" and article.source == "unknown"
    assert article.published == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"title": "T", "text": "x"}, "'id'"),
        ({"id": "a", "text": "x"}, "'title'"),
        ({"id": "a", "title": "T", "text": 3}, "'text'"),
        ({"id": "a", "title": "T", "text": "x", "published": "yesterday"}, "ISO 8601"),
        ({"id": "a", "title": "T", "text": "x", "lang": 5}, "'lang'"),
    ],
)
def test_article_from_json_explains_a_bad_line(line: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        article_from_json(line)


@given(
    st.dictionaries(
        st.sampled_from(["id", "title", "text", "lang", "published"]),
        st.none() | st.text(max_size=10) | st.integers(),
    )
)
def test_article_from_json_accepts_or_refuses_cleanly(line: dict[str, object]) -> None:
    try:
        article = article_from_json(line)
    except ValueError:
        return
    assert article.article_id


def test_a_story_summary_stays_bounded_however_many_articles_join(
    seeds: dict[str, ArticleIn],
) -> None:
    story = story_after_join(None, "s-1", fingerprint(seeds["000"]), NOW)
    for n in range(30):
        copy = ArticleIn(f"c{n}", "t", f"Reuters {n}. " + seeds["002"].text, "it", "s", "u")
        story = story_after_join(story, "s-1", fingerprint(copy), NOW + timedelta(hours=n))
    assert story.members == 31
    assert story.languages == ("fr", "it")
    assert len(story.simhashes) <= MAX_STORY_SIMHASHES
    assert len(story.anchors) <= MAX_STORY_ANCHORS
    assert story.first_seen == NOW and story.last_seen == NOW + timedelta(hours=29)
    assert decode_story("7\t" + encode_story(story)) == replace(story, version=7)


def test_simhash_keeps_a_syndicated_copy_close_and_another_article_far(
    seeds: dict[str, ArticleIn],
) -> None:
    original = text_simhash(normalised_words(seeds["000"].text))
    copy = text_simhash(
        normalised_words("Par Jeanne Martin\n" + seeds["000"].text + "\nTous droits réservés.")
    )
    other = text_simhash(normalised_words(seeds["001"].text))
    assert hamming(original, copy) <= DEFAULT_PARAMS.near_duplicate_max_distance
    assert hamming(original, other) > 16


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=40), st.data())
def test_band_table_finds_exactly_the_hashes_within_three_bits(
    values: list[int], data: st.DataObject
) -> None:
    table = BandTable()
    for n, value in enumerate(values):
        table.add(str(n), value)
    probe = data.draw(st.sampled_from(values))
    for bit in data.draw(st.lists(st.integers(0, 63), max_size=4)):
        probe ^= 1 << bit
    expected = {str(n) for n, value in enumerate(values) if hamming(value, probe) <= 3}
    assert table.near(probe, 3) == expected


async def test_a_story_closes_a_window_after_its_last_article(
    seeds: dict[str, ArticleIn],
) -> None:
    index = MemoryStoryIndex(window_hours=48)
    params = replace(DEFAULT_PARAMS, window_hours=48)
    first = await place_article(index, seeds["000"], NOW, params=params)
    later = NOW + timedelta(hours=40)
    joined = await place_article(index, seeds["002"], later, params=params)
    snapshot = await index.snapshot(first.story_id)
    assert joined.story_id == first.story_id
    assert snapshot is not None and snapshot.closes_at == later + timedelta(hours=48)
    too_late = await place_article(index, seeds["004"], later + timedelta(hours=49), params=params)
    assert too_late.created


def test_every_moment_of_a_generation_names_it_and_it_is_read_for_two_periods() -> None:
    period = 3600
    at = generation(NOW, period)
    assert at.start % period == 0 and at.start <= epoch(NOW) < at.start + period
    last_second = NOW + timedelta(seconds=at.start + period - 1 - epoch(NOW))
    assert generation(last_second, period) == at
    assert generation(last_second + timedelta(seconds=1), period) == Generation(
        at.start + period, period
    )
    assert generation(last_second + timedelta(seconds=1), period).previous == at.start
    assert (at.ttl(at.start), at.ttl(at.start + period - 1)) == (2 * period, period + 1)


async def test_statistics_cover_the_current_and_the_previous_generation(
    seeds: dict[str, ArticleIn],
) -> None:
    """A story counts in the generation it is written in, and is read there and one period
    on; written again in a later generation it counts there too (so its names stay known
    while it is written to); two periods after its last write, or after a period without a
    single write, it is forgotten."""
    hour = timedelta(hours=1)
    index = MemoryStoryIndex(stats_period_seconds=3600)
    first = await place_article(index, seeds["000"], NOW)
    probe = fingerprint(seeds["003"])
    story_names = dict(fingerprint(seeds["000"]).anchors)
    named = [token for token, _ in probe.anchors if token in story_names]
    assert named

    async def stats_at(at: datetime) -> TokenStats:
        return (await index.lookup(probe, DEFAULT_PARAMS, at)).stats

    one_on = await stats_at(NOW + hour)
    assert one_on.documents == 1 and {one_on.frequencies.get(t) for t in named} == {1}
    joined = await place_article(index, seeds["002"], NOW + hour)
    assert (joined.story_id, joined.reason) == (first.story_id, "translation")
    assert (await stats_at(NOW + hour)).documents == 2  # counted in both generations read
    two_on = await stats_at(NOW + 2 * hour)
    assert two_on.documents == 1 and {two_on.frequencies.get(t) for t in named} == {1}
    three_on = await stats_at(NOW + 3 * hour)
    assert (three_on.documents, dict(three_on.frequencies)) == (0, {})
    gap = MemoryStoryIndex(stats_period_seconds=3600)
    await place_article(gap, seeds["000"], NOW)
    skipped = (await gap.lookup(probe, DEFAULT_PARAMS, NOW + 2 * hour)).stats
    assert (skipped.documents, dict(skipped.frequencies)) == (0, {})


def test_the_detectors_simhash_measures_edits_as_the_simhash_package_does() -> None:
    """The detector computes its own simhash (faster than the `simhash` package, see the
    README); on the same word 3-grams both find a lightly edited copy near and an unrelated
    text far, by about the same number of bits."""
    from collections import Counter
    from random import Random

    from simhash import Simhash

    def reference(words: list[str]) -> int:
        shingles = Counter(" ".join(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - 2))
        return int(Simhash(sorted(shingles.items()), f=64).value)

    rng = Random(11)
    vocabulary = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=6)) for _ in range(3000)]
    ours: dict[str, list[int]] = {"near": [], "far": []}
    theirs: dict[str, list[int]] = {"near": [], "far": []}
    for _ in range(20):
        text = rng.choices(vocabulary, k=400)
        edited = list(text)
        for at in rng.sample(range(len(text)), 4):
            edited[at] = rng.choice(vocabulary)
        other = rng.choices(vocabulary, k=400)
        for kind, copy in (("near", edited), ("far", other)):
            ours[kind].append(hamming(text_simhash(text), text_simhash(copy)))
            theirs[kind].append(hamming(reference(text), reference(copy)))
    for distances in (ours, theirs):
        assert max(distances["near"]) < min(distances["far"])
    assert abs(sum(ours["near"]) - sum(theirs["near"])) <= sum(theirs["near"]) / 2
    assert abs(sum(ours["far"]) - sum(theirs["far"])) <= sum(theirs["far"]) / 10


def test_placements_stored_by_earlier_versions_still_read() -> None:
    earlier = "12\ts-0123456789ab\ttranslation\t0.71\t"  # with the always-empty fifth field
    assert decode_placement(earlier) == Decision("s-0123456789ab", False, "translation", 0.71)


_TOKENS = [f"tok{n}" for n in range(12)] + ["~ptn", "~krs", "#2008", "#42", "@12-01"]


@given(
    own=st.lists(st.sampled_from(_TOKENS), min_size=3, max_size=10, unique=True),
    shared=st.integers(3, 10),
    others=st.lists(st.sampled_from(_TOKENS), max_size=3, unique=True),
    counts=st.lists(st.integers(1, 4), min_size=13, max_size=13),
    frequencies=st.dictionaries(st.sampled_from(_TOKENS), st.integers(0, 40)),
    multilingual=st.sets(st.sampled_from(_TOKENS)),
    story_languages=st.sampled_from([("en",), ("de",), ("en", "de")]),
    members=st.integers(1, 4),
    age_hours=st.floats(0, 150),
)
def test_a_story_left_unweighed_is_never_one_whose_similarity_reaches_the_bar(
    own: list[str],
    shared: int,
    others: list[str],
    counts: list[int],
    frequencies: dict[str, int],
    multilingual: set[str],
    story_languages: tuple[str, ...],
    members: int,
    age_hours: float,
) -> None:
    """A lookup reads the statistics of a candidate's other anchors, and the decision weighs the
    candidate, only when the article could join it (`joinable`, on the article's statistics
    alone): a story whose similarity, weighed with every statistic known, is just at the bar
    is one `joinable` keeps. (With no bars the decision weighs every story that shares enough
    anchors: its similarity is the one weighed.)"""
    languages = {token: "en,de" if token in multilingual else "en" for token in _TOKENS}
    stats = TokenStats(60, frequencies, languages)
    fp = Fingerprint("a", "en", "text-a", 0, tuple((token, 1) for token in own))
    story = StoryState(
        story_id="s-1",
        first_seen=NOW - timedelta(hours=age_hours),
        last_seen=NOW - timedelta(hours=age_hours),
        languages=story_languages,
        simhashes=((1 << 64) - 1,),
        content_hashes=("text-b",),
        anchors=tuple(
            (token, min(count, members))
            for token, count in zip(dict.fromkeys([*own[:shared], *others]), counts, strict=False)
        ),
        members=members,
    )
    no_bars = replace(
        DEFAULT_PARAMS,
        rewrite_min_similarity=0.0,
        version_min_similarity=0.0,
        translation_min_similarity=0.0,
        thin_evidence_min_similarity=0.0,
    )
    weighed = assign_story(fp, [story], NOW, stats=stats, params=no_bars)
    at_the_bar = replace(
        no_bars,
        rewrite_min_similarity=weighed.similarity,
        version_min_similarity=weighed.similarity,
        translation_min_similarity=weighed.similarity,
    )
    own_stats = TokenStats(
        60,
        {token: count for token, count in frequencies.items() if token in own},
        {token: languages[token] for token in own},
    )
    if not weighed.created:
        assert joinable(fp, article_views(fp, own_stats, at_the_bar), story, NOW, at_the_bar)
