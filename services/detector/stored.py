"""The story index's Redis data format and its script calls, as pure functions.

What the Lua scripts (the `.lua` files beside this file) read and write, and the one place
where each script's KEYS and ARGV are put in order (the `*_call` functions): every script's
header lists the same order, and every script names in KEYS each key it reads or writes.
No I/O here; the adapter that runs the scripts is `redis_index.RedisStoryIndex`.

Every key lives under the hash tag `{prefix}` (`KeySpace`), so the keys one script touches
share one Redis Cluster slot:

* `seq` the commit sequence number, `numbers` the counter story numbers are reserved from,
  `open` story ids scored by when each story closes;
* `r:<number>` a story's record (its version, then `encode_story`), `a:<article id>` an
  article's placement (its story number, then `encode_placement`), `m:<story id>` the story's
  member list (JSON, in join order);
* `s<band>:<top 12 bits>` (16,384) and `t:<bucket>` (16,384) packed posting keys: a 4-byte header
  (sequence number of the key's last write) then entries, oldest first, of a tag (`posting_slot`),
  a 4-byte story number and a check (`posting_check`);
* statistics, per generation (`index.Generation`, named by its start in epoch seconds): `n:<start>`
  the stories counted in it, `d:<start>:<1 hex>` (8) hashes token -> "count own
  languages": stories carrying the token counted in this generation and the one before (what
  lookups read), the stories counted in this generation alone, the languages it was seen in.
  A token's first count in a generation starts from the previous one's `own` and languages;
  a lookup reads the current generation's entry, else the previous one's (`own` as count).
  Each key expires when it stops being read (`Generation.ttl`, set with each write), so Redis
  drops old statistics itself.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from contracts.messages import JoinReason
from services.detector.core import (
    SIMHASH_BANDS,
    UNKNOWN_LANGUAGE,
    Decision,
    Fingerprint,
    GroupingParams,
    StoryState,
    TokenStats,
    article_views,
    hamming,
    joinable,
    merge_languages,
    new_story_id,
    rank_stories,
    simhash_bands,
)
from services.detector.index import (
    POSTING_FETCH,
    Generation,
    Lookup,
    epoch,
    lookup_keys,
    plan_write,
    story_member,
)

POSTING_KEY_CAP = 16_384
"""Entries kept per packed Redis posting key (many lists share one); the oldest fall off."""
POSTING_SMALL_KEY = 4096
"""Packed posting keys shorter than this (bytes) are made anew at their exact size after an
append (`commit.lua`): APPEND may reserve as much again as the string holds (Redis 6 does from
a script), which would double a small index's memory."""
BAND_KEY_PREFIX = "s"
"""Packed band keys are named `s<band>:<high byte>`; the `b` keys of the 5-byte entry layout
before are no longer read and expire with their TTL."""
BAND_ENTRY_BYTES = 10
"""A band posting entry: the band's value (2 bytes, little-endian), the story number (4
bytes), the next two bands of the simhash (4 bytes)."""
POSTING_HEAD_CHECKS = 64
"""Entries at the head of a packed posting key checked for expired stories per sweep."""
STATS_BUCKET_BITS = 3
STATS_BUCKETS = 1 << STATS_BUCKET_BITS
"""Statistics hashes per generation (`stats_buckets`), named `d:<start>:<1 hex digit>`. Every
script that reads or counts tokens names them all, so each one fewer is a key argument fewer
in three calls an article; 8 keep the largest hash at an eighth of a generation's tokens."""
NUMBERS = "numbers"
"""The counter story numbers are reserved from (`reserve_numbers.lua`)."""
SCRIPT_CONSTANTS: Mapping[str, int] = {
    "POSTING_KEY_CAP": POSTING_KEY_CAP,
    "POSTING_SMALL_KEY": POSTING_SMALL_KEY,
    "STATS_BUCKETS": STATS_BUCKETS,
}
"""The constants the scripts read, by name (`load_script` declares them as Lua locals)."""

ScriptArg = str | int | bytes
ScriptKey = str | bytes
"""A key name; names a script gives every call are kept encoded (redis-py encodes a str key
on every call)."""
ScriptCall = tuple[list[ScriptKey], list[ScriptArg]]
"""A script's KEYS and ARGV, in the order its header lists."""


@functools.lru_cache(maxsize=1 << 16)
def _token_places(token: str) -> tuple[str, bytes, int]:
    """`token_slot` and statistics bucket (`stats_buckets`) of a token, from one sha1 of it."""
    digest = hashlib.sha1(token.encode("utf-8"), usedforsecurity=False).digest()
    top = int.from_bytes(digest[:6], "big")  # its first 48 bits
    return (
        f"{top >> 34:04x}",
        (top >> 4 & 0xFFFFFFFF).to_bytes(4, "big"),
        digest[0] >> (8 - STATS_BUCKET_BITS),
    )


def token_slot(token: str) -> tuple[str, bytes]:
    """Where a token's postings live in Redis: its bucket (the top 14 bits of its sha1 as 4
    hex digits: 16,384 posting keys) and its 4-byte tag there (hex digits 4 to 11)."""
    bucket, tag, _ = _token_places(token)
    return bucket, tag


def stats_buckets(tokens: Sequence[str]) -> bytes:
    """The statistics hash holding each token's story count, one byte each: one of
    `STATS_BUCKETS` (the top `STATS_BUCKET_BITS` bits of its sha1), how a script finds the
    token's hash among the keys it is given. So few that a script names them all (a lookup
    weighs the statistics of hundreds of tokens: a key argument each would cost the client
    more than the lookup)."""
    return bytes([_token_places(token)[2] for token in tokens])


def posting_slot(logical_key: str) -> tuple[str, bytes]:
    """The packed Redis posting key holding a logical posting list, and the list's tag there:
    band lists share a key per band and top 12 bits of its value (4 x 4,096 keys; tag: the
    band's 2 bytes, low byte first: every entry of the key has the same high byte, and a
    byte search stops wherever the tag's first byte occurs), token lists a key per bucket
    (tag: 4 bytes of the token's sha1). At a million stories a key holds a few hundred
    entries: a lookup reads up to 16 keys whole (`posting_reads`)."""
    if logical_key.startswith("t:"):
        bucket, tag = token_slot(logical_key[2:])
        return "t:" + bucket, tag
    band, value = logical_key[1:].split(":")
    number = int(value, 16)
    return band_slot(int(band), number), number.to_bytes(2, "little")


def band_slot(band: int, value: int) -> str:
    """The packed key holding the band list of `band` (0-3) and 16-bit `value`."""
    return f"{BAND_KEY_PREFIX}{band}:{value >> 4:03x}"


def posting_check(logical_key: str, simhash: int) -> bytes:
    """What a packed posting entry carries after the story number: for a band list, the next
    two bands of the story's simhash (4 bytes), so a lookup rules out the stories that share
    one band by chance (at 1M stories, about 60 a lookup) without reading their records;
    nothing for a token list."""
    if logical_key.startswith("t:"):
        return b""
    band = int(logical_key[1 : logical_key.index(":")])
    values = simhash_bands(simhash)
    return b"".join(values[(band + step) % SIMHASH_BANDS].to_bytes(2, "big") for step in (1, 2))


def encode_story(story: StoryState) -> str:
    """A story summary as stored after its version (which `commit.lua` checks before a join):
    tab-separated and compact."""
    anchors = " ".join(
        token if count == 1 else f"{token}/{count}" for token, count in story.anchors
    )
    return "\t".join(
        [
            story.story_id,
            str(epoch(story.first_seen)),
            str(epoch(story.last_seen)),
            ",".join(story.languages),
            ",".join(f"{value:016x}" for value in story.simhashes),
            ",".join(story.content_hashes),
            str(story.members),
            anchors,
        ]
    )


def _from_epoch(seconds: str) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC)


def decode_story(record: str) -> StoryState:
    """The inverse of `encode_story`, with the version the commit script put in front."""
    version, story_id, first, last, languages, simhashes, hashes, members, anchors = record.split(
        "\t"
    )
    return StoryState(
        story_id=story_id,
        first_seen=_from_epoch(first),
        last_seen=_from_epoch(last),
        languages=tuple(languages.split(",")),
        simhashes=tuple(int(value, 16) for value in simhashes.split(",")),
        content_hashes=tuple(hashes.split(",")),
        anchors=_decode_anchors(anchors),
        members=int(members),
        version=int(version),
    )


def _decode_anchors(text: str) -> tuple[tuple[str, int], ...]:
    """The anchors field of `encode_story` as (token, count) pairs. A story of one article
    (most) writes no counts: its pairs are made without a loop in Python."""
    if not text:
        return ()
    tokens = text.split(" ")
    if "/" not in text:
        return tuple(zip(tokens, itertools.repeat(1)))
    items = [item.partition("/") for item in tokens]
    return tuple((token, int(count or 1)) for token, _, count in items)


def encode_placement(decision: Decision) -> str:
    """An article's placement as stored after its story number."""
    return "\t".join([decision.story_id, decision.reason, repr(decision.similarity)])


def decode_placement(record: str) -> Decision:
    """The inverse of `encode_placement`, with the story number in front."""
    # records written before 2026-12 hold a fifth, always empty field
    _number, story_id, reason, similarity = record.split("\t")[:4]
    join_reason: JoinReason
    if reason == "exact":
        join_reason = "exact"
    elif reason == "near_duplicate":
        join_reason = "near_duplicate"
    elif reason == "translation":
        join_reason = "translation"
    else:
        join_reason = "new"
    return Decision(story_id, False, join_reason, float(similarity))


@dataclass(frozen=True, slots=True)
class KeySpace:
    """Names of one index's Redis keys: all under one hash tag."""

    tag: str
    """What every key name starts with: `{prefix}:`."""

    @classmethod
    def of(cls, prefix: str) -> KeySpace:
        """The keys of the index named `prefix`."""
        return cls("{" + prefix + "}:")

    def key(self, suffix: str) -> str:
        """The key named `suffix` in this index."""
        return self.tag + suffix

    def placement(self, article_id: str) -> str:
        """An article's placement."""
        return self.key("a:" + article_id)

    def story_count(self, start: int) -> str:
        """The count of stories created in the statistics generation starting at `start`."""
        return self.key(f"n:{start}")

    def members(self, story_id: str) -> str:
        """A story's member list."""
        return self.key("m:" + story_id)

    @functools.lru_cache(maxsize=16)  # noqa: B019 (few generations, a few key spaces)
    def stats_keys(self, generation: Generation) -> list[ScriptKey]:
        """The statistics hashes of `generation`, then those of the one before: the keys every
        script that reads or counts tokens names (`STATS_BUCKETS` each, by bucket; encoded)."""
        return [
            self.key(f"d:{start}:{bucket:x}").encode()
            for start in (generation.start, generation.previous)
            for bucket in range(STATS_BUCKETS)
        ]


def lookup_call(space: KeySpace, fp: Fingerprint, generation: Generation) -> ScriptCall:
    """KEYS and ARGV of `lookup.lua` for `fp`, its statistics read in `generation`."""
    tokens = [token for token, _ in fp.anchors]
    keys = [
        space.key("seq"),
        space.story_count(generation.start),
        space.story_count(generation.previous),
        space.placement(fp.article_id),
        *space.stats_keys(generation),
    ]
    return keys, [" ".join(tokens), stats_buckets(tokens)]


@dataclass(frozen=True, slots=True)
class Hits:
    """What `lookup.lua` read: the placement of an article placed before, else the statistics
    of its anchors."""

    version: int
    """The commit sequence number observed."""
    existing: Decision | None
    documents: int = 0
    token_lines: str = ""
    """One "count own languages" line per anchor of the article, in order (empty when
    unseen)."""


def hits_from_reply(reply: Sequence[Any]) -> Hits:
    """What `lookup.lua` replied, as `Hits`."""
    version = int(reply[0])
    if reply[1] is not None:
        return Hits(version, decode_placement(as_text(reply[1])))
    _, _, documents, token_lines = reply
    return Hits(version, None, int(documents), as_text(token_lines))


def posting_reads(fp: Fingerprint, queried: Sequence[str]) -> list[str]:
    """The packed posting keys a lookup reads, once each: those of the lists of `fp`'s
    simhash bands and of its query tokens `queried` (`query_tokens` in core.py)."""
    return list(dict.fromkeys(posting_slot(key)[0] for key in lookup_keys(fp, queried)))


@dataclass(frozen=True, slots=True)
class Found:
    """The stories a lookup found in the posting keys it read."""

    band_hits: tuple[int, ...]
    """Stories whose entry is within the near-duplicate distance on three bands."""
    anchor_hits: tuple[int, ...]
    """Stories sharing the most rare-anchor weight, best first (`rank_stories`)."""

    @property
    def numbers(self) -> list[int]:
        """Every story named, band hits first, once each."""
        return list(dict.fromkeys([*self.band_hits, *self.anchor_hits]))


def _newest_entries(
    values: Sequence[bytes | str | None], tags: Sequence[int], words: int, word: str
) -> tuple[npt.NDArray[Any], npt.NDArray[np.intp]]:
    """The `POSTING_FETCH` newest entries of list `i`, tagged `tags[i]`, in the packed posting
    key read as `values[i]` (None: absent), for every `i` at once: list by list, newest first,
    each entry without its tag as `words - 1` words of `word` ("<u2", "<u4"; byte-swapped from
    the stored big-endian), and the list each came from. An entry is `words` such words, its
    tag the first (compared as stored, read little-endian)."""
    if not values:
        return np.empty((0, words - 1), word), np.empty(0, np.intp)
    size = words * np.dtype(word).itemsize
    tables = [  # an absent key read as a header without entries
        np.frombuffer(packed, word, (len(packed) - 4) // size * words, offset=4)
        for packed in (as_bytes(value or b"\0\0\0\0") for value in values)
    ]
    lengths = [len(table) // words for table in tables]
    entries = np.concatenate(tables).reshape(-1, words)
    list_of = np.repeat(np.arange(len(tables)), lengths)
    tagged = np.flatnonzero(entries[:, 0] == np.repeat(np.array(tags, word), lengths))
    owner = list_of[tagged]
    ends = np.cumsum(np.bincount(owner, minlength=len(tables)))
    kept = tagged[ends[owner] - np.arange(len(tagged)) <= POSTING_FETCH]
    kept = kept[np.lexsort((-kept, list_of[kept]))]
    return entries[kept, 1:].byteswap(), list_of[kept]


def found_in_postings(
    fp: Fingerprint,
    queried: Sequence[str],
    values: Mapping[str, bytes | str | None],
    stats: TokenStats,
    params: GroupingParams,
) -> Found:
    """The stories a lookup finds in the packed posting keys it read (`values`, by the names of
    `posting_reads`): the band entries whose next two bands are within the near-duplicate
    distance (the adapter checks the whole simhash against the story's record), then the
    stories of the query tokens `queried` ranked as in memory (`rank_stories`); each list
    read from its `POSTING_FETCH` newest entries, as the in-memory index keeps them."""
    bands = simhash_bands(fp.simhash)
    # a band entry as 5 words: its tag (the band's value, stored little-endian), the two
    # halves of its story number, its two check words (`posting_check`)
    entries, band_of = _newest_entries(
        [values[band_slot(band, value)] for band, value in enumerate(bands)], bands, 5, "<u2"
    )
    checks = np.array([[bands[(b + step) % SIMHASH_BANDS] for step in (1, 2)] for b in range(4)])
    off = np.bitwise_count(entries[:, 2:] ^ checks[band_of].astype("<u2")).sum(axis=1)
    near = entries[off <= params.near_duplicate_max_distance]
    near_numbers = near[:, 0].astype("<u4") << 16 | near[:, 1]
    # a token entry as 2 words: its tag (4 bytes of the token's sha1), its story number
    slots = [token_slot(token) for token in queried]
    numbers, token_of = _newest_entries(
        [values["t:" + bucket] for bucket, _ in slots],
        [int.from_bytes(tag, "little") for _, tag in slots],
        2,
        "<u4",
    )
    weights = np.array([stats.idf(token) for token in queried])[token_of]
    ranked = rank_stories(numbers[:, 0], weights, params.max_candidates)
    return Found(tuple(dict.fromkeys(near_numbers.tolist())), tuple(ranked))


def record_keys(space: KeySpace, numbers: Sequence[int]) -> list[str]:
    """The records of the stories numbered `numbers`."""
    return [space.key(f"r:{number}") for number in numbers]


@dataclass(frozen=True, slots=True)
class Candidates:
    """The stories a lookup offers, and the tokens whose statistics it still has to read."""

    stories: dict[int, StoryState]
    """Story number -> story, near duplicates first, then the anchor hits, best first."""
    unread_tokens: tuple[str, ...]
    """Anchors of the stories the article could join that it does not carry itself."""


def open_candidates(
    found: Found,
    records: Sequence[bytes | str | None],
    fp: Fingerprint,
    own_stats: TokenStats,
    params: GroupingParams,
    now: datetime,
) -> Candidates:
    """The candidates among `found` (`records`: theirs, in the order of `found.numbers`): band
    hits within the near-duplicate distance, then the anchor hits, each still open (last seen
    within the window before `now`) and not expired; and the anchors whose statistics the
    decision weighs: those of the stories the article could join (`joinable` in core.py, on
    `own_stats`, the statistics of the article's anchors), not those of other stories."""
    oldest_last_seen = epoch(now - timedelta(hours=params.window_hours))
    read: dict[int, StoryState] = {}
    for number, record in zip(found.numbers, records, strict=True):
        if record is not None:
            story = decode_story(as_text(record))
            if epoch(story.last_seen) >= oldest_last_seen:
                read[number] = story
    distance = params.near_duplicate_max_distance
    near = [
        number
        for number in found.band_hits
        if number in read
        and min(hamming(fp.simhash, h) for h in read[number].simhashes) <= distance
    ]
    ranked = [number for number in found.anchor_hits if number in read]
    stories = {number: read[number] for number in dict.fromkeys([*near, *ranked])}
    own = {token for token, _ in fp.anchors}
    views = article_views(fp, own_stats, params)
    unread: dict[str, None] = {}
    for story in stories.values():
        if joinable(fp, views, story, now, params):
            unread.update((token, None) for token, _ in story.anchors if token not in own)
    return Candidates(stories, tuple(unread))


def stats_call(space: KeySpace, tokens: Sequence[str], generation: Generation) -> ScriptCall:
    """KEYS and ARGV of `token_stats.lua` for `tokens`, read in `generation`."""
    return space.stats_keys(generation), [" ".join(tokens), stats_buckets(tokens)]


def stats_from_lines(documents: int, tokens: Sequence[str], token_lines: str) -> TokenStats:
    """Token statistics over `documents` stories from a script's reply for `tokens`: one
    "count own languages" line per token in order, empty when unseen (`lookup.lua`,
    `token_stats.lua`)."""
    frequencies: dict[str, int] = {}
    languages: dict[str, str] = {}
    lines = token_lines.split("\n") if tokens else []
    for token, line in zip(tokens, lines, strict=True):
        if line:
            count, _, languages[token] = line.split(" ", 2)
            if count != "0":
                frequencies[token] = int(count)
    return TokenStats(documents, frequencies, languages)


def own_stats(hits: Hits, fp: Fingerprint) -> TokenStats:
    """The statistics of the article's anchors, as the lookup read them."""
    return stats_from_lines(hits.documents, [token for token, _ in fp.anchors], hits.token_lines)


def lookup_from(
    hits: Hits,
    candidates: Candidates,
    own: TokenStats,
    unread_lines: str,
    fp: Fingerprint,
    queried: Sequence[str],
) -> Lookup:
    """The `Lookup` of `fp` from its hits, its candidates, the statistics of its anchors
    (`own_stats`), the statistics lines of the candidates' unread tokens (`token_stats.lua`)
    and its query tokens `queried`."""
    unread = stats_from_lines(hits.documents, candidates.unread_tokens, unread_lines)
    stats = TokenStats(
        hits.documents,
        {**own.frequencies, **unread.frequencies},
        {**own.languages, **unread.languages},
    )
    numbers = {story.story_id: number for number, story in candidates.stories.items()}
    return Lookup(
        None,
        tuple(candidates.stories.values()),
        stats,
        hits.version,
        numbers,
        tuple(lookup_keys(fp, queried)),
    )


def as_text(value: bytes | str) -> str:
    """A reply value as text."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def as_bytes(value: bytes | str) -> bytes:
    """A reply value as bytes (the clients here do not decode replies)."""
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def commit_call(
    space: KeySpace,
    fp: Fingerprint,
    decision: Decision,
    lookup: Lookup,
    joined_at: datetime,
    *,
    new_number: int,
    ttl_seconds: int,
    window_seconds: int,
    generation: Generation,
) -> ScriptCall:
    """KEYS and ARGV of `commit.lua` storing `decision` for `fp` as decided on `lookup`, its
    counts in `generation` (the one `joined_at` falls in); `new_number`: the number of the
    story if `decision` creates it (reserved with `reserve_numbers.lua`)."""
    write = plan_write(fp, decision, lookup, joined_at, generation)
    written = [posting_slot(key) for key in write.posting_keys]
    guarded = dict.fromkeys(
        posting_slot(key)[0] for key in write.guarded_keys if key not in write.posting_keys
    )
    anchors = [token for token, _ in write.story.anchors]
    counted = set(write.counted_tokens)
    number = new_number if decision.created else lookup.numbers[decision.story_id]
    keys = [
        space.key("seq"),
        space.story_count(generation.start),
        space.placement(fp.article_id),
        space.members(decision.story_id),
        space.key("open"),
        *record_keys(space, [number]),
        space.key(NUMBERS),
        *space.stats_keys(generation),
        *(space.key(key) for key, _ in written),
        *(space.key(key) for key in guarded),
    ]
    args: list[ScriptArg] = [
        lookup.version,
        number,
        "" if decision.created else str(write.story.version),
        encode_story(write.story),
        encode_placement(decision),
        story_member(fp, decision, joined_at).model_dump_json(),
        ttl_seconds,
        fp.lang or UNKNOWN_LANGUAGE,
        decision.story_id,
        epoch(write.story.last_seen) + window_seconds,
        window_seconds,
        " ".join(anchors),
        "".join("1" if token in counted else "0" for token in anchors),
        stats_buckets(anchors),
        generation.ttl(epoch(joined_at)),
        "1" if write.counted else "0",
    ]
    for logical, (_, tag) in zip(write.posting_keys, written, strict=True):
        args += [tag, posting_check(logical, fp.simhash)]
    return keys, args


def reserve_call(space: KeySpace, count: int, ttl_seconds: int) -> ScriptCall:
    """KEYS and ARGV of `reserve_numbers.lua` reserving `count` story numbers."""
    return [space.key(NUMBERS), space.key("seq")], [count, ttl_seconds]


@dataclass(frozen=True, slots=True)
class BulkStory:
    """One story of a bulk load, as stored."""

    number: int
    article_id: str
    story_id: str
    record: str
    placement: str
    member: str
    closes_at: int
    """Epoch seconds."""


@dataclass(frozen=True, slots=True)
class BulkPlan:
    """Everything a bulk load writes: stories, packed entries per posting key, and per token
    the story count to add and the languages seen."""

    stories: tuple[BulkStory, ...]
    entries: Mapping[str, bytes]
    """Posting key suffix -> entries to append (all of one size)."""
    entry_sizes: Mapping[str, int]
    counts: Mapping[str, tuple[int, str]]
    """Token -> (stories that newly carry it, their languages)."""


def plan_bulk(
    fps: Sequence[Fingerprint],
    at: datetime,
    *,
    first_number: int,
    stats: TokenStats,
    window_seconds: int,
    generation: Generation,
) -> BulkPlan:
    """One new story per fingerprint, numbered from `first_number`, each planned as a commit
    would plan it after the ones before (`stats`: the token counts stored before), counted in
    `generation`."""
    frequencies = dict(stats.frequencies)
    entries: dict[str, list[bytes]] = {}
    counts: dict[str, tuple[int, str | None]] = {}
    stories: list[BulkStory] = []
    for offset, fp in enumerate(fps):
        number = first_number + offset
        decision = Decision(new_story_id(fp.article_id), True, "new", 0.0)
        so_far = Lookup(None, (), TokenStats(stats.documents + offset, frequencies), version=0)
        write = plan_write(fp, decision, so_far, at, generation)
        for token in write.counted_tokens:
            frequencies[token] = frequencies.get(token, 0) + 1
        packed = number.to_bytes(4, "big")
        for logical_key in write.posting_keys:
            key, tag = posting_slot(logical_key)
            entries.setdefault(key, []).append(
                tag + packed + posting_check(logical_key, fp.simhash)
            )
        language = fp.lang or UNKNOWN_LANGUAGE
        for token in write.counted_tokens:
            count, seen = counts.get(token, (0, None))
            counts[token] = (count + 1, merge_languages(seen, [language]))
        stories.append(
            BulkStory(
                number=number,
                article_id=fp.article_id,
                story_id=decision.story_id,
                record=encode_story(write.story),
                placement=encode_placement(decision),
                member=story_member(fp, decision, at).model_dump_json(),
                closes_at=epoch(write.story.last_seen) + window_seconds,
            )
        )
    return BulkPlan(
        stories=tuple(stories),
        entries={key: b"".join(chunk) for key, chunk in entries.items()},
        entry_sizes={key: len(chunk[0]) for key, chunk in entries.items()},
        counts={token: (count, seen or "") for token, (count, seen) in counts.items()},
    )


def bulk_call(
    space: KeySpace,
    plan: BulkPlan,
    at: datetime,
    *,
    sequence: int,
    ttl_seconds: int,
    window_seconds: int,
    generation: Generation,
) -> ScriptCall:
    """KEYS and ARGV of `bulk.lua` writing `plan` at `at` as the commit numbered `sequence`,
    its counts in `generation` (the one `at` falls in)."""
    keys = [
        space.key("seq"),
        space.story_count(generation.start),
        space.key("open"),
        *space.stats_keys(generation),
    ]
    args: list[ScriptArg] = [
        sequence.to_bytes(4, "big"),
        ttl_seconds,
        window_seconds,
        len(plan.stories),
        len(plan.entries),
        generation.ttl(epoch(at)),
        stats_buckets(list(plan.counts)),
    ]
    for story in plan.stories:
        keys += [
            *record_keys(space, [story.number]),
            space.placement(story.article_id),
            space.members(story.story_id),
        ]
        args += [
            story.number,
            story.record,
            story.placement,
            story.story_id,
            story.member,
            story.closes_at,
        ]
    for key, packed in plan.entries.items():
        keys.append(space.key(key))
        args += [packed, plan.entry_sizes[key]]
    for token, (count, languages) in plan.counts.items():
        args += [token, count, languages]
    return keys, args


EARLIER_POSTINGS_MOVED = "moved:postings-2026-12"
"""Key (under the index's tag) marking that the posting keys of the layout before 2026-12
were moved into today's keys: later starts skip the check."""


def earlier_posting_keys() -> list[str]:
    """The posting keys of the layout before 2026-12 (under the index's tag): a band key per
    band and high byte `s<band>:<2 hex>` (1,024) and a token key per top 12 bits of the
    token's sha1 `t:<3 hex>` (4,096). Entries were the same as today's."""
    bands = [
        f"{BAND_KEY_PREFIX}{band}:{high:02x}"
        for band in range(SIMHASH_BANDS)
        for high in range(256)
    ]
    return bands + [f"t:{bucket:03x}" for bucket in range(4096)]


def split_earlier_postings(name: str, value: bytes) -> dict[str, bytes]:
    """The entries of an earlier posting key (`earlier_posting_keys`; its 4-byte header
    dropped), grouped by the key of today's layout each belongs in, in their order. An
    entry's tag says where: a band entry's tag is its band value, a token entry's the sha1
    hex digits 4 to 11 of its token, after the 3 its key is named by."""
    kind, _, bucket = name.partition(":")
    band = kind != "t"
    _, step = entry_layout(name)
    high = int(bucket, 16) << 4
    groups: dict[str, bytearray] = {}
    for at in range(4, len(value) - step + 1, step):
        entry = value[at : at + step]
        if band:
            where = f"{kind}:{(entry[0] | entry[1] << 8) >> 4:03x}"
        else:
            where = f"t:{(high | entry[0] >> 4) >> 2:04x}"
        groups.setdefault(where, bytearray()).extend(entry)
    return {where: bytes(entries) for where, entries in groups.items()}


def move_call(space: KeySpace, name: str, value: bytes) -> ScriptCall:
    """KEYS and ARGV of `move_postings.lua` moving the earlier posting key `name`, read as
    `value`, into today's keys."""
    groups = split_earlier_postings(name, value)
    keys: list[ScriptKey] = [space.key(name), *(space.key(where) for where in groups)]
    args: list[ScriptArg] = [value[:4], len(value), *groups.values()]
    return keys, args


EARLIER_STATS_LAYOUTS = ((10, 3), (5, 2))
"""The statistics layouts before today's, as (bucket bits, hex digits of the hash's name):
1,024 hashes a generation `d:<start>:<3 hex>` (before 2026-12) and 32 `d:<start>:<2 hex>`
(2026-12-06). In each, a token's bucket is the top bits of its sha1, so all the tokens of an
earlier hash belong in one of today's."""
STATS_MOVE_CHUNK = 1000
"""Tokens moved a script call from an earlier statistics hash (`move_stats.lua`)."""
EARLIER_STATS_MOVED = "moved:stats-2026-12-07"
"""Key (under the index's tag) marking that the statistics hashes of the earlier layouts were
moved into today's."""


def earlier_stats_hashes(space: KeySpace, generation: Generation) -> list[tuple[str, str]]:
    """Each statistics hash of an earlier layout (`EARLIER_STATS_LAYOUTS`, oldest first) that
    `generation` reads (its own and the previous one's), with today's hash its tokens belong in
    (`stats_buckets`)."""
    return [
        (
            space.key(f"d:{start}:{bucket:0{digits}x}"),
            space.key(f"d:{start}:{bucket >> (bits - STATS_BUCKET_BITS):x}"),
        )
        for bits, digits in EARLIER_STATS_LAYOUTS
        for start in (generation.start, generation.previous)
        for bucket in range(1 << bits)
    ]


def move_stats_call(earlier: str, today: str, tokens: Sequence[bytes | str]) -> ScriptCall:
    """KEYS and ARGV of `move_stats.lua` moving `tokens` of the hash `earlier` into `today`
    (a pair of `earlier_stats_hashes`)."""
    return [earlier, today], list(tokens)


def posting_keys() -> list[str]:
    """Every packed posting key of today's layout (under the index's tag): 16,384 band keys
    `s<band>:<3 hex>` and 16,384 token keys `t:<4 hex>`."""
    bands = [
        f"{BAND_KEY_PREFIX}{band}:{high:03x}"
        for band in range(SIMHASH_BANDS)
        for high in range(4096)
    ]
    return bands + [f"t:{bucket:04x}" for bucket in range(16_384)]


def entry_layout(name: str) -> tuple[int, int]:
    """Where the story number sits in an entry of the packed posting key `name` (bytes after
    the entry's start: its tag's length), and the entry's size in bytes."""
    return (4, 8) if name.startswith("t:") else (2, BAND_ENTRY_BYTES)


def head_range(name: str) -> tuple[int, int]:
    """The bytes of a packed posting key a sweep reads (GETRANGE start and end, inclusive):
    its first `POSTING_HEAD_CHECKS` entries, after its header."""
    _, step = entry_layout(name)
    return 4, 3 + POSTING_HEAD_CHECKS * step


def sweep_call(space: KeySpace, name: str, head: bytes) -> ScriptCall:
    """KEYS and ARGV of `sweep_postings.lua` cutting the entries of expired stories from the
    head of the posting key `name`, whose first entries read `head`."""
    at, step = entry_layout(name)
    numbers = [
        int.from_bytes(head[start + at : start + at + 4], "big")
        for start in range(0, len(head) - step + 1, step)
    ]
    return [space.key(name), *record_keys(space, numbers)], [head, step]
