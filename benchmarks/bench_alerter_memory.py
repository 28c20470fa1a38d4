"""The alerter's lemmatiser: resident memory, CPU and topic-matching quality, 12 languages.

Articles come from ../shared/eval/stories/*.jsonl (the 12 most frequent `lang`s, up to
--per-lang each), interleaved as a stream would bring them. Each candidate lemmatiser runs
in a fresh process that imports the alerter, builds `CompiledTopics` with it and matches
every article; the process reports its resident memory (psutil RSS) and its CPU time
(first pass: dictionaries loaded on the way; second pass: a new `CompiledTopics`, so the
alerter's own lemma cache is cold but the lemmatiser's data is loaded).

Quality: per language, topics of one keyword each, taken from the articles themselves and
chosen without any lemmatiser: word forms in 3+ articles but under a third of them, of 5+
letters, that share their first 5 letters with another form of the same articles
(elections/election, Wahlen/Wahl), up to --keywords spread over the frequency ranks. The
reference is simplemma with its full dictionaries, all kept (simplemma keeps 8 languages by
default, and reloads one on every miss), Croatian through simplemma's "hbs":
recall = share of the reference's (topic, article) matches a candidate finds, precision =
share of a candidate's matches the reference also makes; "lemma recall" counts only the
matches the reference owes to lemmatising (not found by comparing word forms). The
worst language is named. `--examples` prints the keyword/word pairs where a candidate and
the reference disagree, to judge who is right.

    python benchmarks/bench_alerter_memory.py [--per-lang 150] [--keywords 40] [--examples 0]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / ".." / "shared" / "eval" / "stories"
LANGS = 12
WORD = re.compile(r"[^\W\d_]+")

Lemmatize = Callable[[str, str], str]

SNOWBALL = {
    "ar": "arabic", "ca": "catalan", "cs": "czech", "da": "danish", "de": "german",
    "el": "greek", "en": "english", "es": "spanish", "et": "estonian", "eu": "basque",
    "fa": "persian", "fi": "finnish", "fr": "french", "ga": "irish", "hi": "hindi",
    "hr": "serbian", "hu": "hungarian", "hy": "armenian", "id": "indonesian", "it": "italian",
    "lt": "lithuanian", "nb": "norwegian", "nl": "dutch", "no": "norwegian", "pl": "polish",
    "pt": "portuguese", "ro": "romanian", "ru": "russian", "sr": "serbian", "sv": "swedish",
    "ta": "tamil", "tr": "turkish",
}  # fmt: skip
"""ISO 639-1 -> Snowball algorithm (Croatian through the Serbian one, Latin script)."""


def _simplemma(**strategy: object) -> Lemmatize:
    import simplemma
    from simplemma.strategies import DefaultStrategy

    lemmatizer = simplemma.Lemmatizer(lemmatization_strategy=DefaultStrategy(**strategy))  # type: ignore[arg-type]

    def lemmatize(word: str, lang: str) -> str:
        code = lang[:2].lower()
        code = {"hr": "hbs", "sr": "hbs", "bs": "hbs"}.get(code, code)
        try:
            return str(lemmatizer.lemmatize(word, code))
        except ValueError:
            return word

    return lemmatize


def _today() -> Lemmatize:
    """The alerter before this benchmark: simplemma's module function, "hr" unknown."""
    import simplemma

    def lemmatize(word: str, lang: str) -> str:
        try:
            return str(simplemma.lemmatize(word, lang=lang[:2].lower()))
        except ValueError:
            return word

    return lemmatize


def _trie() -> Lemmatize:
    from simplemma.strategies.dictionaries import TrieDictionaryFactory

    cache = Path(tempfile.gettempdir()) / "newsmon-bench-simplemma-trie"
    factory = TrieDictionaryFactory(cache_max_size=16, disk_cache_dir=str(cache))
    return _simplemma(dictionary_factory=factory)


def _lru(size: int) -> Lemmatize:
    from simplemma.strategies.dictionaries import DefaultDictionaryFactory

    return _simplemma(dictionary_factory=DefaultDictionaryFactory(cache_max_size=size))


def _pystemmer(fallback: Lemmatize | None = None) -> Lemmatize:
    import Stemmer

    stemmers = {lang: Stemmer.Stemmer(name) for lang, name in SNOWBALL.items()}

    def lemmatize(word: str, lang: str) -> str:
        stemmer = stemmers.get(lang[:2].lower())
        if stemmer is None:
            return fallback(word, lang) if fallback else word
        return str(stemmer.stemWord(word.lower()))

    return lemmatize


def _snowballstemmer() -> Lemmatize:
    import snowballstemmer

    stemmers = {lang: snowballstemmer.stemmer(name) for lang, name in SNOWBALL.items()}

    def lemmatize(word: str, lang: str) -> str:
        stemmer = stemmers.get(lang[:2].lower())
        return str(stemmer.stemWord(word.lower())) if stemmer else word

    return lemmatize


def _service() -> Lemmatize:
    from services.alerter.lexicon import simplemma_lemma

    return simplemma_lemma


CANDIDATES: dict[str, Callable[[], Lemmatize]] = {
    "none (word forms only)": lambda: lambda word, lang: word,
    "simplemma today (module call, no hr)": _today,
    "simplemma full dicts (reference)": lambda: _lru(16),
    "simplemma greedy": lambda: _simplemma(greedy=True),
    "simplemma, 4 languages kept (LRU)": lambda: _lru(4),
    "simplemma low_memory (stream)": lambda: _simplemma(low_memory=True),
    "simplemma marisa-trie": _trie,
    "PyStemmer (Snowball, C)": _pystemmer,
    "snowballstemmer (pure Python)": _snowballstemmer,
    "PyStemmer + simplemma low_memory": lambda: _pystemmer(_simplemma(low_memory=True)),
    "service (services.alerter.lexicon)": _service,
}
REFERENCE = "simplemma full dicts (reference)"


def _articles(per_lang: int) -> list[dict[str, str]]:
    by_lang: dict[str, list[dict[str, str]]] = collections.defaultdict(list)
    for path in sorted(DATA.glob("*.jsonl")):
        for line in path.open(encoding="utf-8"):
            row = json.loads(line)
            by_lang[row["lang"]].append(row)
    langs = sorted(by_lang, key=lambda lang: (-len(by_lang[lang]), lang))[:LANGS]
    streams = [by_lang[lang][:per_lang] for lang in langs]
    interleaved = []
    for rank in range(max(len(s) for s in streams)):
        interleaved += [s[rank] for s in streams if rank < len(s)]
    return interleaved


def _keywords(articles: list[dict[str, str]], count: int) -> dict[str, list[str]]:
    """Per language, keywords chosen from the articles without any lemmatiser (function words
    left out: topics refuse them)."""
    from contracts.keywords import function_word_languages
    from services.alerter.core import fold

    docs: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    spelled: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(
        collections.Counter
    )
    sizes: collections.Counter[str] = collections.Counter()
    for article in articles:
        lang = article["lang"]
        sizes[lang] += 1
        words = WORD.findall(f"{article['title']} {article['text']}".lower())
        for word in set(words):
            docs[lang][fold(word)] += 1
            spelled[lang, fold(word)][word] += 1
    chosen = {}
    for lang, df in docs.items():
        family = collections.Counter(form[:5] for form, n in df.items() if n >= 2)
        pool = sorted(
            (form for form, n in df.items() if 3 <= n < sizes[lang] / 3),
            key=lambda form: (-df[form], form),
        )
        pool = [
            f
            for f in pool
            if len(f) >= 5
            and f.isalpha()
            and family[f[:5]] >= 2
            and not function_word_languages(f, (lang,))
        ]
        step = max(1, len(pool) // count)
        chosen[lang] = [spelled[lang, f].most_common(1)[0][0] for f in pool[::step][:count]]
    return chosen


def _worker(name: str, per_lang: int, count: int) -> None:
    import psutil

    from contracts import TopicConfig
    from services.alerter.app import create_service  # noqa: F401  (the service's imports)
    from services.alerter.core import CompiledTopics

    process = psutil.Process()
    articles = _articles(per_lang)
    keywords = _keywords(articles, count)
    topics = [
        TopicConfig(name=f"{lang}:{word}", keywords=(word,), languages=(lang,))
        for lang, words in keywords.items()
        for word in words
    ]
    rss_before = process.memory_info().rss
    lemmatize = CANDIDATES[name]()

    def run() -> tuple[float, list[list[str]]]:
        compiled = CompiledTopics(topics, lemmatize=lemmatize)
        started = time.process_time()
        matches = []
        for number, article in enumerate(articles):
            for match in compiled.match(
                article_id=str(number),
                title=article["title"],
                text=article["text"],
                lang=article["lang"],
            ):
                matches.append([match.topic, str(number)])
        return time.process_time() - started, matches

    first_cpu, matches = run()
    second_cpu, _ = run()
    print(
        json.dumps(
            {
                "rss": process.memory_info().rss,
                "rss_before": rss_before,
                "first_cpu": first_cpu,
                "second_cpu": second_cpu,
                "articles": len(articles),
                "matches": matches,
            }
        )
    )


def _run(name: str, per_lang: int, count: int) -> dict[str, object]:
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            name,
            f"--per-lang={per_lang}",
            f"--keywords={count}",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def _quality(
    found: set[tuple[str, str]], reference: set[tuple[str, str]], forms: set[tuple[str, str]]
) -> dict[str, tuple[float, float, float]]:
    """Per language: precision, recall and lemma recall against the reference."""
    out = {}
    langs = {topic.split(":")[0] for topic, _ in reference | found}
    for lang in sorted(langs):
        mine = {m for m in found if m[0].startswith(lang + ":")}
        ref = {m for m in reference if m[0].startswith(lang + ":")}
        lemma_only = ref - forms
        out[lang] = (
            len(mine & ref) / len(mine) if mine else 1.0,
            len(mine & ref) / len(ref) if ref else 1.0,
            len(mine & lemma_only) / len(lemma_only) if lemma_only else 1.0,
        )
    return out


def _examples(name: str, reference: Lemmatize, per_lang: int, count: int, limit: int) -> None:
    """Keyword/word pairs joined by only one of the candidate and the reference."""
    from services.alerter.core import fold

    candidate = CANDIDATES[name]()
    articles = _articles(per_lang)
    keywords = _keywords(articles, count)
    vocab: dict[str, set[str]] = collections.defaultdict(set)
    for article in articles:
        vocab[article["lang"]].update(WORD.findall(f"{article['title']} {article['text']}"))
    print(f"\n{name}: pairs joined by it only (+) or by the reference only (-)")
    for lang, words in keywords.items():
        plus, minus = [], []
        for keyword in words:
            c_key, r_key = fold(candidate(keyword, lang)), fold(reference(keyword, lang))
            for word in sorted(vocab[lang]):
                if fold(word) == fold(keyword):
                    continue
                by_c = fold(candidate(word, lang)) == c_key
                by_r = fold(reference(word, lang)) == r_key
                if by_c and not by_r:
                    plus.append(f"{keyword}~{word}")
                elif by_r and not by_c:
                    minus.append(f"{keyword}~{word}")
        print(f"  {lang}: +{len(plus)} {' '.join(plus[:limit])}")
        print(f"  {lang}: -{len(minus)} {' '.join(minus[:limit])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-lang", type=int, default=150)
    parser.add_argument("--keywords", type=int, default=40)
    parser.add_argument("--examples", type=int, default=0, help="disagreements shown per lang")
    parser.add_argument("--only", nargs="*", default=None, help="candidates (name prefixes)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.per_lang, args.keywords)
        return

    names = [n for n in CANDIDATES if not args.only or any(n.startswith(o) for o in args.only)]
    names = list(dict.fromkeys([REFERENCE, "none (word forms only)", *names]))
    results = {name: _run(name, args.per_lang, args.keywords) for name in names}
    as_set = {n: {(t, a) for t, a in r["matches"]} for n, r in results.items()}  # type: ignore[attr-defined]
    reference, forms = as_set[REFERENCE], as_set["none (word forms only)"]
    articles = int(results[REFERENCE]["articles"])  # type: ignore[call-overload]
    langs = sorted({t.split(":")[0] for t, _ in reference})
    print(f"{articles} articles in {len(langs)} languages ({', '.join(langs)})")
    print(
        "| candidate | RSS MB | +lemmatiser MB | CPU ms/article 1st pass | 2nd pass "
        "| precision | recall | lemma recall | worst language (P/R/lemma R) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        result = results[name]
        quality = _quality(as_set[name], reference, forms)
        mean = [sum(q[i] for q in quality.values()) / len(quality) for i in range(3)]
        worst = min(quality, key=lambda lang: quality[lang][0] + quality[lang][1])
        p, r, lr = quality[worst]
        print(
            f"| {name} | {result['rss'] / 2**20:.0f} "  # type: ignore[operator]
            f"| {(result['rss'] - result['rss_before']) / 2**20:.0f} "  # type: ignore[operator]
            f"| {1000 * result['first_cpu'] / articles:.2f} "  # type: ignore[operator]
            f"| {1000 * result['second_cpu'] / articles:.2f} "  # type: ignore[operator]
            f"| {mean[0]:.3f} | {mean[1]:.3f} | {mean[2]:.3f} "
            f"| {worst} {p:.2f}/{r:.2f}/{lr:.2f} |"
        )
    print("\nper language, precision/recall (lemma recall):")
    print("| candidate | " + " | ".join(langs) + " |")
    print("|---|" + "---|" * len(langs))
    for name in names:
        quality = _quality(as_set[name], reference, forms)
        cells = [
            f"{quality[lang][0]:.2f}/{quality[lang][1]:.2f} ({quality[lang][2]:.2f})"
            if lang in quality
            else "-"
            for lang in langs
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.examples:
        reference_lemmatize = CANDIDATES[REFERENCE]()
        for name in names:
            if name not in (REFERENCE, "none (word forms only)"):
                _examples(name, reference_lemmatize, args.per_lang, args.keywords, args.examples)


if __name__ == "__main__":
    main()
