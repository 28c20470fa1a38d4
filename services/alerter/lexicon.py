"""Loading the multilingual lexicon, and the lemmatizer (simplemma, offline data).

simplemma's dictionaries are read through MARISA tries (`TrieLemmatizer`): the same lemmas as
its default in-memory dicts, at about 5 MB a language instead of about 60 (12 languages: 62
MB against 880; see benchmarks/bench_alerter_memory.py and the README)."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import threading
from importlib.resources import files
from pathlib import Path

import simplemma
import yaml
from platformdirs import user_cache_dir
from simplemma.strategies import DefaultStrategy
from simplemma.strategies.dictionaries import TrieDictionaryFactory
from simplemma.strategies.dictionaries.dictionary_factory import SUPPORTED_LANGUAGES

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


LANGUAGES_KEPT = 16
"""Most languages whose trie stays loaded (least recently used first out); a trie loads from
disk in milliseconds, so a stream of more languages costs reloads, not memory."""

_ALIASES = {"hr": "hbs", "sr": "hbs", "bs": "hbs", "no": "nb"}
"""ISO 639-1 codes simplemma files under another name (Serbo-Croatian, Norwegian)."""


def _build_trie(lang: str, cache_dir: str) -> None:
    """Build `lang`'s trie into `cache_dir` (run in a child: the build holds the whole dict)."""
    with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        TrieDictionaryFactory(cache_max_size=1, disk_cache_dir=scratch).get_dictionary(lang)
        os.replace(Path(scratch) / f"{lang}.dic", Path(cache_dir) / f"{lang}.dic")


class TrieLemmatizer:
    """simplemma's lemmas (its default strategy and dictionaries) read through MARISA tries
    cached on disk, at most `languages_kept` languages loaded at once.

    A language's trie is built once per machine, in a child process so that the full
    dictionary built on the way never counts against this process's memory (the first
    article of that language waits 0.3-7 s), then written atomically to `cache_dir`
    (default: the user's cache folder, or the temporary folder when that is not writable).
    """

    def __init__(self, cache_dir: Path | None = None, languages_kept: int = LANGUAGES_KEPT):
        self._cache_dir = _writable(cache_dir)
        factory = TrieDictionaryFactory(
            cache_max_size=languages_kept, disk_cache_dir=str(self._cache_dir)
        )
        strategy = DefaultStrategy(dictionary_factory=factory)
        self._lemmatizer = simplemma.Lemmatizer(lemmatization_strategy=strategy)
        self._ready: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, word: str, lang: str) -> str:
        """The word's lemma in `lang` (ISO 639-1, region suffix ignored); the word itself
        when simplemma does not know the language."""
        code = lang[:2].lower()
        code = _ALIASES.get(code, code)
        if code not in SUPPORTED_LANGUAGES:
            return word
        if code not in self._ready:
            self._prepare(code)
        return str(self._lemmatizer.lemmatize(word, code))

    def _prepare(self, code: str) -> None:
        with self._lock:
            if code in self._ready:
                return
            if not (self._cache_dir / f"{code}.dic").exists():
                child = multiprocessing.get_context("spawn").Process(
                    target=_build_trie, args=(code, str(self._cache_dir)), daemon=True
                )
                child.start()
                child.join()
                # on failure the factory builds the trie in this process, as simplemma does
            self._ready.add(code)


def _writable(cache_dir: Path | None) -> Path:
    version = f"simplemma-{simplemma.__version__}"
    choices = [cache_dir] if cache_dir else []
    choices += [
        Path(user_cache_dir("newsmon")) / version,
        Path(tempfile.gettempdir()) / f"newsmon-{os.getuid()}" / version,
    ]
    for choice in choices:
        try:
            choice.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(choice, os.W_OK) and choice.stat().st_uid == os.getuid():
            return choice  # ours alone: another user could not swap the tries in a shared /tmp
    return choices[-1]


_shared: TrieLemmatizer | None = None


def simplemma_lemma(word: str, lang: str) -> str:
    """The word's lemma in `lang` through one process-wide `TrieLemmatizer`."""
    global _shared
    if _shared is None:
        _shared = TrieLemmatizer()
    return _shared(word, lang)
