"""Alerter throughput and webhook delivery latency.

1. Matching and alerting: story events built from ../shared/eval/stories/wmt-newstest.jsonl
   (each article joins its gold story) go through the live `AlertHandler` on Redis with 22
   topics (the built-in lexicon's concepts written in English, plus entity topics); prints
   events/s and alerts/s (new + update alerts actually published).
2. Delivery: alerts published to `alerts` one every few ms, delivered by a webhook
   subscriber's subscriptions on the common consumer (a live broker) to a receiver on
   127.0.0.1; prints delivery latency p50/p99 (creation -> received).

    python benchmarks/bench_alerter.py [--events 1200] [--deliveries 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402
from faststream.redis import RedisBroker  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from contracts import (  # noqa: E402
    NewsmonConfig,
    StoryEvent,
    TopicAlert,
    TopicConfig,
)
from contracts.streams import ALERTS  # noqa: E402
from contracts.subscriptions import WebhookSubscription  # noqa: E402
from services.alerter.catalog import Catalog  # noqa: E402
from services.alerter.core import UpdatePolicy  # noqa: E402
from services.alerter.delivery import (  # noqa: E402
    RetryPolicy,
    WebhookDelivery,
    ensure_webhook_group,
)
from services.alerter.handlers import AlertHandler  # noqa: E402
from services.alerter.lexicon import load_lexicon, simplemma_lemma  # noqa: E402
from services.alerter.metrics import AlerterMetrics  # noqa: E402
from services.alerter.stories import StoryView  # noqa: E402
from services.common.bus import publish  # noqa: E402
from services.common.clock import utc_now  # noqa: E402
from services.common.metrics import ConsumerMetrics  # noqa: E402
from services.common.redis import connect, redis_url_for  # noqa: E402
from services.common.subscriptions import LiveSubscriptions  # noqa: E402
from tests.harness import GrowingStory  # noqa: E402

DATA = ROOT / ".." / "shared" / "eval" / "stories" / "wmt-newstest.jsonl"
NOW = datetime(2013, 1, 1, tzinfo=UTC)
ENTITIES = ("Obama", "Bush", "Merkel", "Sarkozy", "Google", "Microsoft", "China", "Iraq")


def _topics() -> tuple[TopicConfig, ...]:
    lexicon = load_lexicon()
    concepts = [entry["en"][0] for entry in lexicon.entries if "en" in entry]
    topics = [TopicConfig(name=c, keywords=(c,)) for c in concepts[:14]]
    topics += [TopicConfig(name=e, entities=(e,)) for e in ENTITIES]
    return tuple(topics)


def _events(limit: int) -> list[StoryEvent]:
    rows = [json.loads(line) for line in DATA.open(encoding="utf-8")][:limit]
    stories: dict[str, GrowingStory] = {}
    events = []
    for number, row in enumerate(rows):
        story = stories.setdefault(row["story"], GrowingStory(row["story"], NOW))
        events.append(
            story.add(
                f"a{number}",
                lang=row["lang"],
                source=f"outlet-{row['lang']}",
                title=row["title"],
                text=row["text"],
                when=NOW,
            )
        )
    return events


async def _throughput(url: str, limit: int) -> tuple[int, int, float]:
    redis = connect(url)
    await redis.flushdb()
    catalog = Catalog(
        redis,
        NewsmonConfig(topics=_topics()),
        key_prefix="bench",
        lexicon=load_lexicon(),
        lemmatize=simplemma_lemma,
    )
    handler = AlertHandler(
        redis=redis,
        catalog=catalog,
        metrics=AlerterMetrics(CollectorRegistry()),
        clock=utc_now,
        key_prefix="bench",
        view=StoryView(redis, key_prefix="bench", retention_seconds=86_400),
        sent_ttl_seconds=3600,
        policy=UpdatePolicy(min_new_sources=2, debounce_seconds=0),
    )
    events = _events(limit)
    for event in events[:50]:  # warm up: simplemma loads each language's data once
        catalog.compiled.match(article_id="w", title="", text="x", lang=event.article.lang)
    started = time.perf_counter()
    for event in events:
        await handler(event)
    seconds = time.perf_counter() - started
    alerts = await redis.xlen(ALERTS)
    await redis.aclose()
    return len(events), alerts, seconds


async def _latency(url: str, count: int) -> list[float]:
    redis = connect(url)
    await redis.flushdb()
    latencies: list[float] = []

    async def receive(request: Request) -> Response:
        alert = TopicAlert.model_validate_json(await request.body())
        latencies.append((datetime.now(UTC) - alert.created_at).total_seconds())
        return Response(status_code=204)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = cast(int, probe.getsockname()[1])
    app = Starlette(routes=[Route("/hook", receive, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    server_task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    await ensure_webhook_group(redis, "bench")
    delivery = WebhookDelivery(
        redis=redis,
        policy=RetryPolicy(max_attempts=3, base_seconds=0.1, max_seconds=1, timeout_seconds=5),
        metrics=AlerterMetrics(CollectorRegistry()),
        consumer_metrics=ConsumerMetrics(CollectorRegistry()),
        clock=utc_now,
        allowed_private_hosts=("127.0.0.1:*",),  # the benchmark's own receiver
    )
    subscription = WebhookSubscription(
        name="bench", url=f"http://127.0.0.1:{port}/hook", secret="bench-secret-0123456"
    )
    broker = RedisBroker(url, logger=None)
    await broker.start()
    live = LiveSubscriptions(
        broker, redis, consumer_name="bench", reclaim_idle_seconds=60, max_deliveries=5
    )
    await live.start("bench", delivery.subscriptions(subscription))
    for number in range(count):
        alert = TopicAlert(
            alert_id=f"al-{number}",
            topic="t",
            story_id=f"s-{number}",
            title="t",
            languages=("en",),
            sources=("x",),
            urls=("http://x/1",),
            matched=(),
            created_at=datetime.now(UTC),
        )
        await publish(redis, ALERTS, alert)
        await asyncio.sleep(0.004)
    while len(latencies) < count:
        await asyncio.sleep(0.01)
    await live.stop_all()
    await broker.stop()
    server.should_exit = True
    await server_task
    await redis.aclose()
    return latencies


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


async def _main(events: int, deliveries: int) -> None:
    import os

    with (
        tempfile.TemporaryDirectory() as data_dir,
        redis_url_for(os.environ.get("REDIS_URL"), Path(data_dir)) as url,
    ):
        count, alerts, seconds = await _throughput(url, events)
        latencies = await _latency(url, deliveries)
    print("## Alerter: matching and alerting (22 topics, live handler on Redis)\n")
    print("| story events | alerts published | seconds | events/s | alerts/s |")
    print("|---:|---:|---:|---:|---:|")
    print(
        f"| {count} | {alerts} | {seconds:.2f} | {count / seconds:.0f} | {alerts / seconds:.0f} |"
    )
    print("\n## Webhook delivery latency (creation -> received, 127.0.0.1)\n")
    print("| deliveries | p50 ms | p99 ms | max ms |")
    print("|---:|---:|---:|---:|")
    print(
        f"| {len(latencies)} | {_percentile(latencies, 0.5) * 1000:.1f} |"
        f" {_percentile(latencies, 0.99) * 1000:.1f} | {max(latencies) * 1000:.1f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1200)
    parser.add_argument("--deliveries", type=int, default=500)
    args = parser.parse_args()
    if not DATA.exists():
        print(f"skipped: {DATA} is absent (../shared/eval is not part of a user's clone)")
        return 0
    asyncio.run(_main(args.events, args.deliveries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
