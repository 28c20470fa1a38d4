"""Keywords made only of function words ("the", "of the", "le", "der"): they match nearly
every article, so topics refuse them.

The function words of each language (articles, determiners, pronouns, prepositions,
conjunctions, the commonest auxiliaries) are data: `contracts/function_words/<code>.txt`,
one file per ISO 639-1 code, whitespace-separated words, `#` comments. A keyword is checked
against the languages its topic is filtered to, or against every language when the topic
takes all: a word is only found in the lists of its own script, so "the" is checked as
English and "и" as Russian or Ukrainian. A word written in capitals ("US", "AI", "IT",
"WHO") is an acronym and never a function word.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.resources import files

DATA_DIR = "function_words"
"""Folder of `contracts` holding one function-word file per language."""

LANGUAGE_ALIASES = {"nb": "no", "nn": "no", "sr": "hr", "bs": "hr"}
"""Codes whose words are in another language's file (Norwegian written forms, the Latin
spelling of Serbian and Bosnian)."""

WORD = re.compile(
    r"[\w\u0900-\u0963\u0966-\u0dff\u0e00-\u0eff\u1000-\u109f\u1780-\u17d3\u3099\u309a]+"
)
"""A word: as the alerter's matcher splits text (services/alerter/core.py), letters and
digits with the vowel signs of Indic and South-East Asian scripts and kana voicing marks."""

_KEPT_COMBINING = frozenset({"\u3099", "\u309a"})


def fold(word: str) -> str:
    """A word as the matcher compares it: NFKD, case folded, accents dropped ("Über" ->
    "uber"); kana voicing marks kept."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", word).casefold())
    return "".join(
        mark for mark in decomposed if not unicodedata.combining(mark) or mark in _KEPT_COMBINING
    )


def is_acronym(word: str) -> bool:
    """A word written in capitals, two characters or more: "US", "AI", "ИИ", "G7"."""
    return len(word) >= 2 and word.isupper()


def parse_word_list(text: str) -> frozenset[str]:
    """The folded words of a function-word file."""
    lines = (line.partition("#")[0] for line in text.splitlines())
    return frozenset(fold(word) for line in lines for word in line.split())


@cache
def function_words() -> Mapping[str, frozenset[str]]:
    """Every language's function words, folded, by ISO 639-1 code (read once)."""
    folder = files("contracts").joinpath(DATA_DIR)
    return {
        entry.name.removesuffix(".txt"): parse_word_list(entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".txt")
    }


def language_code(lang: str) -> str:
    """The code of the file that holds `lang`'s words: "pt-BR" -> "pt", "nb" -> "no"."""
    code = lang.split("-")[0].split("_")[0].lower()
    return LANGUAGE_ALIASES.get(code, code)


def function_word_languages(
    keyword: str,
    languages: Iterable[str] = (),
    lists: Mapping[str, frozenset[str]] | None = None,
) -> tuple[str, ...]:
    """The languages in which every word of `keyword` is a function word, among `languages`
    (all of `lists` when none; languages without a list are not checked), sorted; () when
    the keyword holds a content word, an acronym, or no word at all."""
    lists = function_words() if lists is None else lists
    words = WORD.findall(unicodedata.normalize("NFC", keyword))
    if not words or any(is_acronym(word) for word in words):
        return ()
    folded = {fold(word) for word in words}
    wanted = {language_code(lang) for lang in languages} or set(lists)
    return tuple(sorted(lang for lang in wanted if folded <= lists.get(lang, frozenset())))


def function_word_refusal(keyword: str, languages: Iterable[str] = ()) -> str | None:
    """Why a topic cannot hold `keyword` (it is only function words in a language it is
    matched in), or None."""
    languages = tuple(languages)
    found = function_word_languages(keyword, languages)
    if not found:
        return None
    where = ", ".join(found)
    advice = "add a word that names the subject"
    if not languages:
        advice += ", or set the topic's `languages` to those it is written in"
    if len(keyword) <= 5 and len(WORD.findall(keyword)) == 1:
        advice += "; an acronym is accepted written in capitals (US, AI)"
    return (
        f"the keyword {keyword!r} is only function words in {where}: it would match nearly "
        f"every article; {advice}"
    )
