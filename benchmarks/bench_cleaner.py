"""Article extraction quality and speed on ../shared/eval/extraction/ (181 real pages).

Runs, in one process and on the same decoded input (gzip, then trafilatura's `decode_file`),
newsmon's cleaner (`services.cleaner.core.extract`, exactly what the service calls) and plain
`trafilatura.extract(html, include_comments=False)`, the benchmark's own call. The metric is
the benchmark's: the set of word 4-grams of `\\w+` tokens, per-page precision and recall,
averaged over pages, F1 of the two averages. Pages/s is the process's CPU time of extraction
alone, one core, so that other work on a shared machine does not decide the comparison; wall
pages/s is printed beside it. Each extractor runs `--rounds` times (alternating) and the
fastest round counts.

    python benchmarks/bench_cleaner.py [--rounds 3] [--worst 10]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import trafilatura  # noqa: E402
from trafilatura.utils import decode_file  # noqa: E402

from services.cleaner.core import extract  # noqa: E402

DATA = ROOT / ".." / "shared" / "eval" / "extraction"
TOKEN = re.compile(r"\w+")
NGRAM = 4


@dataclass(frozen=True, slots=True)
class Result:
    """Scores (0..1) and speed of one extractor over all pages."""

    name: str
    precision: float
    recall: float
    pages_per_second: float  # CPU time
    wall_pages_per_second: float
    per_page: dict[str, tuple[float, float]]

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def shingles(text: str) -> set[tuple[str, ...]]:
    tokens = TOKEN.findall(text)
    return {tuple(tokens[i : i + NGRAM]) for i in range(len(tokens) - NGRAM + 1)}


def page_scores(predicted: str, gold: str) -> tuple[float, float]:
    """(precision, recall) of one page; an empty side scores 0 unless both are empty."""
    pred, true = shingles(predicted), shingles(gold)
    if not pred and not true:
        return 1.0, 1.0
    hits = len(pred & true)
    return (hits / len(pred) if pred else 0.0), (hits / len(true) if true else 0.0)


def load_pages() -> tuple[dict[str, str], dict[str, str]]:
    """(id -> decoded HTML, id -> gold text)."""
    truth = json.loads((DATA / "ground-truth.json").read_text(encoding="utf-8"))
    pages = {
        page_id: decode_file(gzip.decompress((DATA / "html" / f"{page_id}.html.gz").read_bytes()))
        for page_id in sorted(truth)
    }
    gold = {page_id: truth[page_id].get("articleBody") or "" for page_id in pages}
    return pages, gold


def timed_run(
    run: Callable[[str], str], pages: Mapping[str, str]
) -> tuple[dict[str, str], float, float]:
    """Outputs, CPU seconds and wall seconds of one pass over the pages."""
    cpu, wall = time.process_time(), time.perf_counter()
    outputs = {page_id: run(html) for page_id, html in pages.items()}
    return outputs, time.process_time() - cpu, time.perf_counter() - wall


def measure(
    extractors: Mapping[str, Callable[[str], str]],
    pages: Mapping[str, str],
    gold: Mapping[str, str],
    rounds: int,
) -> list[Result]:
    best: dict[str, float] = {}
    best_wall: dict[str, float] = {}
    outputs: dict[str, dict[str, str]] = {}
    for _ in range(rounds):
        for name, run in extractors.items():
            outputs[name], seconds, wall = timed_run(run, pages)
            best[name] = min(seconds, best.get(name, seconds))
            best_wall[name] = min(wall, best_wall.get(name, wall))
    results = []
    for name in extractors:
        per_page = {pid: page_scores(outputs[name][pid], gold[pid]) for pid in pages}
        precision = sum(p for p, _ in per_page.values()) / len(per_page)
        recall = sum(r for _, r in per_page.values()) / len(per_page)
        speed, wall_speed = len(pages) / best[name], len(pages) / best_wall[name]
        results.append(Result(name, precision, recall, speed, wall_speed, per_page))
    return results


def newsmon(html: str) -> str:
    return extract(html).text


def plain_trafilatura(html: str) -> str:
    return trafilatura.extract(html, include_comments=False) or ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per extractor")
    parser.add_argument(
        "--worst", type=int, default=0, help="list the N pages newsmon scores worst"
    )
    args = parser.parse_args()
    if not DATA.exists():
        print(f"skipped: {DATA} is absent (../shared/eval is not part of a user's clone)")
        return 0
    pages, gold = load_pages()
    extractors = {
        "newsmon cleaner": newsmon,
        "trafilatura.extract(include_comments=False)": plain_trafilatura,
    }
    results = measure(extractors, pages, gold, max(1, args.rounds))
    print(f"Extraction on {len(pages)} pages of {DATA.resolve()}\n")
    print("| extractor | F1 | precision | recall | pages/s | wall pages/s |")
    print("|---|---|---|---|---|---|")
    for result in results:
        print(
            f"| {result.name} | {result.f1:.4f} | {result.precision:.4f} | {result.recall:.4f}"
            f" | {result.pages_per_second:.1f} | {result.wall_pages_per_second:.1f} |"
        )
    if args.worst:
        ours = results[0].per_page
        print("\n| page | precision | recall |\n|---|---|---|")
        for page_id in sorted(ours, key=lambda pid: sum(ours[pid]))[: args.worst]:
            precision, recall = ours[page_id]
            print(f"| {page_id[:12]} | {precision:.3f} | {recall:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
