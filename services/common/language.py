"""An article's language: the one declared when its text agrees, else the one its text shows.

One implementation for the cleaner (page declarations) and the detector (articles that come
without a language, in batch or from a feed that declares none).
"""

from __future__ import annotations

import re

import py3langid

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
    """The declared language when the text agrees enough, else py3langid's best 2-letter guess
    (None for a text without words and no declaration)."""
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
    """py3langid's ranking of the sample, 2-letter codes only; its cost grows with the sample."""
    return [code for code, _ in py3langid.rank(sample) if len(code) == 2]
