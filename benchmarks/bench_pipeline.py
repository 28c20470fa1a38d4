"""Pipeline load: the four services on one real redis-server, fed synthetic articles from local
feeds, in one process (`newsmon up`) and with 2 replicas per stage (`newsmon serve X` x 2).

Each run starts its own redis-server on a free port (never 6379) in a temporary folder and
serves the corpus (services/samples/corpus.py: stories x 4 syndicated copies, every story
about the topic, so every story alerts once) as RSS feeds on 127.0.0.1. Per configuration:

- articles/s end to end: articles / (last story event or alert - first fetch);
- p50/p99 fetch-to-alert latency: per alert, its `created_at` minus the `fetched_at` of the
  article whose story event caused it (read from `stories.events` and `alerts`), seconds;
- peak RSS per service process (VmHWM of /proc/<pid>/status; the cleaner's extraction worker
  process counted apart), MB;
- Redis memory per 1,000 stories: INFO used_memory delta over the run / stories created, MB.

The cleaner's solo throughput is measured on the same pages: the fetcher alone fills
`articles.raw`, then the cleaner (1 process, then 2 on a reset group) drains it. The pipeline's
rate is printed as a share of it (target >= 80%). Then a paced run: the feeds release articles
at half the cleaner's solo rate for `--paced-seconds`; target p99 fetch-to-alert < 2 s.
Targets are reported (met / not met), not asserted.

    python benchmarks/bench_pipeline.py [--articles 10000] [--paced-seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis as sync_redis  # noqa: E402
from redis.cluster import RedisCluster  # noqa: E402

from contracts import CleanArticle, StoryEvent, TopicAlert  # noqa: E402
from contracts.streams import (  # noqa: E402
    ALERTS,
    ARTICLES_CLEAN,
    ARTICLES_RAW,
    CONSUMED_STREAMS,
    GROUP_CLEANER,
    STORIES_EVENTS,
)
from services.cli import SERVICE_NAMES  # noqa: E402
from services.common.bus import DATA_FIELD  # noqa: E402
from services.common.redis import connect  # noqa: E402
from services.common.streams import group_backlog  # noqa: E402
from services.samples.corpus import (  # noqa: E402
    TOPIC_TERM,
    CorpusSite,
    SyntheticArticle,
    render_feed,
    synthetic_corpus,
)
from tests.harness import LocalRedisCluster, RedisServer, ServiceProcess, wait_for  # noqa: E402

COPIES = 4
ITEMS_PER_FEED = 100
PACED_FEEDS = 10
TARGET_SHARE = 0.80
TARGET_P99_SECONDS = 2.0
MB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

FAST_POLLS = {
    # paced feeds are polled about every second (the default floor is 60 s)
    "NEWSMON_FETCHER_MIN_POLL_SECONDS": "1",
    "NEWSMON_FETCHER_TICK_SECONDS": "0.1",
}


# --- processes -------------------------------------------------------------------------------


class UpProcess(ServiceProcess):
    """`newsmon up`: the four services in one process."""

    def args(self) -> list[str]:
        return ["up", "--config", str(self.config)]


def make_processes(
    layout: str,
    redis_url: str,
    config: Path,
    logs: Path,
    services: Sequence[str],
    extra: dict[str, str],
) -> list[ServiceProcess]:
    """`layout` "up": one `newsmon up`; "replicas" and "cluster": two `newsmon serve X` per
    service."""
    processes: list[ServiceProcess] = []
    if layout == "up":
        processes.append(UpProcess("up", redis_url, config, _folder(logs / "up")))
    else:
        for replica in range(2):
            folder = _folder(logs / f"replica-{replica}")
            processes += [ServiceProcess(name, redis_url, config, folder) for name in services]
    for process in processes:
        # the default reclaim delay: a busy consumer's in-flight entries are not stolen
        process.env.update({"NEWSMON_RECLAIM_IDLE_SECONDS": "60", **extra})
    return processes


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, MB; 0 when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / MB
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far, seconds; 0 when unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def per_node(client: sync_redis.Redis, section: str) -> list[dict[str, Any]]:
    """INFO `section` of every Redis server behind `client`: one, or each master of a cluster."""
    if isinstance(client, RedisCluster):
        found = client.info(section, target_nodes=RedisCluster.PRIMARIES)
        return list(cast(dict[str, dict[str, Any]], found).values())
    return [cast(dict[str, Any], client.info(section))]


def redis_cpu_seconds(client: sync_redis.Redis) -> float:
    """CPU time the redis-servers have used so far (INFO cpu, their own threads), seconds."""
    return sum(
        float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]) for cpu in per_node(client, "cpu")
    )


def children_of(pid: int) -> list[int]:
    """Every descendant process id of `pid` (from /proc/<pid>/task/*/children)."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            for child in children.read_text().split():
                found += [int(child), *children_of(int(child))]
        except OSError:
            continue
    return found


@dataclass
class Memory:
    """Peak RSS (MB) and CPU time (s) of one service process and of its worker processes."""

    name: str
    own_mb: float
    workers_mb: float
    own_cpu: float = 0.0
    workers_cpu: float = 0.0


def measure_memory(
    processes: Sequence[ServiceProcess], cpu_before: dict[int, float] | None = None
) -> list[Memory]:
    """Peak RSS and CPU time of each process and its children; CPU time counted from
    `cpu_before` (pid -> CPU seconds, see `cpu_snapshot`) when given."""
    before = cpu_before or {}
    memory = []
    for process in processes:
        assert process.process is not None
        pid = process.process.pid
        children = children_of(pid)
        memory.append(
            Memory(
                process.name,
                peak_rss_mb(pid),
                sum(peak_rss_mb(child) for child in children),
                cpu_seconds(pid) - before.get(pid, 0.0),
                sum(cpu_seconds(child) - before.get(child, 0.0) for child in children),
            )
        )
    return memory


def cpu_snapshot(processes: Sequence[ServiceProcess]) -> dict[int, float]:
    """CPU seconds so far of each process and of its children, by pid."""
    snapshot: dict[int, float] = {}
    for process in processes:
        assert process.process is not None
        for pid in (process.process.pid, *children_of(process.process.pid)):
            snapshot[pid] = cpu_seconds(pid)
    return snapshot


# --- corpus and feeds -------------------------------------------------------------------------


class PacedCorpusSite(CorpusSite):
    """CorpusSite whose feeds grow over time: from `release()`, article i (in corpus order) is
    listed from `i / rate` seconds on, in feed `i % feeds`, which shows its newest 100."""

    def __init__(
        self, articles: Sequence[SyntheticArticle], *, rate: float, feeds: int, chrome_kb: int
    ) -> None:
        self.rate = rate
        self.feeds = feeds
        self.released_at: float | None = None
        """Wall-clock time (epoch seconds) of the first release."""
        super().__init__(articles, items_per_feed=ITEMS_PER_FEED, chrome_kb=chrome_kb)
        self._index = {self.url_of(a): i for i, a in enumerate(self.articles)}

    @property
    def feed_urls(self) -> list[str]:
        return [f"{self.base_url}/paced-{k}.xml" for k in range(self.feeds)]

    def release(self) -> None:
        self.released_at = time.time()

    def release_time(self, url: str) -> float | None:
        """When the article at `url` appeared in its feed, epoch seconds (None if unknown)."""
        index = self._index.get(url)
        if index is None or self.released_at is None:
            return None
        return self.released_at + index / self.rate

    def paced_feed(self, k: int) -> bytes:
        released = 0
        if self.released_at is not None:
            elapsed = time.time() - self.released_at
            released = min(len(self.articles), int(elapsed * self.rate) + 1)
        items = [self.articles[i] for i in range(k, released, self.feeds)][-ITEMS_PER_FEED:]
        return render_feed(self.base_url, items, f"Paced {k}").encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self
        base = super()._handler()

        class PacedHandler(base):  # type: ignore[valid-type,misc]
            def do_GET(self) -> None:
                name = self.path.removeprefix("/paced-").removesuffix(".xml")
                if not (self.path.startswith("/paced-") and name.isdigit()):
                    super().do_GET()
                    return
                body = site.paced_feed(int(name))
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return PacedHandler


def write_config(path: Path, feed_urls: Sequence[str], interval_seconds: float) -> Path:
    sources = "".join(
        f"  - name: wire-{k}\n    url: {url}\n    interval_seconds: {interval_seconds}\n"
        for k, url in enumerate(feed_urls)
    )
    path.write_text(
        f"sources:\n{sources}topics:\n  - name: energy\n    keywords: [{TOPIC_TERM}]\n"
        'allowed_private_hosts: ["127.0.0.1:*"]\n',
        encoding="utf-8",
    )
    return path


# --- reading Redis ----------------------------------------------------------------------------


def entries(client: sync_redis.Redis, stream: str, chunk: int = 500) -> Iterator[bytes]:
    """The `__data__` of every entry of `stream`, oldest first, read in chunks."""
    start = "-"
    while True:
        batch = client.xrange(stream, min=start, count=chunk)
        if not batch:
            return
        for _, fields in batch:
            yield cast(dict[bytes, bytes], fields)[DATA_FIELD]
        last = batch[-1][0].decode()
        start = "(" + last
        if len(batch) < chunk:
            return


def drained(url: str, groups: dict[str, str] = CONSUMED_STREAMS) -> bool:
    """True when every `groups` (stream -> group) has read and acknowledged everything."""

    async def check() -> int:
        client = connect(url)
        try:
            left = 0
            for stream, group in groups.items():
                position = await group_backlog(client, stream, group)
                left += position.lag + position.pending
            return left
        finally:
            await client.aclose()

    return asyncio.run(check()) == 0


def used_memory(client: sync_redis.Redis) -> int:
    return sum(int(memory["used_memory"]) for memory in per_node(client, "memory"))


def keys_memory(client: sync_redis.Redis) -> tuple[int, int]:
    """MEMORY USAGE summed over the stream keys and over all other keys, bytes."""
    streams = rest = 0
    for key in client.scan_iter(count=1000):
        size = int(client.memory_usage(key, samples=0) or 0)
        if client.type(key) == b"stream":
            streams += size
        else:
            rest += size
    return streams, rest


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of `values` (share in 0..1); nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


@dataclass
class Outcome:
    """What one pipeline run did: counts, rate, latencies (s), memory (MB)."""

    layout: str
    articles: int
    stories: int
    alerts: int
    seconds: float
    latencies: list[float]
    release_latencies: list[float] = field(default_factory=list)
    memory: list[Memory] = field(default_factory=list)
    redis_mb_per_1000_stories: float = math.nan
    streams_mb_per_1000_stories: float = math.nan
    """Of the Redis memory, what the streams hold (raw pages are kept an hour by default)."""
    rest_mb_per_1000_stories: float = math.nan
    """What every other key holds: the story index, story records, alert records."""
    redis_cpu: float = 0.0
    """CPU seconds the redis-server used over the run."""
    site_cpu: float = 0.0
    """CPU seconds this process (the feed and page server, mostly) used over the run."""
    cpu_articles: int = 0
    """Articles placed while CPU time was counted (from the first story event on)."""

    @property
    def rate(self) -> float:
        return self.articles / self.seconds if self.seconds > 0 else math.nan


def read_outcome(
    client: sync_redis.Redis, layout: str, release_time: Callable[[str], float | None] | None = None
) -> Outcome:
    """Counts, span and per-alert fetch-to-alert latency from `stories.events` and `alerts`."""
    fetched: dict[tuple[str, frozenset[str]], tuple[float, str]] = {}
    articles: set[str] = set()
    stories = 0
    first_fetch, last_out = math.inf, 0.0
    for data in entries(client, STORIES_EVENTS):
        event = StoryEvent.model_validate_json(data)
        articles.add(event.article.article_id)
        stories += event.kind == "created"
        at = event.article.fetched_at.timestamp()
        members = frozenset(member.url for member in event.story.members)
        fetched[(event.story.story_id, members)] = (at, event.article.url)
        first_fetch = min(first_fetch, at)
        last_out = max(last_out, event.occurred_at.timestamp())
    latencies, release_latencies, alerts = [], [], 0
    for data in entries(client, ALERTS):
        alert = TopicAlert.model_validate_json(data)
        alerts += 1
        created = alert.created_at.timestamp()
        last_out = max(last_out, created)
        cause = fetched.get((alert.story_id, frozenset(alert.urls)))
        if cause is not None:
            latencies.append(created - cause[0])
            released = None if release_time is None else release_time(cause[1])
            if released is not None:
                release_latencies.append(created - released)
    return Outcome(
        layout, len(articles), stories, alerts, last_out - first_fetch, latencies, release_latencies
    )


# --- runs -------------------------------------------------------------------------------------


@contextmanager
def redis_for(layout: str, folder: Path) -> Iterator[tuple[str, sync_redis.Redis]]:
    """A fresh redis-server, or for the "cluster" layout a Redis Cluster of three masters on
    this machine; its URL and a client."""
    if layout == "cluster":
        cluster = LocalRedisCluster(shutil.which("redis-server") or "redis-server", folder)
        cluster.start()
        client: sync_redis.Redis = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
        try:
            yield cluster.url, client
        finally:
            client.close()
            cluster.stop()
        return
    server = RedisServer(folder)
    server.start()
    client = sync_redis.Redis.from_url(server.url)
    try:
        yield server.url, client
    finally:
        client.close()
        server.stop()


def run_pipeline(
    layout: str,
    work: Path,
    site: CorpusSite,
    expected: int,
    *,
    interval_seconds: float,
    extra_env: dict[str, str],
    timeout_seconds: float,
    before_wait: Callable[[sync_redis.Redis], None] | None = None,
    release_time: Callable[[str], float | None] | None = None,
) -> Outcome:
    """Run the whole pipeline in `layout` on a fresh redis-server (or cluster) until
    `expected` articles are in stories and every stream is drained."""
    work.mkdir(parents=True)
    config = write_config(work / "newsmon.yaml", site.feed_urls, interval_seconds)
    with redis_for(layout, _folder(work / "redis")) as (url, client):
        processes = make_processes(layout, url, config, work / "logs", SERVICE_NAMES, extra_env)
        try:
            return _measure_run(
                layout, processes, client, url, expected, timeout_seconds, before_wait, release_time
            )
        finally:
            for process in processes:
                process.stop()


def _measure_run(
    layout: str,
    processes: Sequence[ServiceProcess],
    client: sync_redis.Redis,
    url: str,
    expected: int,
    timeout_seconds: float,
    before_wait: Callable[[sync_redis.Redis], None] | None,
    release_time: Callable[[str], float | None] | None,
) -> Outcome:
    """Start `processes`, wait until `expected` articles are placed; what the run did."""
    memory_before = used_memory(client)
    for process in processes:
        process.start()
    if before_wait is not None:
        before_wait(client)
    # CPU is counted from the first story event on: by then every service has started
    # (imports cost each process a second or two), and it is work per article from there.
    wait_for(lambda: client.xlen(STORIES_EVENTS) > 0, timeout_seconds, "a first story")
    cpu_before, placed_before = cpu_snapshot(processes), client.xlen(STORIES_EVENTS)
    redis_cpu_before, site_cpu_before = redis_cpu_seconds(client), time.process_time()
    wait_until_placed(client, url, expected, timeout_seconds)
    memory = measure_memory(processes, cpu_before)
    memory_after = used_memory(client)
    streams_bytes, rest_bytes = keys_memory(client)
    redis_cpu = redis_cpu_seconds(client) - redis_cpu_before
    site_cpu = time.process_time() - site_cpu_before
    outcome = read_outcome(client, layout, release_time)
    outcome.cpu_articles = outcome.articles - placed_before
    outcome.memory, outcome.redis_cpu, outcome.site_cpu = memory, redis_cpu, site_cpu
    if len(outcome.latencies) < outcome.alerts:
        missing = outcome.alerts - len(outcome.latencies)
        print(f"  {missing} alert(s) not matched to their story event", file=sys.stderr)
    if outcome.stories:
        delta = memory_after - memory_before
        outcome.redis_mb_per_1000_stories = delta / MB * 1000 / outcome.stories
        outcome.streams_mb_per_1000_stories = streams_bytes / MB * 1000 / outcome.stories
        outcome.rest_mb_per_1000_stories = rest_bytes / MB * 1000 / outcome.stories
    return outcome


def wait_until_placed(
    client: sync_redis.Redis, url: str, expected: int, timeout_seconds: float
) -> None:
    """Until `expected` story events exist and nothing is left to process (or no progress for
    30 s with nothing left, e.g. when an article was dead-lettered)."""
    deadline = time.monotonic() + timeout_seconds
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = client.xlen(STORIES_EVENTS)
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        if count >= expected and drained(url):
            return
        if count and time.monotonic() - last_change > 30 and drained(url):
            print(f"  (stopped at {count} of {expected} articles: no progress)", file=sys.stderr)
            return
        time.sleep(0.5)
    raise TimeoutError(f"timed out: {client.xlen(STORIES_EVENTS)} of {expected} articles placed")


@dataclass
class Solo:
    """The cleaner alone, by number of processes: drain rate (articles/s) and CPU time per
    article of the cleaners and their extraction workers (ms)."""

    rates: dict[int, float] = field(default_factory=dict)
    cpu_ms: dict[int, float] = field(default_factory=dict)


def cleaner_solo(work: Path, site: CorpusSite, expected: int, timeout_seconds: float) -> Solo:
    """The cleaner's drain rate (articles/s) of a pre-filled `articles.raw`, with 1 and with 2
    processes: the fetcher alone fetches every page first, then the cleaners start."""
    work.mkdir(parents=True)
    config = write_config(work / "newsmon.yaml", site.feed_urls, 2)
    redis_server = RedisServer(_folder(work / "redis"))
    redis_server.start()
    client = sync_redis.Redis.from_url(redis_server.url)
    solo = Solo()
    try:
        fetcher = ServiceProcess("fetcher", redis_server.url, config, _folder(work / "logs"))
        fetcher.start()
        try:
            wait_for(lambda: client.xlen(ARTICLES_RAW) >= expected, timeout_seconds, "fetch")
        finally:
            fetcher.stop()
        fetched = client.xlen(ARTICLES_RAW)
        for replicas in (1, 2):
            client.delete(ARTICLES_CLEAN)
            client.xgroup_destroy(ARTICLES_RAW, GROUP_CLEANER)
            cleaners = [
                ServiceProcess(
                    "cleaner", redis_server.url, config, _folder(work / f"c{replicas}-{k}")
                )
                for k in range(replicas)
            ]
            for cleaner in cleaners:
                cleaner.env["NEWSMON_RECLAIM_IDLE_SECONDS"] = "60"
                cleaner.start()
            try:
                wait_for(lambda: client.xlen(ARTICLES_CLEAN) > 0, timeout_seconds, "a cleaner")
                cpu_before, cleaned_before = cpu_snapshot(cleaners), client.xlen(ARTICLES_CLEAN)
                wait_for(
                    lambda: (
                        client.xlen(ARTICLES_CLEAN) >= fetched
                        and drained(redis_server.url, {ARTICLES_RAW: GROUP_CLEANER})
                    ),
                    timeout_seconds,
                    "the cleaner's drain",
                )
                cpu = sum(
                    usage.own_cpu + usage.workers_cpu
                    for usage in measure_memory(cleaners, cpu_before)
                )
            finally:
                for cleaner in cleaners:
                    cleaner.stop()
            cleaned = [
                CleanArticle.model_validate_json(data).cleaned_at.timestamp()
                for data in entries(client, ARTICLES_CLEAN)
            ]
            solo.rates[replicas] = (len(cleaned) - 1) / (max(cleaned) - min(cleaned))
            solo.cpu_ms[replicas] = cpu * 1000 / max(1, len(cleaned) - cleaned_before)
    finally:
        client.close()
        redis_server.stop()
    return solo


# --- report -----------------------------------------------------------------------------------

LABELS = {
    "up": "one process (`newsmon up`)",
    "replicas": "2 replicas per stage",
    "cluster": "2 replicas per stage, Redis Cluster (3 masters)",
}


def verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def report_throughput(outcomes: Sequence[Outcome], solo: dict[int, float]) -> None:
    print(
        "| configuration | articles | stories | alerts | articles/s | % of cleaner solo "
        f"(target >= {TARGET_SHARE:.0%}) | fetch-to-alert p50 s | p99 s "
        "| Redis MB / 1,000 stories (streams: raw pages are kept 1 h; the rest) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for o in outcomes:
        base = solo[1 if o.layout == "up" else 2]
        share = o.rate / base
        print(
            f"| {LABELS[o.layout]} | {o.articles} | {o.stories} | {o.alerts} | {o.rate:.1f} | "
            f"{share:.0%} of {base:.1f} ({verdict(share >= TARGET_SHARE)}) | "
            f"{percentile(o.latencies, 0.5):.2f} | {percentile(o.latencies, 0.99):.2f} | "
            f"{o.redis_mb_per_1000_stories:.1f} (streams {o.streams_mb_per_1000_stories:.1f}, "
            f"the rest {o.rest_mb_per_1000_stories:.2f}) |"
        )
    print()
    print("| cleaner solo (draining a pre-filled articles.raw) | articles/s |")
    print("|---|---|")
    for replicas, rate in solo.items():
        print(f"| {replicas} process{'es' if replicas > 1 else ''} | {rate:.1f} |")
    print()


def report_memory(outcomes: Sequence[Outcome]) -> None:
    print(
        "| configuration | process | peak RSS MB "
        "| + its child processes MB (extraction worker, resource tracker) |"
    )
    print("|---|---|---|---|")
    for o in outcomes:
        by_name: dict[str, list[Memory]] = {}
        for memory in o.memory:
            by_name.setdefault(memory.name, []).append(memory)
        for name, memories in by_name.items():
            own = " / ".join(f"{m.own_mb:.0f}" for m in memories)
            workers = " / ".join(f"{m.workers_mb:.0f}" for m in memories if m.workers_mb)
            label = "newsmon up (all four)" if name == "up" else f"newsmon serve {name}"
            print(f"| {LABELS[o.layout]} | {label} | {own} | {workers or '-'} |")
    print()


def report_cpu(outcomes: Sequence[Outcome], solo_cpu_ms: dict[int, float]) -> None:
    """CPU milliseconds per article, by process, from the first story event on (start-up
    apart): where the machine's cores go. The ceiling is the rate at which the CPU work of an
    article fills every core of this machine."""
    cores = os.cpu_count() or 1
    print(
        "| configuration | services ms/article (extraction workers apart) | redis-server | "
        f"feed and page server (this bench) | total | CPU-bound ceiling on {cores} cores, "
        "articles/s |"
    )
    print("|---|---|---|---|---|---|")
    for o in outcomes:
        per = 1000 / max(1, o.cpu_articles)
        services: dict[str, float] = {}
        for memory in o.memory:
            services[memory.name] = services.get(memory.name, 0.0) + memory.own_cpu * per
            if memory.workers_cpu:
                services["extraction"] = services.get("extraction", 0.0) + memory.workers_cpu * per
        total = sum(services.values()) + (o.redis_cpu + o.site_cpu) * per
        parts = ", ".join(f"{name} {ms:.1f}" for name, ms in services.items())
        print(
            f"| {LABELS[o.layout]} | {parts} | {o.redis_cpu * per:.1f} | {o.site_cpu * per:.1f} "
            f"| {total:.1f} | {cores * 1000 / total:.0f} |"
        )
    for replicas, ms in solo_cpu_ms.items():
        print(
            f"| cleaner solo, {replicas} process{'es' if replicas > 1 else ''} | cleaner and "
            f"extraction {ms:.1f} | - | - | {ms:.1f} | {cores * 1000 / ms:.0f} |"
        )
    print()


def report_paced(outcomes: Sequence[tuple[Outcome, float]]) -> None:
    print(
        "| configuration (paced) | feed rate articles/s | achieved | articles | alerts | "
        f"fetch-to-alert p50 s | p99 s (target < {TARGET_P99_SECONDS:.0f} s) | "
        "feed-release-to-alert p99 s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for o, rate in outcomes:
        p99 = percentile(o.latencies, 0.99)
        print(
            f"| {LABELS[o.layout]} | {rate:.1f} | {o.rate:.1f} | {o.articles} | {o.alerts} | "
            f"{percentile(o.latencies, 0.5):.2f} | {p99:.2f} "
            f"({verdict(p99 < TARGET_P99_SECONDS)}) | "
            f"{percentile(o.release_latencies, 0.99):.2f} |"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=10_000, help="articles per run")
    parser.add_argument(
        "--paced-seconds", type=float, default=60.0, help="length of the paced runs, seconds"
    )
    parser.add_argument(
        "--chrome-kb",
        type=int,
        default=100,
        help="page furniture around each article, KB: 100 makes a page cost the cleaner about"
        " what a real news page of ../shared/eval/extraction costs (15-20 ms of CPU)",
    )
    parser.add_argument(
        "--layouts",
        nargs="*",
        default=["up", "replicas", "cluster"],
        choices=["up", "replicas", "cluster"],
    )
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the services and redis-servers started here are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stories = max(1, args.articles // COPIES)
    corpus = synthetic_corpus(stories, COPIES, topic_every=1)
    timeout = max(600.0, len(corpus) * 0.5)
    print(
        f"{len(corpus)} articles ({stories} stories x {COPIES} copies), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    print()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        work = Path(tmp)
        with CorpusSite(corpus, items_per_feed=ITEMS_PER_FEED, chrome_kb=args.chrome_kb) as site:
            started = time.monotonic()
            solo = cleaner_solo(work / "solo", site, len(corpus), timeout)
            print(f"  cleaner solo measured in {time.monotonic() - started:.0f} s", file=sys.stderr)
            outcomes = []
            for layout in args.layouts:
                started = time.monotonic()
                outcomes.append(
                    run_pipeline(
                        layout,
                        work / layout,
                        site,
                        len(corpus),
                        interval_seconds=2,
                        extra_env={},
                        timeout_seconds=timeout,
                    )
                )
                print(f"  {layout} run in {time.monotonic() - started:.0f} s", file=sys.stderr)
        report_throughput(outcomes, solo.rates)
        report_memory(outcomes)
        report_cpu(outcomes, solo.cpu_ms)
        paced = []
        for layout in args.layouts:
            rate = solo.rates[1 if layout == "up" else 2] / 2
            count = min(len(corpus), max(COPIES, round(rate * args.paced_seconds)))
            subset = corpus_prefix(corpus, count)
            with PacedCorpusSite(
                subset, rate=rate, feeds=PACED_FEEDS, chrome_kb=args.chrome_kb
            ) as paced_site:
                started = time.monotonic()
                outcome = run_pipeline(
                    layout,
                    work / f"paced-{layout}",
                    paced_site,
                    len(subset),
                    interval_seconds=1,
                    extra_env=FAST_POLLS,
                    timeout_seconds=timeout + args.paced_seconds,
                    before_wait=lambda client, s=paced_site: wait_ready_then_release(s, client),
                    release_time=paced_site.release_time,
                )
                print(
                    f"  paced {layout} run in {time.monotonic() - started:.0f} s", file=sys.stderr
                )
            paced.append((outcome, rate))
        report_paced(paced)


def corpus_prefix(corpus: Sequence[SyntheticArticle], count: int) -> list[SyntheticArticle]:
    """The first `count` articles in release order: whole stories, copies interleaved."""
    stories = max(1, count // COPIES)
    return [a for a in corpus if a.story < stories]


def wait_ready_then_release(site: PacedCorpusSite, client: sync_redis.Redis) -> None:
    """Open the feeds once every consumer group exists (the services are up)."""

    def groups() -> int:
        try:
            return sum(len(client.xinfo_groups(stream)) for stream in CONSUMED_STREAMS)
        except sync_redis.ResponseError:  # a stream does not exist yet
            return 0

    wait_for(lambda: groups() >= len(CONSUMED_STREAMS), 120, "the services to start")
    time.sleep(1)
    site.release()


if __name__ == "__main__":
    main()
