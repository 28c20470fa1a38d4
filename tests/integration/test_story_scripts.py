"""The story index's Lua scripts run directly against a real Redis, with KEYS and ARGV from the
call builders of `stored`; and the Redis and in-memory indexes deciding alike on articles these
tests make themselves."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib.resources import files

import pytest
import redis.asyncio

from services.detector.core import (
    DEFAULT_PARAMS,
    ArticleIn,
    Decision,
    Fingerprint,
    fingerprint,
    merge_languages,
    new_story_id,
    story_after_join,
)
from services.detector.index import (
    STATS_PERIOD_SECONDS,
    Lookup,
    MemoryStoryIndex,
    generation,
    place_article,
)
from services.detector.redis_index import SHARED_LUA, RedisStoryIndex, load_script, script_source
from services.detector.stored import (
    EARLIER_STATS_LAYOUTS,
    KeySpace,
    commit_call,
    earlier_posting_keys,
    earlier_stats_hashes,
    encode_story,
    posting_keys,
    posting_slot,
    reserve_call,
)

pytestmark = pytest.mark.integration

NOW = datetime(2025, 10, 10, 12, 0, tzinfo=UTC)
PREFIX = "test:scripts"
SPACE = KeySpace.of(PREFIX)
TTL_SECONDS = 3600
WINDOW_SECONDS = 7 * 24 * 3600
GENERATION = generation(NOW, STATS_PERIOD_SECONDS)


def _fingerprint(article_id: str, simhash: int, anchors: tuple[str, ...] = ()) -> Fingerprint:
    return Fingerprint(
        article_id=article_id,
        lang="en",
        content_hash=f"text-of-{article_id}",
        simhash=simhash,
        anchors=tuple((token, 1) for token in anchors),
    )


async def _lookup(client: redis.asyncio.Redis, fp: Fingerprint) -> Lookup:
    return await RedisStoryIndex(client, prefix=PREFIX).lookup(fp, DEFAULT_PARAMS, NOW)


async def _commit(
    client: redis.asyncio.Redis, fp: Fingerprint, decision: Decision, lookup: Lookup
) -> tuple[str, str]:
    keys, args = reserve_call(SPACE, 1, TTL_SECONDS)
    number = int(await client.eval(load_script("reserve_numbers.lua"), len(keys), *keys, *args))
    keys, args = commit_call(
        SPACE,
        fp,
        decision,
        lookup,
        NOW,
        new_number=number,
        ttl_seconds=TTL_SECONDS,
        window_seconds=WINDOW_SECONDS,
        generation=GENERATION,
    )
    status, payload = await client.eval(load_script("commit.lua"), len(keys), *keys, *args)
    return status.decode(), payload.decode()


def _new(fp: Fingerprint) -> Decision:
    return Decision(new_story_id(fp.article_id), True, "new", 0.0)


async def test_shared_lua_pieces_agree_with_python(redis: redis.asyncio.Redis) -> None:
    """The language merge and the statistics' fields: one rule, in Lua as in Python."""
    body = """
local out = {}
out[#out + 1] = merge_languages(nil, {'fr', 'de', 'fr'})
out[#out + 1] = merge_languages('fr,de', {'en', 'de', 'it'})
local _, changed = merge_languages('fr,de', {'de'})
out[#out + 1] = tostring(changed)
out[#out + 1] = carried('5 2 fr,de')
out[#out + 1] = table.concat({stat('5 2 fr,de')}, '|')
return out
"""
    reply = await redis.eval(script_source(body), 0)
    merged = [value.decode() for value in reply]
    assert merged == [
        merge_languages(None, ["fr", "de", "fr"]),
        merge_languages("fr,de", ["en", "de", "it"]),
        "false",
        "2 2 fr,de",
        "5|fr,de|2",
    ]
    assert merged[:2] == ["fr,de", "fr,de,en,it"]


async def test_a_committed_story_is_what_lookup_returns(redis: redis.asyncio.Redis) -> None:
    fp = _fingerprint("a", 0x0123456789ABCDEF, ("zorv", "1234"))
    empty = await _lookup(redis, fp)
    assert (empty.version, empty.candidates, empty.stats.documents) == (0, (), 0)
    decision = _new(fp)
    assert await _commit(redis, fp, decision, empty) == ("ok", "1")
    stored = story_after_join(None, decision.story_id, fp, NOW, empty.stats)
    record = await redis.get(SPACE.key("r:1"))
    assert record == b"1\t" + encode_story(stored).encode()
    probe = _fingerprint("probe", fp.simhash ^ 0b101, ("zorv",))
    found = await _lookup(redis, probe)
    assert found.version == 1
    assert [story.story_id for story in found.candidates] == [decision.story_id]
    assert found.candidates[0].anchors == stored.anchors
    assert found.numbers == {decision.story_id: 1}
    assert found.stats.documents == 1
    assert found.stats.frequencies == {"zorv": 1, "1234": 1}
    assert found.stats.languages["zorv"] == "en"
    again = await _lookup(redis, fp)
    assert again.existing == Decision(decision.story_id, False, "new", 0.0)


async def test_lookup_reads_the_statistics_only_of_stories_the_article_could_join(
    redis: redis.asyncio.Redis,
) -> None:
    """A candidate found by one rare anchor but sharing fewer than `min_shared_anchors` comes
    back without its other anchors' statistics (the decision never weighs it); one sharing
    enough, or close by simhash, comes back with them."""
    shared = ("zorv", "kwep", "1234")
    stories = [
        _fingerprint("thin", 0xFFFF0000FFFF0000, ("zorv", "onlythin")),
        _fingerprint("rich", 0x00FF00FF00FF00FF, (*shared, "onlyrich")),
        _fingerprint("close", 0x0123456789ABCDEF, ("onlyclose",)),
    ]
    for fp in stories:
        assert (await _commit(redis, fp, _new(fp), await _lookup(redis, fp)))[0] == "ok"
    probe = _fingerprint("probe", 0x0123456789ABCDEF ^ 0b11, shared)
    found = await _lookup(redis, probe)
    assert {story.story_id for story in found.candidates} == {
        new_story_id(name) for name in ("thin", "rich", "close")
    }
    assert set(found.stats.frequencies) == {*shared, "onlyrich", "onlyclose"}


async def test_a_commit_of_an_article_placed_before_returns_its_placement(
    redis: redis.asyncio.Redis,
) -> None:
    fp = _fingerprint("a", 0x0123456789ABCDEF)
    lookup = await _lookup(redis, fp)
    assert (await _commit(redis, fp, _new(fp), lookup))[0] == "ok"
    status, payload = await _commit(redis, fp, _new(fp), lookup)
    assert status == "existing" and payload.startswith("1\t" + new_story_id("a"))


async def test_a_new_story_after_a_rival_commit_to_its_posting_keys_is_refused(
    redis: redis.asyncio.Redis,
) -> None:
    first = _fingerprint("a", 0x0123456789ABCDEF)
    rival = _fingerprint("b", 0x0123456789ABCDEF ^ 1)
    seen_by_first, seen_by_rival = await _lookup(redis, first), await _lookup(redis, rival)
    assert (await _commit(redis, first, _new(first), seen_by_first))[0] == "ok"
    assert await _commit(redis, rival, _new(rival), seen_by_rival) == ("conflict", "")
    assert await redis.get(SPACE.story_count(GENERATION.start)) == b"1"
    # elsewhere in the index (no posting key in common) an older version is no conflict
    far = _fingerprint("c", 0xFEDCBA9876543210)
    stale = replace(await _lookup(redis, far), version=0)
    assert (await _commit(redis, far, _new(far), stale))[0] == "ok"


async def test_a_join_to_a_story_rewritten_since_the_lookup_is_refused(
    redis: redis.asyncio.Redis,
) -> None:
    first = _fingerprint("a", 0x0123456789ABCDEF)
    assert (await _commit(redis, first, _new(first), await _lookup(redis, first)))[0] == "ok"
    story_id = new_story_id("a")
    joiners = [_fingerprint(name, first.simhash ^ 2) for name in ("b", "c")]
    lookups = [await _lookup(redis, fp) for fp in joiners]
    join = Decision(story_id, False, "near_duplicate", 0.9)
    assert await _commit(redis, joiners[0], join, lookups[0]) == ("ok", "1")
    assert await _commit(redis, joiners[1], join, lookups[1]) == ("conflict", "")
    assert await redis.llen(SPACE.members(story_id)) == 2


async def test_a_join_moves_its_story_to_the_tail_of_a_posting_key_which_keeps_its_size(
    redis: redis.asyncio.Redis,
) -> None:
    """A band key shared by a crowd of stories: a new story's entry is appended, and a copy
    joining that story moves its entry to the tail, where a lookup reads first."""
    rng = random.Random(3)
    crowd = [
        _fingerprint(f"crowd-{n}", rng.getrandbits(48) << 16 | 0xABC0 | n % 16) for n in range(400)
    ]
    index = RedisStoryIndex(redis, prefix=PREFIX)
    await index.create_stories(crowd[:370], NOW)
    key = SPACE.key(posting_slot("b0:abc7")[0])
    story = _fingerprint("story", rng.getrandbits(48) << 16 | 0xABC7, ("zorv", "kwep", "1234"))
    assert (await _commit(redis, story, _new(story), await _lookup(redis, story)))[0] == "ok"
    number = int((await redis.get(SPACE.placement("story")) or b"").partition(b"\t")[0])
    appended = await redis.get(key)
    assert appended is not None and len(appended) == 4 + 10 * 371
    assert int.from_bytes(appended[-8:-4], "big") == number
    await index.create_stories(crowd[370:], NOW)
    packed = await redis.get(key)
    assert packed is not None and int.from_bytes(packed[-8:-4], "big") != number
    copy = replace(story, article_id="copy", content_hash="another text")
    join = Decision(new_story_id("story"), False, "near_duplicate", 1.0)
    assert (await _commit(redis, copy, join, await _lookup(redis, copy)))[0] == "ok"
    moved = await redis.get(key)
    assert moved is not None and len(moved) == len(packed) == 4 + 10 * 401
    assert int.from_bytes(moved[-8:-4], "big") == number
    assert sorted(moved[4:][at : at + 10] for at in range(0, len(moved) - 4, 10)) == sorted(
        packed[4:][at : at + 10] for at in range(0, len(packed) - 4, 10)
    )


async def test_entries_of_expired_stories_are_swept_from_the_head_of_their_key(
    redis: redis.asyncio.Redis,
) -> None:
    """Two stories in one packed band key; once the first one's record expired, a sweep cuts
    its entry from the head, keeps the header and the key's TTL, and cuts nothing more."""
    first = _fingerprint("a", 0x0123456789ABCDEF)
    second = _fingerprint("b", 0x0123456789ABCDEF ^ (1 << 40) ^ (1 << 50) ^ (1 << 60) ^ (1 << 20))
    name = posting_slot(f"b0:{first.simhash & 0xFFFF:04x}")[0]
    for fp in (first, second):
        assert (await _commit(redis, fp, _new(fp), await _lookup(redis, fp)))[0] == "ok"
    index = RedisStoryIndex(redis, prefix=PREFIX)
    assert await index.sweep_postings([name]) == 0
    await redis.delete(SPACE.key("r:1"))  # as when its TTL runs out
    assert await index.sweep_postings([name, "t:0000"]) == 1
    packed = await redis.get(SPACE.key(name))
    assert packed is not None and len(packed) == 4 + 10
    assert int.from_bytes(packed[6:10], "big") == 2  # the second story's number
    assert int.from_bytes(packed[:4], "big") == 2  # the header: the last write's sequence number
    assert await redis.ttl(SPACE.key(name)) > 0
    assert await index.sweep_postings([name]) == 0


async def _as_earlier_layout(redis: redis.asyncio.Redis, space: KeySpace) -> None:
    """Rewrite today's posting keys as the layout before 2026-12 had them: band keys per
    band and high byte, token keys per top 12 bits of the token's sha1; the same entries."""
    for pattern, earlier in (
        ("s?:*", lambda kind, bucket: f"{kind}:{int(bucket, 16) >> 4:02x}"),
        ("t:*", lambda kind, bucket: f"{kind}:{int(bucket, 16) >> 2:03x}"),
    ):
        for raw in [key async for key in redis.scan_iter(match=space.key(pattern))]:
            kind, _, bucket = raw.decode()[len(space.tag) :].partition(":")
            value, target = await redis.get(raw), space.key(earlier(kind, bucket))
            before = await redis.get(target) or bytes(4)
            await redis.set(target, value[:4] + before[4:] + value[4:])
            await redis.delete(raw)


async def test_stories_indexed_in_the_layout_before_are_found_once_its_keys_are_moved(
    redis: redis.asyncio.Redis,
) -> None:
    """An upgrade keeps the open stories: the posting keys of the layout before 2026-12 are
    moved into today's once, and a copy arriving after the upgrade joins its story."""
    space = KeySpace.of("test:moved")
    index = RedisStoryIndex(redis, prefix="test:moved")
    articles = {a.article_id: a for a in synthetic_articles(3, stories=2)}
    first = await place_article(index, articles["0-0"], NOW)
    await _as_earlier_layout(redis, space)
    copy = fingerprint(articles["0-1"])
    assert (await index.lookup(copy, DEFAULT_PARAMS, NOW)).candidates == ()
    assert await index.move_earlier_postings() > 0
    assert await index.move_earlier_postings() == 0
    placed = await place_article(index, articles["0-1"], NOW)
    assert (placed.story_id, placed.created) == (first.story_id, False)
    assert not await redis.exists(*(space.key(name) for name in earlier_posting_keys()))


async def _as_earlier_stats_layout(
    redis: redis.asyncio.Redis, space: KeySpace, bits: int, digits: int
) -> None:
    """Rewrite today's statistics hashes as an earlier layout had them: 2**`bits` a
    generation, named by `digits` hex digits, by the top `bits` bits of the token's sha1; the
    same entries and TTL."""
    for raw in [key async for key in redis.scan_iter(match=space.key("d:*"))]:
        start = raw.decode()[len(space.tag) :].split(":")[1]
        ttl = await redis.pttl(raw)
        for token, value in (await redis.hgetall(raw)).items():
            digest = hashlib.sha1(token, usedforsecurity=False).digest()
            bucket = int.from_bytes(digest[:2], "big") >> (16 - bits)
            earlier = space.key(f"d:{start}:{bucket:0{digits}x}")
            await redis.hset(earlier, token, value)
            await redis.pexpire(earlier, ttl)
        await redis.delete(raw)


@pytest.mark.parametrize(("bits", "digits"), EARLIER_STATS_LAYOUTS)
async def test_statistics_counted_in_an_earlier_layout_count_on_once_moved(
    redis: redis.asyncio.Redis, bits: int, digits: int
) -> None:
    """An upgrade keeps the token counts: an index whose statistics are rewritten into an
    earlier layout, and which counts one more story before they are moved, reads the same
    counts once they are moved as an index that never changed layout."""
    articles = synthetic_articles(11, stories=3)
    before = [a for a in articles if not a.article_id.startswith("2-")][:8]
    after = next(a for a in articles if a.article_id.startswith("2-"))
    twin = RedisStoryIndex(redis, prefix="test:twin")
    index, space = RedisStoryIndex(redis, prefix="test:stats"), KeySpace.of("test:stats")
    for article in before:
        assert await place_article(twin, article, NOW) == await place_article(index, article, NOW)
    await _as_earlier_stats_layout(redis, space, bits, digits)
    probe = fingerprint(next(a for a in articles if a not in before and a is not after))
    assert (await index.lookup(probe, DEFAULT_PARAMS, NOW)).stats.frequencies == {}
    assert (await place_article(twin, after, NOW)).created
    assert (await place_article(index, after, NOW)).created
    assert await index.move_earlier_stats(NOW) > 0
    assert await index.move_earlier_stats(NOW) == 0
    expected = (await twin.lookup(probe, DEFAULT_PARAMS, NOW)).stats
    found = (await index.lookup(probe, DEFAULT_PARAMS, NOW)).stats
    assert found.frequencies == expected.frequencies and found.frequencies
    assert found.languages == expected.languages


async def test_a_large_statistics_hash_of_an_earlier_layout_moves_whole_in_steps(
    redis: redis.asyncio.Redis,
) -> None:
    """A hash of a large index (thousands of tokens) moves in many short script calls, not one
    long one that would hold up every replica's lookups, and nothing is lost: every token
    arrives with its counts, the hash's expiry comes along, and the earlier hash is gone."""
    index, space = RedisStoryIndex(redis, prefix="test:large"), KeySpace.of("test:large")
    earlier = space.key(f"d:{GENERATION.start}:00")  # the 32-hash layout's first
    today = dict(earlier_stats_hashes(space, GENERATION))[earlier]
    entries = {f"tok{n}": f"{n % 7 + 1} 1 en" for n in range(3000)}
    await redis.hset(earlier, mapping=entries)
    await redis.expire(earlier, 5000)
    calls_before = (await redis.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
    assert await index.move_earlier_stats(NOW, chunk=100) == len(entries)
    calls = (await redis.info("commandstats"))["cmdstat_evalsha"]["calls"] - calls_before
    assert calls >= 10
    moved = await redis.hgetall(today)
    assert {key.decode(): value.decode() for key, value in moved.items()} == entries
    assert 4000 < await redis.ttl(today) <= 5000
    assert not await redis.exists(earlier)


def synthetic_articles(seed: int, stories: int = 10) -> list[ArticleIn]:
    """Stories of made-up names and figures in filler words: per story an English original,
    an exact copy, an edited copy and versions in two other filler "languages" sharing only
    the names and figures; shuffled, every other article without its language."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mer", "vin", "tor", "sal", "dra", "pen", "qui", "zor", "bel", "fan"]
    letters = "abcdefghiklmnoprstuvz"
    filler = {
        lang: ["".join(rng.choices(letters, k=rng.randint(3, 9))) for _ in range(400)]
        for lang in ("en", "de", "fr")
    }
    made: list[tuple[str, str, str]] = []
    for story in range(stories):
        evidence = ["".join(rng.choices(syllables, k=3)).capitalize() for _ in range(6)]
        evidence += [str(rng.randint(100, 99_999)) for _ in range(4)]

        def text(lang: str, evidence: list[str] = evidence) -> str:
            sentences = []
            for _ in range(10):
                words = rng.sample(filler[lang], 9)
                for token in rng.sample(evidence, 3):
                    words.insert(rng.randint(1, len(words)), token)
                sentences.append(" ".join(words).capitalize() + ".")
            return " ".join(sentences)

        english = text("en")
        edited = " ".join([*english.split(" ")[:-6], *rng.sample(filler["en"], 6)])
        versions = [("en", english), ("en", english), ("en", edited)]
        versions += [("de", text("de")), ("fr", text("fr"))]
        made += [(f"{story}-{n}", lang, body) for n, (lang, body) in enumerate(versions)]
    rng.shuffle(made)
    return [
        ArticleIn(article_id, "Nouvelles", body, lang if n % 2 else None, "s", "u")
        for n, (article_id, lang, body) in enumerate(made)
    ]


@pytest.mark.parametrize(
    ("period", "step", "generations"), [(STATS_PERIOD_SECONDS, 0, 1), (1200, 60, 3)]
)
async def test_redis_and_memory_indexes_decide_alike_on_made_up_stories(
    redis: redis.asyncio.Redis, period: int, step: int, generations: int
) -> None:
    """Alike in one statistics generation, and over several (an article every `step` seconds,
    a generation every `period`, stories open for a period as the service has them at least):
    the same decisions, and before each placement the same statistics of its anchors."""
    articles = synthetic_articles(7)
    params = replace(DEFAULT_PARAMS, window_hours=min(DEFAULT_PARAMS.window_hours, period / 3600))
    in_redis = RedisStoryIndex(
        redis, prefix="test:alike", window_hours=params.window_hours, stats_period_seconds=period
    )
    in_memory = MemoryStoryIndex(window_hours=params.window_hours, stats_period_seconds=period)
    times = [NOW + timedelta(seconds=n * step) for n in range(len(articles))]
    assert len({generation(moment, period) for moment in times}) == generations
    reasons: Counter[str] = Counter()
    for article, now in zip(articles, times, strict=True):
        fp = fingerprint(article)
        seen = [(await index.lookup(fp, params, now)).stats for index in (in_redis, in_memory)]
        assert len({stats.documents for stats in seen}) == 1, article.article_id
        for token, _ in fp.anchors:
            assert len({s.frequencies.get(token, 0) for s in seen}) == 1, token
            assert len({s.languages.get(token) for s in seen}) == 1, token
        from_redis = await place_article(in_redis, article, now, params=params)
        from_memory = await place_article(in_memory, article, now, params=params)
        assert from_redis == from_memory, article.article_id
        reasons[from_redis.reason] += 1
    assert set(reasons) == {"new", "exact", "near_duplicate", "translation"}
    assert reasons["new"] < len(articles) / 3


async def _script_keys(
    redis: redis.asyncio.Redis, watched: Callable[[], Awaitable[None]]
) -> list[tuple[str, str, bool]]:
    """(script's sha1, key, whether the call declared it) for each key a script read or wrote
    while `watched` ran, from Redis's own log of the commands it runs (MONITOR), scripts'
    included."""
    log: list[str] = []
    ready = asyncio.Event()

    async def listen() -> None:
        async with redis.monitor() as monitor:
            ready.set()
            async for command in monitor.listen():
                log.append(
                    command["command"]
                    if command["client_type"] != "lua"
                    else "\0" + command["command"]
                )

    listener = asyncio.create_task(listen())
    await ready.wait()
    await watched()
    marker = "newsmon-test-end"
    await redis.echo(marker)
    async with asyncio.timeout(10):
        while not any(marker in line for line in log):
            await asyncio.sleep(0.01)
    listener.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await listener
    touched: list[tuple[str, str, bool]] = []
    script, declared = "", set[str]()
    for line in log:
        words = line.split(" ")
        if words[0].upper() == "EVALSHA":
            script, declared = words[1], set(words[3 : 3 + int(words[2])])
        elif line.startswith("\0"):
            keys = words[2:] if words[0].upper() == "\0BITOP" else words[1:2]
            touched += [(script, key, key in declared) for key in keys]
    return touched


async def test_every_key_a_script_touches_is_declared(redis: redis.asyncio.Redis) -> None:
    """What Redis Cluster needs of a script, and Redis's documentation asks: it names in KEYS
    every key it reads or writes. Checked on what every script of the index did while stories
    were bulk loaded, placed, joined, found by their names, moved from the earlier layouts and
    swept."""
    index, space = RedisStoryIndex(redis, prefix="test:declared"), KeySpace.of("test:declared")
    articles = synthetic_articles(5, stories=3)

    async def use_every_script() -> None:
        await index.create_stories([fingerprint(a) for a in articles[:2]], NOW)
        for article in articles[2:]:
            await place_article(index, article, NOW)
        await _as_earlier_layout(redis, space)
        assert await index.move_earlier_postings() > 0
        await _as_earlier_stats_layout(redis, space, *EARLIER_STATS_LAYOUTS[-1])
        assert await index.move_earlier_stats(NOW) > 0
        records = [key async for key in redis.scan_iter(match=space.key("r:*"))]
        await redis.delete(*records[:3])  # as when their TTL runs out
        assert await index.sweep_postings(posting_keys()) > 0

    touched = await _script_keys(redis, use_every_script)
    scripts = {
        hashlib.sha1(load_script(path.name).encode(), usedforsecurity=False).hexdigest(): path.name
        for path in files("services.detector").iterdir()
        if path.name.endswith(".lua") and path.name != SHARED_LUA
    }
    assert {scripts.get(sha, sha) for sha, _, _ in touched} == set(scripts.values())
    undeclared = {
        (scripts.get(sha, sha), re.sub(r"(?<=:)[0-9a-f]+", "#", key.partition("}")[2]))
        for sha, key, declared in touched
        if not declared
    }
    assert undeclared == set()
