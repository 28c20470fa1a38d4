"""What a text says whatever its script: numbers in every digit system, names as sound keys,
and words of scripts written without spaces.

* Numbers: every Unicode decimal digit (Arabic-Indic, Devanagari, Thai, full-width...) reads
  as its ASCII digit, and a CJK multiplier (3万, 1.2億, 5억) multiplies.
* Names: a word is romanised (anyascii, every script) and reduced to its consonant skeleton in
  sound classes, so the spellings a name takes in other scripts agree: "Putin", "Путин",
  "プーチン", "بوتين", "פוטין", "पुतिन", "푸틴" all give "~ptn". Vowels, h/w/y (and kh, the
  h of Russian and Arabic romanisations: Khamas, Hamas), doubled consonants, voicing (p/b,
  t/d, k/g, s/z), l/r, m/n and the r of non-rhotic renderings ("Ford", "フォード") are what
  romanisations disagree on, so the key ignores them.
* Name candidates: capitalised words in scripts with letter case; in scripts without case,
  runs of Katakana (the script Japanese writes foreign names in) and every word of the other
  caseless scripts written with spaces (Arabic, Hebrew, Devanagari, Hangul...): there the
  index's statistics, not the spelling, tell names from common words.
* Words: scripts written without spaces (Han, Kana, Thai, Lao, Khmer, Myanmar) count one
  character as one word, so shingles are character n-grams there.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator

import fugashi
from anyascii import anyascii

UNSPACED = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Han
    "\uff66-\uff9f"  # half-width Katakana
)
"""Scripts written without spaces between words (character ranges for a regex class)."""

_CASED_LETTERS = "".join(
    chr(code) for code in range(0x3000) if chr(code).isalpha() and chr(code).swapcase() != chr(code)
)
_UPPERCASE = "".join(character for character in _CASED_LETTERS if character.isupper())
_LOWERCASE = "".join(character for character in _CASED_LETTERS if character.islower())
_MARKS = "".join(
    chr(code) for code in range(0x10000) if unicodedata.category(chr(code)) in ("Mn", "Mc")
)
"""Combining marks: vowel signs of Indic scripts, Thai, harakat... are part of their word."""

WORD = re.compile(rf"[{UNSPACED}]|[^\W{UNSPACED}]+")
"""A word for shingles: a run of word characters, or one character of an unspaced script
(combining marks split words alike in every copy, so they need not join them here)."""

# The patterns that scan whole texts start with a character class, not with a repetition or a
# lookbehind: `\d\d*` for `\d+`, `[K][K]+` for `[K]{2,}`, and "not after a letter or digit"
# checked after the first letter (a lookbehind of two characters, the second being that
# letter). `re` then skips from one character that can start a match to the next instead of
# trying the whole pattern at every position: the scans take about half the time.
NUMBER = re.compile(
    r"\d\d*(?:[.,\u066b\u066c\u00a0\u202f ]\d+)*(?:[万萬亿億억만千])?"
)  # fmt: skip
"""A number in any digit script, its group and decimal separators, and a CJK multiplier."""

CAPITALISED = re.compile(
    rf"[{_UPPERCASE}](?<![{_CASED_LETTERS}{_MARKS}\d].)[{_CASED_LETTERS}{_MARKS}]*"
)
"""A word of a cased script (Latin, Greek, Cyrillic, Armenian...) starting with a capital;
it ends where its script does ("BJPの" is "BJP")."""

LOWERCASE_WORD = re.compile(
    rf"[{_LOWERCASE}](?<![{_CASED_LETTERS}{_MARKS}\d].)[{_CASED_LETTERS}{_MARKS}]*"
)
"""A word of a cased script starting with a small letter: a common word, not a name."""

_KATAKANA = "\u30a1-\u30fa\u30fc\uff66-\uff9f"
_KATAKANA_RUN = re.compile(rf"[{_KATAKANA}][{_KATAKANA}]+")
"""Katakana words; the middle dot (・) between a first and last name ends a word."""
_CASELESS_WORD = re.compile(
    rf"[^\W\d_{_CASED_LETTERS}{UNSPACED}](?:[^\W\d_{_CASED_LETTERS}{UNSPACED}]|[{_MARKS}])+"
)
"""A word of a caseless script written with spaces (Arabic, Hebrew, Indic, Hangul...)."""

_MULTIPLIERS = {
    "万": 10_000,
    "萬": 10_000,
    "만": 10_000,
    "千": 1_000,
    "亿": 100_000_000,
    "億": 100_000_000,
    "억": 100_000_000,
}
_GROUP_SEPARATOR = re.compile(r"[.,\u066b\u066c\u00a0\u202f ]")

_DIGRAPHS = (
    ("dzh", "s"),
    ("sch", "s"),
    ("tch", "t"),
    ("ch", "t"),
    ("sh", "s"),
    ("zh", "s"),
    ("dj", "s"),
    ("ts", "s"),
    ("tz", "s"),
    ("th", "t"),
    ("ph", "p"),
    ("kh", "h"),
    ("gh", "k"),
    ("ck", "k"),
    ("qu", "k"),
    ("ng", "n"),
)
"""Romanisation digraphs, longest first, and the sound class each stands for."""
_SOFT_C = re.compile(r"c(?=[eiy])")
_CLASSES = str.maketrans(
    {
        "b": "p",
        "f": "p",
        "v": "p",
        "d": "t",
        "g": "k",
        "q": "k",
        "c": "k",
        "x": "k",
        "z": "s",
        "j": "s",
        "l": "r",
        "m": "n",
    }
)
_VOWELS = re.compile(r"[aeiouyhw]+")
_NON_RHOTIC_R = re.compile(r"(?<=[aeiouyhw])r(?=[^aeiouy]|$)")
_DOUBLED = re.compile(r"(.)(?=\1)")
"""A letter that the same letter follows: removing it leaves one of each run, and a literal
replacement keeps `sub` in C (a group reference calls Python per match)."""
_NOT_LETTER = re.compile(r"[^a-z]+")
MAX_KEY_CLASSES = 5
"""Sound classes kept of a name: long compounds still agree on their start."""
MIN_KEY_CLASSES = 2
"""Shorter keys ("~n") say nothing."""


def ascii_digits(number: str) -> str:
    """The number with every decimal digit of any script as its ASCII digit."""
    if number.isascii():
        return number
    return "".join(
        str(unicodedata.decimal(character)) if character.isdecimal() else character
        for character in number
    )


def normalise_number(raw: str) -> str:
    """One spelling per number across conventions and scripts: "1 400", "1.400", "1,400",
    and the same in Arabic-Indic digits -> "1400"; "3,1" and "3.1" -> "3.1"; "3万" -> "30000"."""
    multiplier = _MULTIPLIERS.get(raw[-1], 1)
    digits = ascii_digits(raw[:-1] if multiplier > 1 else raw).strip()
    groups = _GROUP_SEPARATOR.split(digits)
    if len(groups) == 1:
        value = groups[0].lstrip("0") or "0"
    elif len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:]):
        value = "".join(groups).lstrip("0") or "0"
    elif len(groups) == 2:
        value = (groups[0].lstrip("0") or "0") + "." + groups[1]
    else:
        value = "".join(groups)
    if multiplier == 1:
        return value
    scaled = float(value) * multiplier
    return str(int(scaled)) if scaled.is_integer() else f"{scaled:g}"


@functools.lru_cache(maxsize=1 << 16)
def sound_key(word: str) -> str:
    """The word's consonant skeleton in sound classes ("" when too short to say anything)."""
    latin = _NOT_LETTER.sub("", anyascii(word).lower())
    for digraph, sound in _DIGRAPHS:
        if digraph in latin:
            latin = latin.replace(digraph, sound)
    latin = _NON_RHOTIC_R.sub("", _SOFT_C.sub("s", latin))
    skeleton = _DOUBLED.sub("", _VOWELS.sub("", latin.translate(_CLASSES)))
    if len(skeleton) < MIN_KEY_CLASSES:
        return ""
    return skeleton[:MAX_KEY_CLASSES]


def caseless_names(text: str, lang: str | None) -> Iterator[str]:
    """Name candidates of scripts without letter case: in Japanese, the proper nouns and
    unknown Katakana words of MeCab's UniDic analysis (as read: 岸田 -> キシダ); in other texts,
    Katakana words; and the words of the caseless scripts written with spaces (Arabic,
    Hebrew, Devanagari, Hangul...)."""
    if lang == "ja":
        yield from _japanese_names(text)
    else:
        for match in _KATAKANA_RUN.finditer(text):
            yield match.group()
    for match in _CASELESS_WORD.finditer(text):
        yield match.group()


_PROPER_NOUN = "固有名詞"


@functools.cache
def _japanese_tagger() -> fugashi.Tagger:
    """MeCab with UniDic (unidic-lite), made on first use: about 25 MB, mapped."""
    return fugashi.Tagger()


def _japanese_names(text: str) -> Iterator[str]:
    """Proper nouns of a Japanese text as read, and the Katakana words the dictionary does
    not know (foreign names, mostly); known loanwords (ゴール, ニュース) are no names."""
    for word in _japanese_tagger()(text):
        feature = word.feature
        if feature.pos2 == _PROPER_NOUN:
            yield feature.kana or word.surface
        elif feature.kana is None:
            for match in _KATAKANA_RUN.finditer(word.surface):
                yield match.group()
