"""The story index in a real Redis: same decisions as in memory, atomic under concurrency."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio

from services.common.redis import connect
from services.detector.core import (
    DEFAULT_PARAMS,
    ArticleIn,
    Decision,
    Fingerprint,
    assign_story,
    fingerprint,
    new_story_id,
)
from services.detector.handlers import count_open_stories, open_stories_key
from services.detector.index import MemoryStoryIndex, generation, place_article
from services.detector.redis_index import RedisStoryIndex
from services.detector.stored import token_slot
from tests.conftest import SHARED, require_shared

pytestmark = pytest.mark.integration

NOW = datetime(2025, 10, 10, 12, 0, tzinfo=UTC)
TEXT = (
    "Le Parlement européen a adopté mardi à Strasbourg la directive sur les semi-conducteurs, "
    "par 412 voix contre 133. Selon Thierry Breton, le texte mobilisera 43 milliards d'euros "
    "d'ici 2030, dont 3,3 milliards issus du budget de l'Union. Intel et TSMC ont salué le vote. "
)
TRANSLATION = (
    "Das Europäische Parlament hat am Dienstag in Strasbourg die Richtlinie über Halbleiter "
    "angenommen, mit 412 zu 133 Stimmen. Laut Thierry Breton soll der Text bis 2030 rund 43 "
    "Milliarden Euro mobilisieren, davon 3,3 Milliarden aus dem Haushalt der Union. Intel und "
    "TSMC begrüßten die Abstimmung. "
)

AIRBUS_EN = (
    "Airbus will build 150 A321 jets a year in Hamburg from 2028, chief executive Guillaume "
    "Faury said on Tuesday in Toulouse. The plan adds 2,400 jobs and costs 1.8 billion euros, "
    "according to Airbus. Lufthansa and Ryanair welcomed the decision. "
)
AIRBUS_FR = (
    "Airbus construira 150 avions A321 par an à Hambourg à partir de 2028, a déclaré mardi à "
    "Toulouse le président exécutif Guillaume Faury. Le projet crée 2 400 emplois et coûte 1,8 "
    "milliard d'euros, selon Airbus. Lufthansa et Ryanair ont salué la décision. "
)


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[list[redis.asyncio.Redis]]:
    """Two connections, as two detector replicas would have (the session's Redis)."""
    opened = [connect(redis_url), connect(redis_url)]
    try:
        yield opened
    finally:
        for client in opened:
            await client.aclose()


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own per test, so tests never see each other's stories."""
    return f"test:detector:{uuid.uuid4().hex[:10]}"


def _article(article_id: str, text: str = TEXT, lang: str = "fr") -> ArticleIn:
    return ArticleIn(article_id, "Semi-conducteurs", text * 3, lang, f"src-{article_id}", "u")


async def test_translation_and_copies_share_a_story_in_redis(
    clients: list[redis.asyncio.Redis], prefix: str
) -> None:
    index = RedisStoryIndex(clients[0], prefix=prefix)
    first = await place_article(index, _article("fr-1"), NOW)
    copy = await place_article(index, _article("fr-copy"), NOW)
    german = await place_article(index, _article("de-1", TRANSLATION, "de"), NOW)
    assert first.created
    assert (copy.story_id, copy.reason) == (first.story_id, "exact")
    assert (german.story_id, german.reason) == (first.story_id, "translation")
    snapshot = await index.snapshot(first.story_id)
    assert snapshot is not None
    assert [m.article_id for m in snapshot.members] == ["fr-1", "fr-copy", "de-1"]
    assert snapshot.languages == ("fr", "de")


async def test_placing_again_in_redis_adds_no_member(
    clients: list[redis.asyncio.Redis], prefix: str
) -> None:
    index = RedisStoryIndex(clients[0], prefix=prefix)
    first = await place_article(index, _article("a"), NOW)
    again = await place_article(index, _article("a"), NOW)
    assert again.story_id == first.story_id and not again.created
    snapshot = await index.snapshot(first.story_id)
    assert snapshot is not None and len(snapshot.members) == 1


async def test_a_stale_commit_is_refused_and_the_retry_joins(
    clients: list[redis.asyncio.Redis], prefix: str
) -> None:
    replica_a = RedisStoryIndex(clients[0], prefix=prefix)
    replica_b = RedisStoryIndex(clients[1], prefix=prefix)
    fp_a, fp_b = fingerprint(_article("a")), fingerprint(_article("b"))
    lookup_a = await replica_a.lookup(fp_a, DEFAULT_PARAMS, NOW)
    lookup_b = await replica_b.lookup(fp_b, DEFAULT_PARAMS, NOW)
    decision_a = assign_story(fp_a, lookup_a.candidates, NOW, stats=lookup_a.stats)
    decision_b = assign_story(fp_b, lookup_b.candidates, NOW, stats=lookup_b.stats)
    assert decision_a.created and decision_b.created
    placed_a = await replica_a.commit(fp_a, decision_a, lookup_a, NOW)
    assert placed_a is not None
    assert await replica_b.commit(fp_b, decision_b, lookup_b, NOW) is None
    retried = await place_article(replica_b, _article("b"), NOW)
    assert (retried.story_id, retried.reason) == (placed_a.story_id, "exact")


async def test_concurrent_replicas_put_simultaneous_copies_in_one_story(
    clients: list[redis.asyncio.Redis], prefix: str
) -> None:
    replicas = [RedisStoryIndex(client, prefix=prefix) for client in clients]
    placements = await asyncio.gather(
        *(place_article(replicas[n % 2], _article(f"copy-{n}"), NOW) for n in range(8))
    )
    assert len({p.story_id for p in placements}) == 1
    assert sum(p.created for p in placements) == 1
    snapshot = await replicas[0].snapshot(placements[0].story_id)
    assert snapshot is not None and len(snapshot.members) == 8


async def test_keys_share_one_hash_tag_and_expire(
    clients: list[redis.asyncio.Redis], prefix: str
) -> None:
    index = RedisStoryIndex(clients[0], prefix=prefix, story_ttl_seconds=3600)
    placement = await place_article(index, _article("a"), NOW)
    keys = [key.decode() async for key in clients[0].scan_iter(match=f"{{{prefix}}}:*")]
    assert keys and all(key.startswith(f"{{{prefix}}}:") for key in keys)
    members_key = f"{{{prefix}}}:m:{placement.story_id}"
    assert 0 < await clients[0].ttl(members_key) <= 3600


@pytest.mark.parametrize("name", ["wmt-newstest.jsonl", "wmt-world.jsonl"])
async def test_redis_and_memory_indexes_decide_alike(
    clients: list[redis.asyncio.Redis], prefix: str, name: str
) -> None:
    """Live (Redis) and batch (memory) place alike, every other article without its language
    and in scripts of all kinds (the world file has Japanese and Chinese)."""
    path = require_shared(SHARED / "eval" / "stories" / name)
    with path.open(encoding="utf-8") as handle:
        everything = [json.loads(line) for line in handle]
    chosen = set(random.Random(5).sample(sorted({row["story"] for row in everything}), 20))
    rows = [row for row in everything if row["story"] in chosen]
    articles = [
        ArticleIn(r["id"], r["title"], r["text"], r["lang"] if n % 2 else None, "s", "u")
        for n, r in enumerate(rows)
    ]
    in_redis = RedisStoryIndex(clients[0], prefix=prefix)
    in_memory = MemoryStoryIndex()
    for article in articles:
        from_redis = await place_article(in_redis, article, NOW)
        from_memory = await place_article(in_memory, article, NOW)
        assert (from_redis.story_id, from_redis.reason) == (
            from_memory.story_id,
            from_memory.reason,
        ), article.article_id
    stories = {(await place_article(in_redis, a, NOW)).story_id for a in articles}
    assert len(stories) < len(articles) / 2


async def _keys_of_generation(client: redis.asyncio.Redis, prefix: str, start: int) -> list[str]:
    """The statistics keys of the generation starting at `start` (epoch seconds)."""
    found = [key async for key in client.scan_iter(match=f"{{{prefix}}}:d:{start}:*")]
    found += [key async for key in client.scan_iter(match=f"{{{prefix}}}:n:{start}")]
    return [key.decode() for key in found]


async def test_statistics_of_an_old_generation_are_dropped_while_stories_keep_grouping(
    clients: list[redis.asyncio.Redis], prefix: str
) -> None:
    """Statistics counted in one generation are read there and one period on (a translation
    then still finds its story by its names); Redis drops their keys itself once no lookup
    reads them (each carries an EXPIRE set when written), and later stories group as before."""
    period = 2
    client = clients[0]
    params = replace(DEFAULT_PARAMS, window_hours=period / 3600)
    index = RedisStoryIndex(
        client, prefix=prefix, window_hours=params.window_hours, stats_period_seconds=period
    )
    first = await place_article(index, _article("fr-1"), NOW, params=params)
    old = generation(NOW, period)
    old_keys = await _keys_of_generation(client, prefix, old.start)
    assert len(old_keys) > 1  # the story count and statistics hashes
    lives = [await client.pttl(key) for key in old_keys]
    assert all(0 < ms <= 2000 * period for ms in lives)  # until no lookup reads them
    one_on = NOW + timedelta(seconds=period)
    german = await place_article(index, _article("de-1", TRANSLATION, "de"), one_on, params=params)
    assert (german.story_id, german.reason) == (first.story_id, "translation")
    async with asyncio.timeout(10 * period):
        while await client.exists(*old_keys):
            await asyncio.sleep(0.05)
    later = NOW + timedelta(seconds=3 * period)
    forgotten = await index.lookup(fingerprint(_article("probe")), params, later)
    assert (forgotten.stats.documents, forgotten.stats.frequencies) == (0, {})
    english = await place_article(index, _article("en-1", AIRBUS_EN, "en"), later, params=params)
    french = await place_article(index, _article("fr-2", AIRBUS_FR, "fr"), later, params=params)
    assert english.created and english.story_id != first.story_id
    assert (french.story_id, french.reason) == (english.story_id, "translation")
    fresh = await index.lookup(fingerprint(_article("probe-2", AIRBUS_EN, "en")), params, later)
    assert fresh.stats.documents == 1 and fresh.stats.frequencies.get("airb") == 1


async def test_commit_records_when_each_story_closes(
    clients: list[redis.asyncio.Redis], prefix: str
) -> None:
    index = RedisStoryIndex(clients[0], prefix=prefix, window_hours=48)
    first = await place_article(index, _article("a"), NOW)
    later = NOW + timedelta(hours=5)
    joined = await place_article(index, _article("b"), later)
    assert joined.story_id == first.story_id
    key = open_stories_key(prefix)
    assert await clients[0].zscore(key, first.story_id) == (later + timedelta(hours=48)).timestamp()
    assert await count_open_stories(clients[0], key, NOW + timedelta(hours=50)) == 1
    assert await count_open_stories(clients[0], key, NOW + timedelta(hours=54)) == 0


async def test_bulk_loaded_stories_are_found_like_committed_ones(
    clients: list[redis.asyncio.Redis], prefix: str
) -> None:
    index = RedisStoryIndex(clients[0], prefix=prefix)
    loaded = [fingerprint(_article(f"bulk-{n}", f"{n} {TEXT} {n}")) for n in range(3)]
    await index.create_stories(loaded, NOW)
    copy = await place_article(index, _article("copy", f"1 {TEXT} 1"), NOW)
    assert (copy.story_id, copy.reason) == (new_story_id("bulk-1"), "exact")
    snapshot = await index.snapshot(copy.story_id)
    assert snapshot is not None
    assert [m.article_id for m in snapshot.members] == ["bulk-1", "copy"]
    again = await place_article(index, _article("bulk-2", f"2 {TEXT} 2"), NOW)
    assert (again.story_id, again.created) == (new_story_id("bulk-2"), False)
    assert await count_open_stories(clients[0], open_stories_key(prefix), NOW) == 3


async def test_token_counts_from_bulk_loads_and_commits_are_read_by_lookup(
    clients: list[redis.asyncio.Redis], prefix: str
) -> None:
    """Both write paths count a name in the statistics hash the lookup reads, so a name in
    every story weighs less than one seen once, however the stories got in."""
    index = RedisStoryIndex(clients[0], prefix=prefix)
    await index.create_stories(
        [fingerprint(_article(f"bulk-{n}", f"{n} {TEXT} {n}")) for n in range(2)], NOW
    )
    different = "In Dresden eröffnet TSMC ein Werk mit 2000 Stellen, sagte Vorstandschef Wei. "
    other = _article("other", different, lang="de")
    await place_article(index, other, NOW)
    probe = fingerprint(_article("probe"))
    lookup = await index.lookup(probe, DEFAULT_PARAMS, NOW)
    assert lookup.stats.documents == 3
    # anchors are cut to 4 letters: "bret" is Breton, in both bulk-loaded stories only
    assert lookup.stats.frequencies.get("bret") == 2
    assert lookup.stats.frequencies.get("tsmc") == 3  # and in the committed one
    assert lookup.stats.languages.get("tsmc") == "fr,de"


def _fingerprint(
    article_id: str, simhash: int, anchors: tuple[str, ...] = (), content_hash: str = ""
) -> Fingerprint:
    return Fingerprint(
        article_id=article_id,
        lang="en",
        content_hash=content_hash or f"text-of-{article_id}",
        simhash=simhash,
        anchors=tuple((token, 1) for token in anchors),
    )


async def _place_fingerprint(index: RedisStoryIndex, fp: Fingerprint) -> Decision:
    """Place a hand-made fingerprint (lookup, decide, commit), as `place_article` does."""
    lookup = await index.lookup(fp, DEFAULT_PARAMS, NOW)
    decision = assign_story(fp, lookup.candidates, NOW, stats=lookup.stats)
    assert await index.commit(fp, decision, lookup, NOW) is not None
    return decision


async def test_a_long_posting_list_is_read_from_its_newest_entries(
    clients: list[redis.asyncio.Redis], prefix: str
) -> None:
    """A name's newest stories are found even when a busier name that shares its packed
    posting key wrote a thousand entries after them."""
    index = RedisStoryIndex(clients[0], prefix=prefix)
    quiet = "zqxw"
    busy = next(
        name
        for name in (f"b{n}" for n in itertools.count())
        if token_slot(name)[0] == token_slot(quiet)[0]
    )
    rng = random.Random(3)
    older = [_fingerprint(f"quiet-{n}", rng.getrandbits(64), (quiet,)) for n in range(70)]
    later = [_fingerprint(f"busy-{n}", rng.getrandbits(64), (busy,)) for n in range(1000)]
    await index.create_stories(older, NOW)
    await index.create_stories(later, NOW)
    lookup = await index.lookup(_fingerprint("probe", 0, (quiet,)), DEFAULT_PARAMS, NOW)
    newest_first = [new_story_id(fp.article_id) for fp in reversed(older)]
    expected = newest_first[: DEFAULT_PARAMS.max_candidates]
    assert [story.story_id for story in lookup.candidates] == expected


async def test_every_simhash_within_three_bits_finds_its_story(
    clients: list[redis.asyncio.Redis], prefix: str
) -> None:
    """Band entries carry part of the simhash to skip chance band matches; a true near
    duplicate (up to 3 bits off, anywhere) must never be skipped, including one of a story's
    earlier members after a later member rewrote the same band."""
    index = RedisStoryIndex(clients[0], prefix=prefix)
    rng = random.Random(11)
    first = rng.getrandbits(64)
    first_fp = _fingerprint("first", first, ("qqqq",), content_hash="same")
    await _place_fingerprint(index, first_fp)
    # same text (exact join), same low band, every other band far off
    later = (first & 0xFFFF) | ((~first) & ~0xFFFF & (2**64 - 1))
    joined = await _place_fingerprint(index, _fingerprint("later", later, ("qqqq",), "same"))
    assert joined.story_id == new_story_id("first")
    for n in range(300):
        probe = first
        for bit in rng.sample(range(64), rng.randint(0, 3)):
            probe ^= 1 << bit
        lookup = await index.lookup(_fingerprint(f"p{n}", probe), DEFAULT_PARAMS, NOW)
        assert [story.story_id for story in lookup.candidates] == [new_story_id("first")]
    only_low_band = first ^ (1 << 20) ^ (1 << 40) ^ (1 << 60)
    lookup = await index.lookup(_fingerprint("low", only_low_band), DEFAULT_PARAMS, NOW)
    assert [story.story_id for story in lookup.candidates] == [new_story_id("first")]


async def test_bulk_loaded_stories_are_found_by_their_rarest_names(
    clients: list[redis.asyncio.Redis], prefix: str
) -> None:
    """A backfill posts each story under its rarest anchors, as a commit would: a name only
    one story carries finds it, even when eight common names sort before it."""
    index = RedisStoryIndex(clients[0], prefix=prefix)
    common = tuple(f"c{n}" for n in range(8))
    rng = random.Random(5)
    crowd = [_fingerprint(f"crowd-{n}", rng.getrandbits(64), common) for n in range(20)]
    await index.create_stories(crowd[:10], NOW)
    target = _fingerprint("target", rng.getrandbits(64), (*common, "zzrare"))
    await index.create_stories([*crowd[10:], target], NOW)
    lookup = await index.lookup(_fingerprint("probe", 0, ("zzrare",)), DEFAULT_PARAMS, NOW)
    assert [story.story_id for story in lookup.candidates] == [new_story_id("target")]
    common_lookup = await index.lookup(_fingerprint("common", 0, ("c0",)), DEFAULT_PARAMS, NOW)
    assert common_lookup.stats.frequencies["c0"] == 21
