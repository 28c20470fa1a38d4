"""Configuration of the topics the alerter matches.

The simple form is a name and keywords (any keyword matches). The full form combines
terms with `all_of` / `any_of` / `none_of`, marks names as entities, gives per-language
variants, filters on language, source and tags, and asks for a minimum story size.
"""

from __future__ import annotations

import unicodedata

from pydantic import Field, ValidationInfo, field_validator, model_validator

from contracts.base import ConfigModel
from contracts.keywords import function_word_refusal
from contracts.streams import topic_slug

MAX_TOPIC_NAME_CHARS = 80
"""Longest topic name: it is shown in alerts and is part of a stream name."""
MAX_TERM_CHARS = 100
"""Longest term or variant: a phrase, not a text."""
MAX_TERMS_PER_TOPIC = 100
"""Most terms, variants included, in one topic: each is matched against every story."""
STORED = {"stored": True}
"""Validation context of a topic read back from storage: accepted when written, it is not
refused now for a rule added since (function-word keywords)."""
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Zl", "Zp"})
"""Control and format characters (NUL, newlines, bidirectional overrides such as U+202E),
private-use and surrogate code points, line and paragraph separators."""


def readable_text(value: str, what: str, max_chars: int) -> str:
    """`value` in NFC without surrounding spaces; ValueError when it is blank, longer than
    `max_chars` or holds a character that is not printed as itself."""
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise ValueError(f"{what} must not be blank")
    if len(text) > max_chars:
        raise ValueError(f"{what} is {len(text)} characters long; at most {max_chars}")
    for character in text:
        if unicodedata.category(character) in _INVISIBLE_CATEGORIES:
            raise ValueError(f"{what} holds the control or format character U+{ord(character):04X}")
    return text


class TermConfig(ConfigModel):
    """One term: a word or phrase written once, optionally with per-language variants."""

    term: str = Field(min_length=1)
    variants: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Per-language spellings (ISO 639-1 -> phrases), matched in that language.",
    )
    entity: bool = Field(
        default=False,
        description="A name (person, organisation): matched as written, never inflected, "
        "and only where the text capitalises it.",
    )
    translate: bool = Field(
        default=True, description="Also match the term's entries in the built-in lexicon."
    )

    @field_validator("term")
    @classmethod
    def _readable_term(cls, term: str) -> str:
        return readable_text(term, "a term", MAX_TERM_CHARS)

    @field_validator("variants")
    @classmethod
    def _readable_variants(cls, variants: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        return {
            lang: tuple(readable_text(v, "a variant", MAX_TERM_CHARS) for v in phrases)
            for lang, phrases in variants.items()
        }


Term = str | TermConfig
"""A term as users write it: a plain string, or a `TermConfig`."""


def as_term(term: Term) -> TermConfig:
    """The full form of a term written either way."""
    return term if isinstance(term, TermConfig) else TermConfig(term=term)


class TopicConfig(ConfigModel):
    """A topic users subscribe to.

    An article matches when every `all_of` term, at least one `any_of` (or `keywords`)
    term and no `none_of` term occurs in it, and it passes the filters; a story
    matches when any of its articles does and it is large enough.
    """

    name: str = Field(min_length=1)
    keywords: tuple[str, ...] = Field(
        default=(), description="Simple form: any of these matches (same as `any_of`)."
    )
    all_of: tuple[Term, ...] = ()
    any_of: tuple[Term, ...] = ()
    none_of: tuple[Term, ...] = ()
    entities: tuple[str, ...] = Field(
        default=(), description="Names, any of which matches (entity terms added to `any_of`)."
    )
    languages: tuple[str, ...] = Field(
        default=(), description="Only articles in these languages count (empty: all)."
    )
    sources: tuple[str, ...] = Field(
        default=(), description="Only articles from these sources count (empty: all)."
    )
    tags: tuple[str, ...] = Field(
        default=(), description="Only articles with one of these tags count (empty: all)."
    )
    min_sources: int | None = Field(
        default=None, ge=1, description="Story size: at least this many outlets..."
    )
    min_languages: int | None = Field(
        default=None, ge=1, description="...or at least this many languages (either suffices)."
    )
    updates: bool = Field(default=True, description="Send update alerts when the story spreads.")

    @field_validator("name")
    @classmethod
    def _readable_name(cls, name: str) -> str:
        text = readable_text(name, "a topic name", MAX_TOPIC_NAME_CHARS)
        if topic_slug(text) == "topic" and text.casefold() != "topic":
            raise ValueError("a topic name needs a letter or a digit")
        return text

    @field_validator("keywords", "entities")
    @classmethod
    def _readable_keywords(cls, keywords: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(
            readable_text(k, "a keyword", MAX_TERM_CHARS) for k in keywords if k.strip()
        )
        if keywords and not cleaned:
            raise ValueError("a topic needs at least one non-blank keyword")
        return cleaned

    @model_validator(mode="after")
    def _has_positive_terms(self) -> TopicConfig:
        if not (self.keywords or self.all_of or self.any_of or self.entities):
            raise ValueError("a topic needs keywords, all_of, any_of or entities")
        return self

    @model_validator(mode="after")
    def _bounded(self) -> TopicConfig:
        terms = (*self.required_terms(), *self.optional_terms(), *self.excluded_terms())
        count = sum(1 + sum(map(len, t.variants.values())) for t in terms)
        if count > MAX_TERMS_PER_TOPIC:
            raise ValueError(
                f"a topic holds {count} terms and variants; at most {MAX_TERMS_PER_TOPIC}"
            )
        return self

    @model_validator(mode="after")
    def _no_function_word_keywords(self, info: ValidationInfo) -> TopicConfig:
        if (info.context or {}).get("stored"):
            return self
        for term in (*self.required_terms(), *self.optional_terms(), *self.excluded_terms()):
            refusals = (
                function_word_refusal(term.term, self.languages),
                *(
                    function_word_refusal(phrase, (lang,))
                    for lang, phrases in term.variants.items()
                    for phrase in phrases
                ),
            )
            refusal = next((r for r in refusals if r), None)
            if refusal:
                raise ValueError(refusal)
        return self

    def required_terms(self) -> tuple[TermConfig, ...]:
        """Terms that must all occur."""
        return tuple(as_term(term) for term in self.all_of)

    def optional_terms(self) -> tuple[TermConfig, ...]:
        """Terms one of which must occur (none: no such condition)."""
        return (
            *(as_term(term) for term in self.keywords),
            *(as_term(term) for term in self.any_of),
            *(TermConfig(term=name, entity=True, translate=False) for name in self.entities),
        )

    def excluded_terms(self) -> tuple[TermConfig, ...]:
        """Terms none of which may occur."""
        return tuple(as_term(term) for term in self.none_of)
