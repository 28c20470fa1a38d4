"""The alerter's pure core: which topics an article matches, and the alert policy.

Terms are written once, in any language, and match across case, accents, punctuation,
a plural ending and inflection (the article's words and the term's words are compared
through their lemmas in the article's language), on whole words. A term also matches its
per-language variants, given in the topic or found in the lexicon, in articles of that
language. Entity terms (names) match only as written and capitalised.

Compile the topics once with `CompiledTopics`; per article language the terms are
compiled once more (lemmas depend on the language), and an article's words are indexed
once, so every term is a dictionary lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from contracts.messages import MatchedTerm, StorySnapshot, TopicAlert
from contracts.topics import TermConfig, TopicConfig

EXCERPT_CHARS = 80
"""Target length of the excerpt shown around a match, characters."""

MAX_GAP_CHARS = 5
"""Most characters of spaces or punctuation allowed between two words of a keyword."""

_WORD_RUN = re.compile(
    r"[\w\u0900-\u0963\u0966-\u0dff\u0e00-\u0eff\u1000-\u109f\u1780-\u17d3\u3099\u309a]+"
)
"""A word of folded text: letters and digits, and the vowel signs of Indic, Thai, Lao, Myanmar
and Khmer script and kana voicing marks, which Python's \\w leaves out although they are
inside words. Folding turned "_" into a space, so it separates words."""
_WHITESPACE = re.compile(r"\s")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_PLURAL_ENDINGS = ("s", "es")

_KEPT_COMBINING = frozenset({"\u3099", "\u309a"})
"""Kana voicing marks distinguish words (カ/ガ); every other combining mark is an accent."""

_UNSPACED_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "THAI", "LAO", "KHMER", "MYANMAR")
"""Scripts whose words are not separated by spaces: such keywords match as substrings."""

Field = Literal["title", "text"]

Lemmatize = Callable[[str, str], str]
"""(word, ISO 639-1 language) -> the word's dictionary form; the word itself when unknown."""


def no_lemmas(word: str, lang: str) -> str:
    """A lemmatizer that knows no language: matching then relies on plural endings only."""
    return word


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Common terms in several languages: each entry maps a language to its phrases.

    A topic term found in an entry (in any of its languages) also matches the entry's
    phrases of every language, each in articles of its own language.
    """

    entries: tuple[Mapping[str, tuple[str, ...]], ...] = ()
    _index: dict[str, int] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for number, entry in enumerate(self.entries):
            for phrases in entry.values():
                for phrase in phrases:
                    self._index.setdefault(" ".join(_WORD_RUN.findall(fold(phrase))), number)

    def variants(self, term: str) -> Mapping[str, tuple[str, ...]]:
        """The entry holding `term` (language -> phrases), or an empty mapping."""
        number = self._index.get(" ".join(_WORD_RUN.findall(fold(term))))
        return self.entries[number] if number is not None else {}


@dataclass(frozen=True, slots=True)
class TopicMatch:
    """A topic an article matched, with the first place each term was found per field."""

    topic: str
    matched: tuple[MatchedTerm, ...]


@dataclass(frozen=True, slots=True)
class _Word:
    """One word of a term: the folded forms a text word may take to match it."""

    forms: frozenset[str]
    entity: bool


@dataclass(frozen=True, slots=True)
class _Term:
    """A term as written, and the word sequences (or the pattern) that spell it."""

    term: str
    spellings: tuple[tuple[_Word, ...], ...]
    patterns: tuple[re.Pattern[str], ...]


@dataclass(frozen=True, slots=True)
class _CompiledTopic:
    config: TopicConfig
    required: tuple[_Term, ...]
    optional: tuple[_Term, ...]
    excluded: tuple[_Term, ...]


@dataclass(frozen=True, slots=True)
class _IndexedText:
    """Folded text, its words with their lemmas, and where each word form occurs."""

    original: str
    folded: str
    origin: tuple[int, ...] | None
    words: list[str]
    lemmas: list[str]
    word_spans: list[re.Match[str]]
    positions: dict[str, list[int]]
    """Each word and each lemma, and the indexes in `words` where it occurs."""

    def span(self, start: int, end: int) -> tuple[int, int]:
        if self.origin is None:
            return start, end
        return self.origin[start], self.origin[end - 1] + 1

    def original_word(self, index: int) -> str:
        start, end = self.span(*self.word_spans[index].span())
        return self.original[start:end]


class CompiledTopics:
    """Topics ready to match many articles."""

    __slots__ = ("_by_lang", "_lemma_cache", "_lemmatize", "_lexicon", "topics")

    def __init__(
        self,
        topics: Sequence[TopicConfig],
        *,
        lexicon: Lexicon | None = None,
        lemmatize: Lemmatize = no_lemmas,
    ) -> None:
        self.topics = tuple(topics)
        self._lexicon = lexicon or Lexicon()
        self._lemmatize = lemmatize
        self._by_lang: dict[str | None, tuple[_CompiledTopic, ...]] = {}
        self._lemma_cache: dict[tuple[str, str], str] = {}

    def match(
        self,
        *,
        article_id: str,
        title: str,
        text: str,
        lang: str | None = None,
        source: str | None = None,
        tags: Sequence[str] = (),
    ) -> list[TopicMatch]:
        """The topics the article matches and passes the filters of, in config order."""
        topics = self._compiled(lang)
        if not topics:
            return []
        fields: tuple[tuple[Field, _IndexedText], ...] = (
            ("title", self._index(title, lang)),
            ("text", self._index(text, lang)),
        )
        matches = []
        for topic in topics:
            if not _passes_filters(topic.config, lang=lang, source=source, tags=tags):
                continue
            matched = _evaluate(topic, fields, article_id)
            if matched:
                matches.append(TopicMatch(topic=topic.config.name, matched=matched))
        return matches

    def _compiled(self, lang: str | None) -> tuple[_CompiledTopic, ...]:
        compiled = self._by_lang.get(lang)
        if compiled is None:
            compiled = self._by_lang[lang] = tuple(
                self._compile_topic(topic, lang) for topic in self.topics
            )
        return compiled

    def _compile_topic(self, topic: TopicConfig, lang: str | None) -> _CompiledTopic:
        def terms(configs: Iterable[TermConfig]) -> tuple[_Term, ...]:
            compiled = (self._compile_term(config, lang) for config in configs)
            return tuple(term for term in compiled if term.spellings or term.patterns)

        return _CompiledTopic(
            config=topic,
            required=terms(topic.required_terms()),
            optional=terms(topic.optional_terms()),
            excluded=terms(topic.excluded_terms()),
        )

    def _compile_term(self, config: TermConfig, lang: str | None) -> _Term:
        """The term's own spelling (any language) and its variants for `lang` (all variants
        when the article's language is unknown)."""
        variants: dict[str, list[str]] = {}
        if config.translate and not config.entity:
            for variant_lang, phrases in self._lexicon.variants(config.term).items():
                variants.setdefault(variant_lang, []).extend(phrases)
        for variant_lang, phrases in config.variants.items():
            variants.setdefault(variant_lang, []).extend(phrases)
        phrases_by_lang: list[tuple[str, str | None]] = [(config.term, lang)]
        for variant_lang, spelled_phrases in variants.items():
            if lang is None or variant_lang == lang:
                phrases_by_lang.extend((phrase, variant_lang) for phrase in spelled_phrases)
        spellings: list[tuple[_Word, ...]] = []
        patterns: list[re.Pattern[str]] = []
        for phrase, phrase_lang in dict.fromkeys(phrases_by_lang):
            words = tuple(_WORD_RUN.findall(fold(phrase)))
            if not words:
                continue
            if any(_is_unspaced(char) for word in words for char in word):
                gap = rf"\W{{0,{MAX_GAP_CHARS}}}"
                patterns.append(re.compile(gap.join(re.escape(word) for word in words)))
                continue
            originals = phrase.split() if len(phrase.split()) == len(words) else list(words)
            spelled = tuple(
                self._term_word(word, original, phrase_lang, config.entity)
                for word, original in zip(words, originals, strict=True)
            )
            spellings.append(spelled)
            if len(words) > 1:
                joined = "".join(words)
                spellings.append((_Word(_inflections(joined), config.entity),))
        return _Term(term=config.term, spellings=tuple(spellings), patterns=tuple(patterns))

    def _term_word(self, word: str, original: str, lang: str | None, entity: bool) -> _Word:
        if entity:
            return _Word(frozenset({word}), entity=True)
        forms = set(_inflections(word))
        if lang is not None:
            forms.add(self._folded_lemma(original, lang))
        return _Word(frozenset(forms), entity=False)

    def _folded_lemma(self, word: str, lang: str) -> str:
        """The word's lemma in `lang`, folded; cached (at most 200,000 words)."""
        key = (word, lang)
        lemma = self._lemma_cache.get(key)
        if lemma is None:
            if len(self._lemma_cache) > 200_000:
                self._lemma_cache.clear()
            lemma = self._lemma_cache[key] = fold(self._lemmatize(word, lang)) or fold(word)
        return lemma

    def _index(self, text: str, lang: str | None) -> _IndexedText:
        folded, origin = _fold_with_origin(text)
        word_spans = list(_WORD_RUN.finditer(folded))
        words = [span.group() for span in word_spans]
        indexed = _IndexedText(
            original=text,
            folded=folded,
            origin=origin,
            words=words,
            lemmas=words,
            word_spans=word_spans,
            positions={},
        )
        lemmas: list[str] = words
        if lang is not None:
            lemmas = [
                self._folded_lemma(indexed.original_word(index), lang) or word
                for index, word in enumerate(words)
            ]
        positions: dict[str, list[int]] = {}
        for index, (word, lemma) in enumerate(zip(words, lemmas, strict=True)):
            positions.setdefault(word, []).append(index)
            if lemma != word:
                positions.setdefault(lemma, []).append(index)
        return _IndexedText(
            original=text,
            folded=folded,
            origin=origin,
            words=words,
            lemmas=lemmas,
            word_spans=word_spans,
            positions=positions,
        )


def match_topics(
    topics: Sequence[TopicConfig],
    *,
    article_id: str,
    title: str,
    text: str,
    lang: str | None = None,
    lexicon: Lexicon | None = None,
    lemmatize: Lemmatize = no_lemmas,
) -> list[TopicMatch]:
    """One-off matching; build `CompiledTopics` once instead when matching many articles."""
    compiled = CompiledTopics(topics, lexicon=lexicon, lemmatize=lemmatize)
    return compiled.match(article_id=article_id, title=title, text=text, lang=lang)


def _passes_filters(
    topic: TopicConfig, *, lang: str | None, source: str | None, tags: Sequence[str]
) -> bool:
    if topic.languages and lang not in topic.languages:
        return False
    if topic.sources and source not in topic.sources:
        return False
    return not topic.tags or not set(topic.tags).isdisjoint(tags)


def _evaluate(
    topic: _CompiledTopic, fields: Sequence[tuple[Field, _IndexedText]], article_id: str
) -> tuple[MatchedTerm, ...]:
    """The matched terms (field by field, in term order) when the article satisfies the
    topic's all/any/none conditions, else ()."""
    if not (topic.required or topic.optional):
        return ()
    if any(_first_occurrence(term, text) for term in topic.excluded for _, text in fields):
        return ()
    found: list[tuple[Field, _Term, _IndexedText, tuple[int, int]]] = []
    for field_name, text in fields:
        for term in (*topic.required, *topic.optional):
            span = _first_occurrence(term, text)
            if span is not None:
                found.append((field_name, term, text, span))
    found_terms = {id(term) for _, term, _, _ in found}
    if not all(id(term) in found_terms for term in topic.required):
        return ()
    if topic.optional and not any(id(term) in found_terms for term in topic.optional):
        return ()
    return tuple(
        MatchedTerm(
            term=term.term,
            article_id=article_id,
            field=field_name,
            excerpt=excerpt(text.original, *text.span(*span)),
        )
        for field_name, term, text, span in found
    )


def alert_id(story_id: str, topic: str) -> str:
    """Idempotency key of the alert for one story and one topic: "al-" and 16 hex digits."""
    key = f"{len(story_id)}:{story_id}:{topic}".encode("utf-8", "surrogatepass")
    return "al-" + hashlib.sha256(key).hexdigest()[:16]


def update_alert_id(story_id: str, topic: str, update_number: int) -> str:
    """Idempotency key of the n-th update alert (n >= 1) of a story and topic."""
    return f"{alert_id(story_id, topic)}-u{update_number}"


def fold(text: str) -> str:
    """Text as matching sees it: NFKD, accents dropped, case folded ("ÉNERGIE" -> "energie"),
    "_" as a space."""
    return _fold_with_origin(text)[0]


def _fold_char(char: str) -> str:
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", char).casefold())
    return "".join(
        mark for mark in decomposed if not unicodedata.combining(mark) or mark in _KEPT_COMBINING
    )


def _fold_with_origin(text: str) -> tuple[str, tuple[int, ...] | None]:
    """Folded text and, when lengths changed, each folded character's index in `text`.

    Only the non-ASCII runs are folded in Python; the ASCII majority is lower-cased in C.
    """
    if text.isascii():
        return text.lower().replace("_", " "), None
    memo: dict[str, str] = {}
    resized: list[tuple[int, str]] = []

    def fold_run(run: re.Match[str]) -> str:
        pieces = []
        for char in run.group():
            folded_char = memo.get(char)
            if folded_char is None:
                folded_char = memo[char] = _fold_char(char)
            pieces.append(folded_char)
        folded_run = "".join(pieces)
        if len(folded_run) != len(run.group()):
            resized.extend(zip(range(run.start(), run.end()), pieces, strict=True))
        return folded_run

    # Lower-casing folded text never changes its length: casefold output holds no "İ".
    folded = _NON_ASCII_RUN.sub(fold_run, text).lower().replace("_", " ")
    if not resized:
        return folded, None
    origin: list[int] = []
    copied_up_to = 0
    for index, folded_char in resized:
        origin.extend(range(copied_up_to, index))
        origin.extend([index] * len(folded_char))
        copied_up_to = index + 1
    origin.extend(range(copied_up_to, len(text)))
    return folded, tuple(origin)


def _is_unspaced(char: str) -> bool:
    return unicodedata.name(char, "").startswith(_UNSPACED_SCRIPTS)


def _inflections(word: str) -> frozenset[str]:
    """The forms of a term word that match in any language: itself and its -s/-es plurals."""
    return frozenset((word, *(word + ending for ending in _PLURAL_ENDINGS)))


def _is_capitalised(word: str) -> bool:
    """True for "Microsoft", "OPENAI" and words of scripts without case; False for "apple"."""
    first = word[:1]
    return first.upper() == first


def _first_occurrence(term: _Term, text: _IndexedText) -> tuple[int, int] | None:
    """[start, end) in folded text of the term's first occurrence, or None."""
    spans = [found.span() for p in term.patterns if (found := p.search(text.folded))]
    spans.extend(
        span for spelling in term.spellings if (span := _first_spelled(spelling, text)) is not None
    )
    return min(spans, default=None)


def _word_matches(word: _Word, text: _IndexedText, index: int) -> bool:
    if word.entity:
        return text.words[index] in word.forms and _is_capitalised(text.original_word(index))
    return text.words[index] in word.forms or text.lemmas[index] in word.forms


def _first_spelled(spelling: tuple[_Word, ...], text: _IndexedText) -> tuple[int, int] | None:
    starts = sorted({i for form in spelling[0].forms for i in text.positions.get(form, ())})
    for first in starts:
        last = first + len(spelling) - 1
        if last >= len(text.words):
            return None
        if not _word_matches(spelling[0], text, first):
            continue
        if all(
            _word_matches(word, text, first + offset)
            and text.word_spans[first + offset].start() - text.word_spans[first + offset - 1].end()
            <= MAX_GAP_CHARS
            for offset, word in enumerate(spelling[1:], start=1)
        ):
            return text.word_spans[first].start(), text.word_spans[last].end()
    return None


def excerpt(text: str, start: int, end: int, *, width: int = EXCERPT_CHARS) -> str:
    """About `width` characters of `text` around [start, end), cut at whitespace, on one line."""
    room = max(width - (end - start), 0)
    left = max(start - room // 2, 0)
    right = min(end + room - (start - left), len(text))
    left = max(min(left, right - width), 0)
    if left > 0:
        first_space = _WHITESPACE.search(text, left, start)
        left = first_space.end() if first_space else left
    if right < len(text):
        spaces_after = [space.start() for space in _WHITESPACE.finditer(text, end, right)]
        right = spaces_after[-1] if spaces_after else right
    snippet = " ".join(text[left:right].split())
    prefix = "…" if left > 0 else ""
    suffix = "…" if right < len(text) else ""
    return prefix + snippet + suffix


# --- alert policy -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertState:
    """What the last alert of a (story, topic) told subscribers."""

    update_number: int
    languages: tuple[str, ...]
    sources: tuple[str, ...]
    alerted_at: datetime


@dataclass(frozen=True, slots=True)
class UpdatePolicy:
    """When a story that spread deserves an update alert."""

    min_new_sources: int = 2
    """New outlets since the last alert that make an update (a new language always does)."""
    debounce_seconds: float = 3600.0
    """Least time between two alerts of one (story, topic), seconds."""


def story_is_large_enough(topic: TopicConfig, story: StorySnapshot) -> bool:
    """True when the story meets any of the topic's minimum sizes (or it sets none)."""
    thresholds = [
        (topic.min_sources, len(story.sources)),
        (topic.min_languages, len(story.languages)),
    ]
    wanted = [(minimum, size) for minimum, size in thresholds if minimum is not None]
    return not wanted or any(size >= minimum for minimum, size in wanted)


def new_alert(
    story: StorySnapshot, topic: str, matched: Sequence[MatchedTerm], now: datetime
) -> TopicAlert:
    """The first alert of a story for a topic."""
    return _alert(story, topic, matched, now, update_number=0, added=((), ()))


def update_alert(
    story: StorySnapshot,
    topic: str,
    matched: Sequence[MatchedTerm],
    state: AlertState,
    policy: UpdatePolicy,
    now: datetime,
) -> TopicAlert | None:
    """An update alert when the story gained a language or `min_new_sources` outlets since
    the last alert and that alert is at least `debounce_seconds` old; else None."""
    added_languages = tuple(lang for lang in story.languages if lang not in state.languages)
    added_sources = tuple(source for source in story.sources if source not in state.sources)
    if not added_languages and len(added_sources) < policy.min_new_sources:
        return None
    if (now - state.alerted_at).total_seconds() < policy.debounce_seconds:
        return None
    return _alert(
        story,
        topic,
        matched,
        now,
        update_number=state.update_number + 1,
        added=(added_languages, added_sources),
    )


def state_after(alert: TopicAlert) -> AlertState:
    """What subscribers know once `alert` is sent."""
    return AlertState(
        update_number=alert.update_number,
        languages=alert.languages,
        sources=alert.sources,
        alerted_at=alert.created_at,
    )


def _alert(
    story: StorySnapshot,
    topic: str,
    matched: Sequence[MatchedTerm],
    now: datetime,
    *,
    update_number: int,
    added: tuple[tuple[str, ...], tuple[str, ...]],
) -> TopicAlert:
    return TopicAlert(
        alert_id=(
            update_alert_id(story.story_id, topic, update_number)
            if update_number
            else alert_id(story.story_id, topic)
        ),
        kind="update" if update_number else "new",
        topic=topic,
        story_id=story.story_id,
        title=story.members[0].title if story.members else "",
        languages=story.languages,
        sources=story.sources,
        urls=tuple(member.url for member in story.members),
        matched=tuple(matched),
        created_at=now,
        update_number=update_number,
        added_languages=added[0],
        added_sources=added[1],
    )


# --- delivery -----------------------------------------------------------------------------

SIGNATURE_HEADER = "X-Newsmon-Signature"
"""`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, as Stripe-style receivers expect."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: int, tolerance_seconds: int = 300
) -> bool:
    """True when `header` signs `body` with `secret` and is at most `tolerance_seconds` old
    (receivers refuse replays of old deliveries)."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), f"t={timestamp},v1={parts.get('v1')}")


def is_retryable_status(status: int) -> bool:
    """Server errors, timeouts and rate limits may pass later; other refusals will not."""
    return status >= 500 or status in (408, 425, 429)
