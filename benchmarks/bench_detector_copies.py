"""Same-language copies: does a syndicated, edited copy join its original's story?

Built from ../shared/eval/stories/wmt-newstest.jsonl: every article of the file is placed
first (in a fixed shuffle, so translations and same-year near-misses are in the index), then
copies of a sample of originals are placed, one edit kind at a time, each kind on a fresh
copy of that index:

* headline: a new title;
* byline: a byline line before the text;
* boilerplate: two footer lines (newsletter, copyright) after it;
* cut: the last quarter of the sentences removed;
* shuffle: the text's sentence blocks (about five sentences each) in another order;
* edit 10% / edit 20%: that share of the words replaced by other words of the same article;
* all: headline + byline + boilerplate + edit 15%.

For each kind: recall = copies that joined their original's story; precision = of the copies
that joined an existing story, those that joined the right one. Also how they joined.

    python benchmarks/bench_detector_copies.py [--sample 300]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.detector.core import ArticleIn  # noqa: E402
from services.detector.index import MemoryStoryIndex, place_article  # noqa: E402

DATA = ROOT / ".." / "shared" / "eval" / "stories" / "wmt-newstest.jsonl"
NOW = datetime(2013, 1, 1, tzinfo=UTC)
SEED = 11
_SENTENCE = re.compile(r"(?<=[.!?])\s+")

Edit = Callable[[ArticleIn, random.Random], ArticleIn]


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text) if s]


def new_headline(article: ArticleIn, rng: random.Random) -> ArticleIn:
    """A different title."""
    words = article.title.split()
    rng.shuffle(words)
    return replace(article, title="UPDATE: " + " ".join(words[: max(3, len(words) // 2)]))


def byline(article: ArticleIn, rng: random.Random) -> ArticleIn:
    """A byline line before the text."""
    name = rng.choice(["Jana Nováková", "Peter Miller", "Ana García", "Jean Dupont"])
    return replace(
        article,
        text=f"{name}, Reuters, {rng.randint(1, 28)}.{rng.randint(1, 12)}.\n" + article.text,
    )


def boilerplate(article: ArticleIn, rng: random.Random) -> ArticleIn:
    """Two footer lines after the text."""
    footer = (
        "\nSubscribe to our newsletter and follow us on Twitter and Facebook."
        f"\n© {rng.randint(2008, 2013)} Daily Herald Media Group. All rights reserved."
    )
    return replace(article, text=article.text + footer)


def cut(article: ArticleIn, rng: random.Random) -> ArticleIn:
    """The last quarter of the sentences removed."""
    sentences = _sentences(article.text)
    keep = max(1, len(sentences) - len(sentences) // 4)
    return replace(article, text=" ".join(sentences[:keep]))


def shuffle(article: ArticleIn, rng: random.Random) -> ArticleIn:
    """Blocks of five sentences in another order."""
    sentences = _sentences(article.text)
    blocks = [" ".join(sentences[i : i + 5]) for i in range(0, len(sentences), 5)]
    rng.shuffle(blocks)
    return replace(article, text=" ".join(blocks))


def edit_words(share: float) -> Edit:
    """`share` of the words replaced by other words of the same article."""

    def edit(article: ArticleIn, rng: random.Random) -> ArticleIn:
        words = article.text.split(" ")
        for position in rng.sample(range(len(words)), int(share * len(words))):
            words[position] = rng.choice(words)
        return replace(article, text=" ".join(words))

    return edit


def everything(article: ArticleIn, rng: random.Random) -> ArticleIn:
    """Headline, byline, boilerplate and 15% of the words edited."""
    edited = edit_words(0.15)(article, rng)
    return boilerplate(byline(new_headline(edited, rng), rng), rng)


EDITS: dict[str, Edit] = {
    "headline": new_headline,
    "byline": byline,
    "boilerplate": boilerplate,
    "cut 25%": cut,
    "shuffle": shuffle,
    "edit 10%": edit_words(0.10),
    "edit 20%": edit_words(0.20),
    "all": everything,
}


def load() -> list[ArticleIn]:
    """The file's articles in a fixed shuffle."""
    articles = []
    with DATA.open(encoding="utf-8") as handle:
        for line in handle:
            obj = json.loads(line)
            source = obj["id"].split("/")[2]
            articles.append(
                ArticleIn(obj["id"], obj["title"], obj["text"], obj["lang"], source, "")
            )
    random.Random(SEED).shuffle(articles)
    return articles


async def measure(articles: Sequence[ArticleIn], sample: int) -> list[str]:
    """One table row per edit kind."""
    base = MemoryStoryIndex()
    story_of = {}
    for article in articles:
        story_of[article.article_id] = (await place_article(base, article, NOW)).story_id
    originals = articles[:sample]
    rows = []
    for kind, edit in EDITS.items():
        index = copy.deepcopy(base)
        rng = random.Random(f"{SEED}:{kind}")
        right = wrong = 0
        reasons: Counter[str] = Counter()
        for original in originals:
            edited = edit(original, rng)
            placed = await place_article(
                index,
                replace(edited, article_id=f"copy:{original.article_id}", source="mirror"),
                NOW + timedelta(hours=2),
            )
            reasons[placed.reason] += 1
            if placed.story_id == story_of[original.article_id]:
                right += 1
            elif not placed.created:
                wrong += 1
        precision = right / (right + wrong) if right + wrong else 1.0
        how = ", ".join(f"{reason} {count}" for reason, count in reasons.most_common())
        rows.append(f"| {kind} | {precision:.3f} | {right / len(originals):.3f} | {how} |")
    return rows


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=300, help="originals copied per kind")
    options = parser.parse_args()
    if not DATA.exists():
        print(f"evaluation file absent: {DATA}; skipping")
        return
    rows = asyncio.run(measure(load(), options.sample))
    print(f"| edit kind | precision | recall | joined as ({options.sample} copies) |")
    print("|---|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
