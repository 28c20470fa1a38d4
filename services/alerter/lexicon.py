"""Loading the multilingual lexicon, and the lemmatizer (simplemma, offline data)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import simplemma
import yaml

from services.alerter.core import Lexicon

BUILT_IN = "lexicon.yaml"


def load_lexicon(path: Path | None = None) -> Lexicon:
    """The lexicon in `path`, or the built-in one (services/alerter/lexicon.yaml)."""
    if path is None:
        text = files("services.alerter").joinpath(BUILT_IN).read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    entries = tuple(
        {str(lang): tuple(str(phrase) for phrase in phrases) for lang, phrases in entry.items()}
        for entry in data.get("entries", ())
    )
    return Lexicon(entries)


def simplemma_lemma(word: str, lang: str) -> str:
    """The word's lemma in `lang` (ISO 639-1, region suffix ignored); the word itself when
    simplemma does not know the language. simplemma's dictionaries ship in the wheel."""
    try:
        return str(simplemma.lemmatize(word, lang=lang[:2].lower()))
    except ValueError:
        return word
