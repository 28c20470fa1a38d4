"""Story grouping, the pure part: fingerprints and the join-or-create decision.

Three kinds of evidence, strongest first:

* exact: the same normalised text (content hash);
* near duplicate: a 64-bit simhash over weighted word shingles, compared by Hamming distance,
  for copies in one language with edits (headline, byline, a boilerplate line);
* translation: "anchors", the language-independent tokens of a text (capitalised words such as
  names, organisations and places, folded across accents, case and Cyrillic script, and
  numbers normalised across decimal conventions), compared by an IDF-weighted cosine where the
  IDF comes from the index's running document frequencies, so rare names count and "Monday"
  does not.

Decisions are about stories, not articles: the index keeps a bounded summary of each story
(`StoryState`) and finds candidate stories through posting lists of simhash bands and anchors.
No I/O and no clock here: the index supplies candidates and frequencies, the caller the time.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import itertools
import math
import operator
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from anyascii import anyascii

from contracts.messages import JoinReason
from services.common.language import choose_language, iso_639_1
from services.detector.dates import Calendar
from services.detector.scripts import (
    CAPITALISED,
    LOWERCASE_WORD,
    NUMBER,
    WORD,
    caseless_names,
    normalise_number,
    sound_key,
)

SIMHASH_BITS = 64
SIMHASH_BANDS = 4
"""Bands of 16 bits: two hashes within 3 bits share at least one band exactly (pigeonhole)."""
BAND_BITS = SIMHASH_BITS // SIMHASH_BANDS
MAX_ANCHORS = 160
"""Anchors kept per article (most frequent first): bounds the stored fingerprint."""
SHINGLE_WORDS = 3
IDF_PRIOR_DOCUMENTS = 20
"""Pseudo-stories added to the IDF denominator: smooths the first hours of an index."""
ANCHOR_PREFIX = 4
"""Letters kept of a folded capitalised word: joins inflections ("Obamovi", "Obamas")."""
MAX_STORY_ANCHORS = 80
"""Anchors a story keeps (most shared by its members first): bounds the stored story."""
MAX_STORY_SIMHASHES = 4
"""Simhashes and content hashes a story keeps: its first member's and the latest ones."""
COMPARED_ANCHORS = 160
"""Anchors of an article compared with a story's (its most frequent)."""
POSTED_ANCHORS = 8
"""Anchors of a story written to the inverted index."""
UNKNOWN_LANGUAGE = "?"
_SECOND_SEED = 0x9E3779B9

_COMBINING_MARK = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_SENTENCE_END = frozenset(".!?…:;\n\u3002\uff01\uff1f")
_OPENERS = frozenset(" \t\r\"'«»()[]-·•*\u201c\u201d\u201e\u2018\u2019\u201a\u2013\u2014")


@dataclass(frozen=True, slots=True)
class ArticleIn:
    """An article as the detector needs it (a cleaned article, or a JSONL line in batch)."""

    article_id: str
    title: str
    text: str
    lang: str | None
    source: str
    url: str
    published: datetime | None = None


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What the detector remembers of an article; small, computed once."""

    article_id: str
    lang: str | None
    content_hash: str
    """Hex blake2b (64 bits) of the normalised text; equal for exact copies."""
    simhash: int
    """64-bit simhash of the text's word 3-gram shingles, weighted by count."""
    anchors: tuple[tuple[str, int], ...]
    """Folded language-independent tokens and their counts, most frequent first."""
    source: str = ""
    url: str = ""
    title: str = ""


@dataclass(frozen=True, slots=True)
class StoryState:
    """What the index keeps of a story to decide whether an article joins it: bounded in size
    whatever the number of members (a few simhashes and content hashes, the top anchors)."""

    story_id: str
    first_seen: datetime
    last_seen: datetime
    languages: tuple[str, ...]
    simhashes: tuple[int, ...]
    """Simhashes of the first member and of the most recent ones."""
    content_hashes: tuple[str, ...]
    """Content hashes of the same members as `simhashes`."""
    anchors: tuple[tuple[str, int], ...]
    """Anchors and how many members carry them, most shared first."""
    members: int = 1
    version: int = 0
    """Commit sequence number of the story's last write (0 before it is stored)."""


Candidate = StoryState
"""A story that shares some evidence with the article being placed."""


@dataclass(frozen=True, slots=True)
class TokenStats:
    """Running frequencies of anchors counted per story, not per article, so the copies and
    translations of one story do not make its names look common: `documents` stories so far."""

    documents: int = 0
    frequencies: Mapping[str, int] = field(default_factory=dict)
    languages: Mapping[str, str] = field(default_factory=dict)
    """Comma-separated languages each anchor was seen in."""

    def idf(self, token: str) -> float:
        """Smoothed inverse document frequency, in nats, over the stories so far plus a prior
        of stories without the token, so a young index does not weigh its first names as
        common and every unseen word as decisive."""
        return idf(self.documents, self.frequencies.get(token, 0))

    def weight(self, token: str, params: GroupingParams) -> float:
        """IDF, lowered for capitalised words seen often but only ever in one language
        (German nouns, "The"): they cannot be evidence across languages."""
        frequency = self.frequencies.get(token, 0)
        value = idf(self.documents, frequency)
        if (
            frequency >= params.single_language_min_documents
            and token[0] != "#"
            and "," not in self.languages.get(token, ",")
        ):
            return value * params.single_language_factor
        return value


def idf(documents: int, frequency: int) -> float:
    """Smoothed IDF in nats."""
    return math.log((documents + IDF_PRIOR_DOCUMENTS + 1) / (frequency + 0.5))


def merge_languages(seen: str | None, languages: Iterable[str]) -> str:
    """A token's languages (comma-separated, in the order first seen; None: none yet) once
    also seen in `languages`: the new ones appended. Both indexes keep `TokenStats.languages`
    by this rule (`merge_languages` in shared.lua for Redis)."""
    merged = seen.split(",") if seen is not None else []
    for language in languages:
        if language not in merged:
            merged.append(language)
    return ",".join(merged)


@dataclass(frozen=True, slots=True)
class GroupingParams:
    """Thresholds of the decision; the defaults are the product's, tests may vary them."""

    near_duplicate_max_distance: int = 8
    """Largest Hamming distance (bits of 64) between same-language near duplicates."""
    translation_min_similarity: float = 0.3
    """Smallest IDF-weighted anchor cosine for a cross-language join."""
    rewrite_min_similarity: float = 0.6
    """Smallest anchor cosine for a same-language join without a close simhash, to a story
    in that language only."""
    version_min_similarity: float = 0.5
    """Smallest anchor cosine for a join without a close simhash to a story that has the
    article's language and others: a same-language version shares more names and figures
    with the story than a translation does, so the bar is between the two."""
    min_shared_anchors: int = 3
    """Fewest shared anchors for an anchor join: a couple of names and numbers at least
    (a count, so it means the same on an empty index as on a full one)."""
    confident_shared_anchors: int = 5
    """From this many shared anchors on, the bars above apply; with fewer, the join also needs
    `thin_evidence_min_similarity` (three names and figures that are most of both texts are
    evidence, three among many are chance)."""
    thin_evidence_min_similarity: float = 0.5
    """Smallest anchor cosine for a join on fewer than `confident_shared_anchors` anchors."""
    single_language_factor: float = 0.2
    """Weight factor of anchors seen only in one language so far."""
    single_language_min_documents: int = 3
    """Seen in fewer stories than this, an anchor is too new to call single-language."""
    decay_grace_hours: float = 24.0
    """Evidence keeps full weight while the story was active this recently, in hours."""
    decay_half_life_hours: float = 72.0
    """After the grace period, anchor similarity halves every this many hours."""
    window_hours: float = 7 * 24.0
    """A story closes this many hours after its last article: nothing joins it any more."""
    query_tokens: int = 12
    """Rarest known anchors looked up in the inverted index per article."""
    max_candidates: int = 8
    """Stories scored in full per article, most shared rare anchors first."""


DEFAULT_PARAMS = GroupingParams()


@dataclass(frozen=True, slots=True)
class Decision:
    """Where an article goes (or went, once stored): an existing story, or a new one with a
    derived id; what the handler and the CLI see of a placement."""

    story_id: str
    created: bool
    reason: JoinReason
    similarity: float


@functools.lru_cache(maxsize=1 << 16)
def fold(token: str) -> str:
    """Case-, accent- and script-folded form of a token: "Müller", "MÜLLER", "Мюллер" agree
    (every script romanised by anyascii)."""
    lowered = token.casefold()
    if lowered.isascii():
        return lowered
    return anyascii(lowered).lower()


_CALENDAR = Calendar(fold)


def _is_sentence_start(text: str, start: int) -> bool:
    position = start - 1
    while position >= 0 and text[position] in _OPENERS:
        position -= 1
    return position < 0 or text[position] in _SENTENCE_END


def anchors_of(text: str, lang: str | None = None) -> Counter[str]:
    """Language-independent tokens of a text with counts.

    Capitalised words count when not merely starting a sentence, unless the same word also
    appears mid-sentence, and never when the text also writes them in small letters (a
    title's "Found", a quote's "We"); numbers in any digit script always count, and dates
    in words as "@MM-DD"; month and weekday names do not (English capitalises them, most
    languages do not). A capitalised word gives two anchors: its first four folded letters,
    which also join most inflections of names ("Obamovi", "Obamas", "Obama"), and its sound
    key ("~ptn"), which joins its spellings in other scripts. A name candidate of a caseless
    script gives its sound key only: in scripts whose every word is a candidate, their
    spellings would crowd out the names (measured on lower-cased Russian, a stand-in for a
    caseless script: recall against English 0.32 with them, 0.50 without).
    """
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    mid_sentence: list[str] = []
    sentence_initial: list[str] = []
    common = set(LOWERCASE_WORD.findall(text))
    for match in CAPITALISED.finditer(text):
        token = match.group()
        if len(token) < 2 or (token.lower() in common and not token.isupper()):
            continue
        target = sentence_initial if _is_sentence_start(text, match.start()) else mid_sentence
        target += _name_anchors(token)
    anchors = Counter(mid_sentence)
    for key in sentence_initial:
        if key in anchors:
            anchors[key] += 1
    for match in NUMBER.finditer(text):
        anchors["#" + normalise_number(match.group())] += 1
    if not text.isascii():
        for word in caseless_names(text, lang):
            sound = sound_key(word)
            if sound:
                anchors[SOUND_PREFIX + sound] += 1
    anchors.update(_CALENDAR.dates_of(text))
    return anchors


@functools.lru_cache(maxsize=1 << 16)
def _name_anchors(token: str) -> tuple[str, ...]:
    """The anchors of a capitalised word: its folded prefix and its sound key (none for a
    month or weekday name: English capitalises them, most languages do not)."""
    word = fold(token)
    if _CALENDAR.is_calendar_word(word):
        return ()
    sound = sound_key(token)
    return (word[:ANCHOR_PREFIX], SOUND_PREFIX + sound) if sound else (word[:ANCHOR_PREFIX],)


def normalised_words(text: str) -> list[str]:
    """Case- and accent-folded words of a text: the unit of the content hash and of simhash
    shingles (copies are in one script, so no romanisation here)."""
    folded = text.casefold()
    if not folded.isascii():
        folded = _COMBINING_MARK.sub("", unicodedata.normalize("NFKD", folded))
    words: list[str] = WORD.findall(folded)
    return words


def content_hash(words: Sequence[str]) -> str:
    """Hex 64-bit hash of the normalised word sequence: whitespace and case changes agree."""
    return hashlib.blake2b(" ".join(words).encode("utf-8"), digest_size=8).hexdigest()


def _word_hashes(words: Sequence[str]) -> npt.NDArray[np.uint64]:
    """A stable 64-bit value per word (two CRC-32s of its UTF-8, mixed later); `map` keeps
    the loop in C, which is cheaper than a Python loop over the distinct words."""
    encoded = list(map(str.encode, words))
    low = np.fromiter(map(zlib.crc32, encoded), dtype=np.uint64, count=len(encoded))
    high = np.fromiter(
        map(zlib.crc32, encoded, itertools.repeat(_SECOND_SEED)),
        dtype=np.uint64,
        count=len(encoded),
    )
    return low | high << np.uint64(32)


def _mix64(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """The splitmix64 finaliser: every input bit flips about half of the output bits."""
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def text_simhash(words: Sequence[str]) -> int:
    """64-bit simhash over word 3-gram shingles, each occurrence weighing one.

    A shingle's hash mixes its three word hashes (position-dependent rotations, then
    splitmix64), so the bits are balanced; numpy sums the bit columns. About 0.3 ms per
    1,000 words, a tenth of the `simhash` package on the same features.
    """
    if not words:
        return 0
    hashes = _word_hashes(words)
    if len(hashes) >= SHINGLE_WORDS:
        width = len(hashes) - SHINGLE_WORDS + 1
        combined = hashes[:width].copy()
        for offset in range(1, SHINGLE_WORDS):
            shift = np.uint64(offset * 21)
            part = hashes[offset : offset + width]
            combined ^= (part << shift) | (part >> (np.uint64(64) - shift))
        hashes = combined
    shingles = _mix64(hashes)
    bits = np.unpackbits(shingles.astype("<u8").view(np.uint8), bitorder="little")
    ones = bits.reshape(-1, SIMHASH_BITS).sum(axis=0, dtype=np.int64)
    chosen = np.packbits(2 * ones > len(shingles), bitorder="little")
    return int.from_bytes(chosen.tobytes(), "little")


def fingerprint(article: ArticleIn) -> Fingerprint:
    """Everything the decision needs from one article; the title counts for anchors only,
    so a new headline on a copied text still reads as a copy. An article that comes without
    a language gets the one its text shows."""
    words = normalised_words(article.text)
    lang = iso_639_1(article.lang) or choose_language(None, article.title + "\n" + article.text)
    anchors = anchors_of(article.title + ".\n" + article.text, lang)
    ranked = sorted(anchors.items(), key=lambda item: (-item[1], item[0]))[:MAX_ANCHORS]
    return Fingerprint(
        article_id=article.article_id,
        lang=lang,
        content_hash=content_hash(words),
        simhash=text_simhash(words),
        anchors=tuple(ranked),
        source=article.source,
        url=article.url,
        title=article.title,
    )


def simhash_bands(value: int) -> tuple[int, ...]:
    """The simhash cut into 16-bit bands, the keys of the near-duplicate lookup."""
    mask = (1 << BAND_BITS) - 1
    return tuple((value >> (BAND_BITS * band)) & mask for band in range(SIMHASH_BANDS))


def hamming(left: int, right: int) -> int:
    """Number of differing bits between two simhashes."""
    return (left ^ right).bit_count()


def query_tokens(fp: Fingerprint, stats: TokenStats, params: GroupingParams) -> list[str]:
    """The rarest anchors already seen elsewhere: looked up in the inverted index."""
    frequencies = stats.frequencies
    known = sorted(token for token, _ in fp.anchors if frequencies.get(token, 0) > 0)
    known.sort(key=frequencies.__getitem__)  # stable: by frequency, then token
    return known[: params.query_tokens]


def rank_candidates(
    postings: Mapping[str, Sequence[int]], stats: TokenStats, params: GroupingParams
) -> list[int]:
    """Story numbers from the posting lists of the query tokens, most shared rare weight
    first, then the most recent story (`rank_stories`, as the Redis lookup ranks them)."""
    numbers = [story for stories in postings.values() for story in stories]
    weights = [stats.idf(token) for token, stories in postings.items() for _ in stories]
    return rank_stories(np.array(numbers, np.int64), np.array(weights), params.max_candidates)


def rank_stories(
    numbers: npt.NDArray[np.integer[Any]], weights: npt.NDArray[np.float64], limit: int
) -> list[int]:
    """The `limit` story numbers of most weight, then the highest (most recent) numbers; a
    story's weight is the sum of the `weights` beside its `numbers`, added in their order (so
    both indexes get the same floating-point score)."""
    if not len(numbers):
        return []
    stories, where = np.unique(numbers.astype(np.int64, copy=False), return_inverse=True)
    scores = np.bincount(where, weights)  # adds in input order
    best = np.lexsort((-stories, -scores))[:limit]
    ranked: list[int] = stories[best].tolist()
    return ranked


def _kept_anchors(counts: Mapping[str, int], stats: TokenStats) -> tuple[tuple[str, int], ...]:
    """The anchors a story keeps: the most shared by its members, then the rarest in the
    stream (names and figures particular to the story), then alphabetical."""
    frequencies = stats.frequencies
    ranked = sorted((-count, frequencies.get(token, 0), token) for token, count in counts.items())
    return tuple((token, -negated) for negated, _, token in ranked[:MAX_STORY_ANCHORS])


def story_after_join(
    story: StoryState | None,
    story_id: str,
    fp: Fingerprint,
    at: datetime,
    stats: TokenStats | None = None,
) -> StoryState:
    """The story once `fp` joined it (or the new story it starts), still bounded in size."""
    token_stats = stats or TokenStats()
    if story is None:
        return StoryState(
            story_id=story_id,
            first_seen=at,
            last_seen=at,
            languages=(fp.lang or UNKNOWN_LANGUAGE,),
            simhashes=(fp.simhash,),
            content_hashes=(fp.content_hash,),
            anchors=_kept_anchors({token: 1 for token, _ in fp.anchors}, token_stats),
        )
    counts = Counter(dict(story.anchors))
    counts.update(token for token, _ in fp.anchors)
    ranked = _kept_anchors(counts, token_stats)
    keep = MAX_STORY_SIMHASHES - 1
    return StoryState(
        story_id=story.story_id,
        first_seen=min(story.first_seen, at),
        last_seen=max(story.last_seen, at),
        languages=tuple(dict.fromkeys([*story.languages, fp.lang or UNKNOWN_LANGUAGE])),
        simhashes=(story.simhashes[0], fp.simhash, *story.simhashes[1:keep]),
        content_hashes=(story.content_hashes[0], fp.content_hash, *story.content_hashes[1:keep]),
        anchors=ranked,
        members=story.members + 1,
        version=story.version,
    )


def posted_tokens(story: StoryState, stats: TokenStats) -> list[str]:
    """The anchors under which a story is found: its rarest ones (bounded), which are what a
    later copy or translation looks up (`query_tokens`), taken in turn from both views so that
    articles in the story's script and in others find it alike."""
    frequencies = stats.frequencies
    rankings = [
        heapq.nsmallest(POSTED_ANCHORS, [(frequencies.get(token, 0), token) for token, _ in view])
        for view in _views(story.anchors)
    ]
    posted: dict[str, None] = {}
    for pair in itertools.zip_longest(*rankings):
        for ranked in pair:
            if ranked is not None and len(posted) < POSTED_ANCHORS:
                posted[ranked[1]] = None
    return list(posted)


def new_anchors(before: StoryState | None, after: StoryState) -> list[str]:
    """Anchors the story carries now and did not before: each raises its story frequency."""
    known = {token for token, _ in before.anchors} if before is not None else set()
    return [token for token, _ in after.anchors if token not in known]


class _AnchorWeights:
    """Anchor weights with a memo: one decision weighs the same tokens for many stories."""

    def __init__(self, stats: TokenStats, params: GroupingParams) -> None:
        self._stats = stats
        self._params = params
        self._memo: dict[str, float] = {}

    def views(self, anchors: Sequence[tuple[str, int]]) -> ArticleViews:
        """An article's anchor weights in their two views (spelling, sound; see `_views`), each
        with its Euclidean norm. Presence only (counts vary too much between languages to be
        evidence); a story weighs an anchor by the share of its members carrying it."""
        memo, weight = self._memo, self._stats.weight
        spelling: dict[str, float] = {}
        sound: dict[str, float] = {}
        for token, _ in anchors:
            value = memo.get(token)
            if value is None:
                value = memo[token] = weight(token, self._params)
            first = token[0]
            if first != SOUND_PREFIX:
                spelling[token] = value
            if first in _BOTH_VIEWS:
                sound[token] = value
        return ArticleViews(
            spelling,
            math.sqrt(sum(v * v for v in spelling.values())),
            sound,
            math.sqrt(sum(v * v for v in sound.values())),
            frozenset(token for token, _ in anchors),
        )

    def similarity(
        self, own: ArticleViews, anchors: Sequence[tuple[str, int]], members: int
    ) -> tuple[float, int]:
        """The better view's cosine between an article (its `views`) and a story's anchors,
        with the number of anchors shared in that view; the story is weighed as in `views`,
        without building its vectors."""
        spelling, spelling_norm, sound, sound_norm, _ = own
        memo, weight = self._memo, self._stats.weight
        spelling_square = sound_square = spelling_dot = sound_dot = 0.0
        spelling_shared = sound_shared = 0
        for token, count in anchors:
            value = memo.get(token)
            if value is None:
                value = memo[token] = weight(token, self._params)
            if members > 1 and count < members:
                value *= count / members
            first = token[0]
            if first != SOUND_PREFIX:
                spelling_square += value * value
                other = spelling.get(token)
                if other is not None:
                    spelling_dot += value * other
                    spelling_shared += 1
            if first in _BOTH_VIEWS:
                sound_square += value * value
                other = sound.get(token)
                if other is not None:
                    sound_dot += value * other
                    sound_shared += 1
        return max(
            _cosine(spelling_dot, spelling_norm, spelling_square, spelling_shared),
            _cosine(sound_dot, sound_norm, sound_square, sound_shared),
        )


class ArticleViews(NamedTuple):
    """An article's anchor weights by view (`_AnchorWeights.views`)."""

    spelling: dict[str, float]
    spelling_norm: float
    sound: dict[str, float]
    sound_norm: float
    tokens: frozenset[str]
    """Every anchor weighed, in either view."""


SOUND_PREFIX = "~"
"""Marks a sound-key anchor ("~ptn"); numbers start with "#" and dates with "@"."""
_BOTH_VIEWS = "~#@"
"""First characters of the anchors in the sound view: sound keys, numbers and dates."""


def _views(anchors: Sequence[tuple[str, int]]) -> tuple[list[tuple[str, int]], ...]:
    """The anchors as two views of one text: by spelling (names as folded prefixes, for texts
    in one script) and by sound (names as sound keys, across scripts); numbers and dates are
    in both. Comparing view with view keeps a name from counting twice."""
    spelling = [item for item in anchors if not item[0].startswith(SOUND_PREFIX)]
    sound = [item for item in anchors if item[0][0] in _BOTH_VIEWS]
    return spelling, sound


def _cosine(dot: float, left_norm: float, right_square: float, shared: int) -> tuple[float, int]:
    """Cosine from a dot product, one norm and the other's square (0 when nothing is shared),
    with the number of shared anchors."""
    if not shared or left_norm <= 0 or right_square <= 0:
        return 0.0, shared
    return min(1.0, dot / (left_norm * math.sqrt(right_square))), shared


def time_decay(age_hours: float, params: GroupingParams) -> float:
    """Weight (0..1) of evidence from a story last active `age_hours` away from the article."""
    overdue = abs(age_hours) - params.decay_grace_hours
    if overdue <= 0:
        return 1.0
    return float(0.5 ** (overdue / params.decay_half_life_hours))


def new_story_id(article_id: str) -> str:
    """A short stable story id derived from its first article, so retries agree."""
    return "s-" + hashlib.blake2b(article_id.encode("utf-8"), digest_size=6).hexdigest()


def is_open(story: StoryState, now: datetime, params: GroupingParams) -> bool:
    """Whether a story still accepts articles: active within the window around `now`."""
    return (now - story.last_seen).total_seconds() / 3600.0 <= params.window_hours and (
        story.first_seen - now
    ).total_seconds() / 3600.0 <= params.window_hours


def closes_at(story: StoryState, params: GroupingParams) -> datetime:
    """When the story closes if nothing joins it any more."""
    return story.last_seen + timedelta(hours=params.window_hours)


def _join_bar(
    language: str | None, story_languages: Sequence[str], params: GroupingParams
) -> float:
    """The anchor similarity an article needs to join a story, by the languages involved."""
    if language is None or all(other == language for other in story_languages):
        return params.rewrite_min_similarity
    if language in story_languages:
        return params.version_min_similarity
    return params.translation_min_similarity


def article_views(fp: Fingerprint, stats: TokenStats, params: GroupingParams) -> ArticleViews:
    """The anchor weights of `fp` in its two views, as `assign_story` weighs them (`stats` need
    only hold the article's anchors)."""
    return _AnchorWeights(stats, params).views(fp.anchors[:COMPARED_ANCHORS])


def joinable(
    fp: Fingerprint,
    views: ArticleViews,
    story: StoryState,
    now: datetime,
    params: GroupingParams,
) -> bool:
    """Whether `assign_story` could place `fp` (its `article_views`) in `story`, whatever the
    weights of the story's anchors that the article does not carry: an open story with its
    text or a same-language near duplicate, or one whose anchor cosine could reach the bar. By
    Cauchy-Schwarz a view's cosine is at most the share of the article's norm in the anchors
    the two share; a story below the bar by that bound is never joined, so the statistics of
    its other anchors need not be read, nor the story weighed."""
    if not is_open(story, now, params):
        return False
    if fp.content_hash in story.content_hashes:
        return True
    if fp.lang is not None and fp.lang in story.languages:
        distance = min(hamming(fp.simhash, value) for value in story.simhashes)
        if distance <= params.near_duplicate_max_distance:
            return True
    shared = views.tokens.intersection(map(_token, story.anchors))
    if len(shared) < params.min_shared_anchors:
        return False
    bound = max(
        _norm_share(views.spelling, views.spelling_norm, shared),
        _norm_share(views.sound, views.sound_norm, shared),
    )
    age_hours = (now - story.last_seen).total_seconds() / 3600.0
    bar = _join_bar(fp.lang, story.languages, params)
    return bound * time_decay(age_hours, params) >= bar * (1 - _BOUND_MARGIN)


def _norm_share(view: Mapping[str, float], norm: float, shared: Iterable[str]) -> float:
    """The share of a view's norm in the `shared` anchors (0 for an empty view)."""
    if norm <= 0:
        return 0.0
    return math.sqrt(sum(view[token] ** 2 for token in shared if token in view)) / norm


_token = operator.itemgetter(0)
"""An anchor's token, from its (token, count) pair."""

_BOUND_MARGIN = 1e-9
"""Relative slack of `joinable`'s bound: rounding must not make it prune a story whose cosine
equals it."""


def assign_story(
    fp: Fingerprint,
    candidates: Sequence[StoryState],
    now: datetime,
    *,
    stats: TokenStats | None = None,
    params: GroupingParams = DEFAULT_PARAMS,
) -> Decision:
    """Join the best matching open story, or start a new story.

    An exact copy wins, then the closest same-language near duplicate, then the best anchor
    match (a translation, or a same-language rewrite above a stricter bar). Closed stories
    are ignored; anchor evidence fades with the time since the story was last active.
    """
    token_stats = stats or TokenStats()
    language = fp.lang or UNKNOWN_LANGUAGE
    open_stories = [story for story in candidates if is_open(story, now, params)]
    for story in open_stories:
        if fp.content_hash in story.content_hashes:
            return Decision(story.story_id, False, "exact", 1.0)

    near = [
        (min(hamming(fp.simhash, value) for value in story.simhashes), story)
        for story in open_stories
        if fp.lang is not None and fp.lang in story.languages
    ]
    near = [(d, story) for d, story in near if d <= params.near_duplicate_max_distance]
    if near:
        distance, best = min(near, key=lambda item: (item[0], -item[1].version))
        return Decision(best.story_id, False, "near_duplicate", 1.0 - distance / SIMHASH_BITS)

    best_decision: Decision | None = None
    weights = _AnchorWeights(token_stats, params)
    own_views = weights.views(fp.anchors[:COMPARED_ANCHORS])
    for story in open_stories:
        if not joinable(fp, own_views, story, now, params):
            continue  # too little in common to reach the bar, whatever the weights: not weighed
        cosine, shared = weights.similarity(own_views, story.anchors, story.members)
        if shared < params.min_shared_anchors:
            continue
        age_hours = (now - story.last_seen).total_seconds() / 3600.0
        score = cosine * time_decay(age_hours, params)
        bar = _join_bar(fp.lang, story.languages, params)
        if shared < params.confident_shared_anchors:
            bar = max(bar, params.thin_evidence_min_similarity)
        if score < bar or (best_decision is not None and score <= best_decision.similarity):
            continue
        reason: JoinReason = "near_duplicate" if language in story.languages else "translation"
        best_decision = Decision(story.story_id, False, reason, score)
    if best_decision is not None:
        return best_decision
    return Decision(new_story_id(fp.article_id), True, "new", 0.0)
