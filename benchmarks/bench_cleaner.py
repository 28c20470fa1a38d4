"""Article extraction quality and speed on both extraction sets of ../shared/eval:
`extraction/` (181 real pages, the development set) and `extraction-readability/` (130 pages
in many languages, Mozilla Readability's test pages).

Runs, in one process and on the same decoded input (gzip, then trafilatura's `decode_file`),
newsmon's cleaner (`services.cleaner.core.extract`, exactly what the service calls), plain
`trafilatura.extract(html, include_comments=False)` (the benchmark's own call) and the same
with `fast=True`. Then an ablation table: each of the cleaner's rules switched off in turn,
F1/P/R on each set (a rule that lifts one set and lowers the other fits pages). The metric is
the benchmark's: the set of word 4-grams of `\\w+` tokens, per-page precision and recall,
averaged over pages, F1 of the two averages. Readability's gold texts were shipped with their
UTF-8 read as Latin-1 (a curly apostrophe as three characters, Chinese and Czech text
unreadable) on 83 of the 130 pages; the benchmark decodes those characters again before
scoring, for every extractor alike, and prints F1 against the gold as shipped beside it.
Pages/s is the process's CPU time of extraction alone, one core, so that other work on a
shared machine does not decide the comparison; wall pages/s is printed beside it. Each
extractor runs `--rounds` times (alternating) and the fastest round counts.

    python benchmarks/bench_cleaner.py [--rounds 3] [--worst 10] [--no-ablations]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import trafilatura  # noqa: E402
from trafilatura.utils import decode_file  # noqa: E402

from services.cleaner import core  # noqa: E402
from services.cleaner.core import extract  # noqa: E402

EVAL = ROOT / ".." / "shared" / "eval"
SETS = ("extraction", "extraction-readability")
TOKEN = re.compile(r"\w+")
NGRAM = 4
# one character's UTF-8 bytes read as Latin-1: a lead byte (U+00C2..U+00F4) and as many
# continuation bytes (U+0080..U+00BF) as the lead byte announces
MOJIBAKE = re.compile(
    "[\u00c2-\u00df][\u0080-\u00bf]|[\u00e0-\u00ef][\u0080-\u00bf]{2}"
    "|[\u00f0-\u00f4][\u0080-\u00bf]{3}"
)


@dataclass(frozen=True, slots=True)
class Result:
    """Scores (0..1) and speed of one extractor over all pages."""

    name: str
    precision: float
    recall: float
    pages_per_second: float  # CPU time
    wall_pages_per_second: float
    per_page: dict[str, tuple[float, float]]
    f1_shipped_gold: float  # F1 against the gold texts as shipped, undecoded

    @property
    def f1(self) -> float:
        return f1_of(self.precision, self.recall)


@dataclass(frozen=True, slots=True)
class EvalSet:
    """One extraction set: id -> decoded HTML, gold text (repaired) and gold text as shipped."""

    pages: dict[str, str]
    gold: dict[str, str]
    shipped_gold: dict[str, str]

    @property
    def repaired(self) -> int:
        """How many gold texts the Latin-1 repair changed."""
        return sum(self.gold[pid] != self.shipped_gold[pid] for pid in self.gold)


def f1_of(precision: float, recall: float) -> float:
    total = precision + recall
    return 2 * precision * recall / total if total else 0.0


def repair_mojibake(text: str) -> str:
    """The text with each character whose UTF-8 bytes were read as Latin-1 decoded again.

    Runs that are not valid UTF-8 (a byte lost, or genuine Latin-1 text) stay as they are.
    """

    def decoded(match: re.Match[str]) -> str:
        try:
            return match.group().encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            return match.group()

    return MOJIBAKE.sub(decoded, text)


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


def load_set(data: Path) -> EvalSet:
    """The pages of one set, decoded, and their gold texts (repaired, and as shipped)."""
    truth = json.loads((data / "ground-truth.json").read_text(encoding="utf-8"))
    pages = {
        page_id: decode_file(gzip.decompress((data / "html" / f"{page_id}.html.gz").read_bytes()))
        for page_id in sorted(truth)
    }
    shipped = {page_id: truth[page_id].get("articleBody") or "" for page_id in pages}
    return EvalSet(pages, {pid: repair_mojibake(text) for pid, text in shipped.items()}, shipped)


def timed_run(
    run: Callable[[str], str], pages: Mapping[str, str]
) -> tuple[dict[str, str], float, float]:
    """Outputs, CPU seconds and wall seconds of one pass over the pages."""
    cpu, wall = time.process_time(), time.perf_counter()
    outputs = {page_id: run(html) for page_id, html in pages.items()}
    return outputs, time.process_time() - cpu, time.perf_counter() - wall


def scores_by_page(
    outputs: Mapping[str, str], gold: Mapping[str, str]
) -> dict[str, tuple[float, float]]:
    return {pid: page_scores(outputs[pid], gold[pid]) for pid in gold}


def measure(
    extractors: Mapping[str, Callable[[str], str]], data: EvalSet, rounds: int
) -> list[Result]:
    pages = data.pages
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
        per_page = scores_by_page(outputs[name], data.gold)
        precision, recall = mean_scores(per_page)
        shipped_f1 = f1_of(*mean_scores(scores_by_page(outputs[name], data.shipped_gold)))
        speed, wall_speed = len(pages) / best[name], len(pages) / best_wall[name]
        results.append(Result(name, precision, recall, speed, wall_speed, per_page, shipped_f1))
    return results


def mean_scores(per_page: Mapping[str, tuple[float, float]]) -> tuple[float, float]:
    """(precision, recall) averaged over pages."""
    return (
        sum(p for p, _ in per_page.values()) / len(per_page),
        sum(r for _, r in per_page.values()) / len(per_page),
    )


def newsmon(html: str) -> str:
    return extract(html).text


def plain_trafilatura(html: str) -> str:
    return trafilatura.extract(html, include_comments=False) or ""


def fast_trafilatura(html: str) -> str:
    return trafilatura.extract(html, include_comments=False, fast=True) or ""


def _unchanged_tree(tree: object) -> None:
    return None


RULES: dict[str, tuple[str, object]] = {
    "strip code (script, style, svg) before extraction": ("strip_code", _unchanged_tree),
    "prune furniture (hidden, aria-busy) before extraction": ("prune_furniture", _unchanged_tree),
    "join an article body split by ads": ("join_split_body", _unchanged_tree),
    "strip chrome (nav, footer, aside...) before extraction": ("strip_chrome", _unchanged_tree),
    "drop link lines and link lists": ("drop_link_lines", list),
    "drop headline, dateline, deck": ("drop_headline", lambda blocks, titles: blocks),
    "trim trailing furniture": ("trim_tail", lambda blocks: blocks),
}
"""Each rule of the cleaner and how the ablation switches it off (the module attribute
replaced, and its replacement)."""


def print_ablations(sets: Mapping[str, EvalSet]) -> None:
    """F1/P/R of the cleaner with each rule switched off in turn, on every set."""
    print("\n### Ablations: each rule switched off in turn\n")
    header = " | ".join(f"{name} F1 | P | R | F1 shipped gold" for name in sets)
    print(f"| rule switched off | {header} |")
    print("|---|" + "---|---|---|---|" * len(sets))
    variants: list[tuple[str, contextlib.AbstractContextManager[object]]] = [
        ("(none: the cleaner as is)", contextlib.nullcontext())
    ]
    variants += [
        (label, patch.object(core, name, new=replacement))
        for label, (name, replacement) in RULES.items()
    ]
    for label, switch in variants:
        cells = []
        with switch:
            for data in sets.values():
                (result,) = measure({"newsmon": newsmon}, data, 1)
                cells.append(
                    f"{result.f1:.4f} | {result.precision:.4f} | {result.recall:.4f} | "
                    f"{result.f1_shipped_gold:.4f}"
                )
        print(f"| {label} | {' | '.join(cells)} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per extractor")
    parser.add_argument(
        "--worst", type=int, default=0, help="list the N pages newsmon scores worst"
    )
    parser.add_argument("--no-ablations", action="store_true", help="skip the ablation table")
    args = parser.parse_args()
    present = [name for name in SETS if (EVAL / name).exists()]
    if not present:
        print(f"skipped: {EVAL} is absent (../shared/eval is not part of a user's clone)")
        return 0
    sets = {name: load_set(EVAL / name) for name in present}
    extractors = {
        "newsmon cleaner": newsmon,
        "trafilatura.extract(include_comments=False)": plain_trafilatura,
        "the same with fast=True": fast_trafilatura,
    }
    totals: dict[str, float] = {}
    for name, data in sets.items():
        results = measure(extractors, data, max(1, args.rounds))
        pages = len(data.pages)
        print(f"\n### {name}: {pages} pages ({data.repaired} gold texts decoded again)\n")
        print(
            "| extractor | F1 | precision | recall | F1 shipped gold | pages/s (CPU) "
            "| wall pages/s |"
        )
        print("|---|---|---|---|---|---|---|")
        for result in results:
            totals[result.name] = totals.get(result.name, 0.0) + pages / result.pages_per_second
            print(
                f"| {result.name} | {result.f1:.4f} | {result.precision:.4f} | "
                f"{result.recall:.4f} | {result.f1_shipped_gold:.4f} | "
                f"{result.pages_per_second:.1f} | {result.wall_pages_per_second:.1f} |"
            )
        if args.worst:
            ours = results[0].per_page
            print("\n| page | precision | recall |\n|---|---|---|")
            for page_id in sorted(ours, key=lambda pid: sum(ours[pid]))[: args.worst]:
                precision, recall = ours[page_id]
                print(f"| {page_id[:30]} | {precision:.3f} | {recall:.3f} |")
    pages_total = sum(len(data.pages) for data in sets.values())
    print("\n### Speed over both sets (CPU, best round)\n")
    print("| extractor | pages/s | vs plain trafilatura |\n|---|---|---|")
    plain = pages_total / totals["trafilatura.extract(include_comments=False)"]
    for name, seconds in totals.items():
        rate = pages_total / seconds
        print(f"| {name} | {rate:.1f} | {rate / plain:.2f}x |")
    if not args.no_ablations:
        print_ablations(sets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
