"""Resident memory of each service run apart (`newsmon serve X`), as a Kubernetes pod runs it:
the figures behind the resource requests and limits in deploy/kubernetes/.

One real redis-server on a free port in a temporary folder; the bundled sample site
(services/samples/site, English and French pages) and a synthetic corpus (services/samples/
corpus.py, `--articles` English articles, 100 KB of page furniture each) served on 127.0.0.1
as the sources of examples/newsmon.yaml's topics; the four services started with
`newsmon serve NAME`, each in a process group of its own. Every half second the resident set
(RSS, psutil) of each service's process tree (the cleaner's extraction worker included) is
read, until every stream is drained; printed per service, MB:

- ready: once the service answers /readyz 200 (nothing processed yet);
- peak: the largest sum seen over the run;
- end: after the run (what a steady service holds between bursts).

The alerter's lemmatiser data grows with the languages it has seen (issue 17: 766 MB after
8 languages): these figures, with two, are its floor, not its ceiling.

    python benchmarks/bench_service_memory.py [--articles 400]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
import yaml  # noqa: E402

from contracts.streams import ARTICLES_RAW, CONSUMED_STREAMS  # noqa: E402
from services.cli import SERVICE_NAMES  # noqa: E402
from services.common.redis import connect  # noqa: E402
from services.common.streams import group_backlog  # noqa: E402
from services.samples.corpus import CorpusSite, synthetic_corpus  # noqa: E402
from services.samples.server import SampleSite, sample_pages  # noqa: E402
from tests.harness import RedisServer, free_port, start_newsmon, stop_group  # noqa: E402

MB = 1024 * 1024
COPIES = 4
SAMPLE_INTERVAL_SECONDS = 0.5


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (0 once it is gone)."""
    try:
        process = psutil.Process(pid)
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def config_yaml(sample_feed: str, corpus_feeds: list[str]) -> str:
    """examples/newsmon.yaml with its sample source on `sample_feed`, plus the corpus feeds."""
    config = yaml.safe_load((ROOT / "examples" / "newsmon.yaml").read_text(encoding="utf-8"))
    config["sources"][0]["url"] = sample_feed
    config["sources"] += [
        {"name": f"corpus-{k}", "url": url, "interval_seconds": 60}
        for k, url in enumerate(corpus_feeds)
    ]
    return yaml.safe_dump(config, allow_unicode=True)


async def drained(redis_url: str, expected: int, lengths: dict[str, int]) -> bool:
    """`expected` articles fetched, and every consumed stream's group has handled all its
    entries; `lengths` gets each stream's length."""
    client = connect(redis_url)
    try:
        backlogs = [
            await group_backlog(client, stream, group) for stream, group in CONSUMED_STREAMS.items()
        ]
    finally:
        await client.aclose()
    lengths.update({b.stream: b.length for b in backlogs})
    return lengths[ARTICLES_RAW] >= expected and all(b.drained for b in backlogs)


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def measure(
    work: Path, articles: int, timeout_seconds: float, lengths: dict[str, int]
) -> dict[str, dict[str, float]]:
    redis = RedisServer(work)
    redis.start()
    corpus = synthetic_corpus(max(1, articles // COPIES), COPIES, topic_every=1)
    processes: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    figures: dict[str, dict[str, float]] = {name: {} for name in SERVICE_NAMES}
    try:
        with SampleSite() as site, CorpusSite(corpus, chrome_kb=100) as corpus_site:
            config = work / "newsmon.yaml"
            config.write_text(config_yaml(site.feed_url, corpus_site.feed_urls), encoding="utf-8")
            for name in SERVICE_NAMES:
                port = free_port()
                env = {
                    **os.environ,
                    "NEWSMON_REDIS_URL": redis.url,
                    "NEWSMON_HTTP_PORT": str(port),
                    "NEWSMON_FETCHER_API_TOKEN": "bench-fetcher-token",
                    "NEWSMON_ALERTER_API_TOKEN": "bench-alerter-token",
                    "NEWSMON_ALERTER_READ_TOKEN": "bench-alerter-read-token",
                }
                with (work / f"{name}.log").open("wb") as log:
                    process = start_newsmon(["serve", name, "--config", str(config)], env, log)
                processes[name] = (process, port)
            deadline = time.monotonic() + timeout_seconds
            while time.monotonic() < deadline:
                for name, (process, port) in processes.items():
                    if process.poll() is not None:
                        raise RuntimeError(f"{name} exited; see {work / (name + '.log')}")
                    rss = tree_rss(process.pid) / MB
                    seen = figures[name]
                    seen["peak"] = max(seen.get("peak", 0.0), rss)
                    if "ready" not in seen and ready(port):
                        seen["ready"] = rss
                if all("ready" in f for f in figures.values()) and asyncio.run(
                    drained(redis.url, len(sample_pages()) + len(corpus), lengths)
                ):
                    break
                time.sleep(SAMPLE_INTERVAL_SECONDS)
            else:
                raise RuntimeError(f"the streams were not drained in {timeout_seconds} s")
            time.sleep(5)  # let a last burst settle
            for name, (process, _) in processes.items():
                figures[name]["end"] = tree_rss(process.pid) / MB
    finally:
        for process, _ in processes.values():
            stop_group(process)
        redis.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--articles", type=int, default=400, help="synthetic articles besides the sample site"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="longest run, seconds")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the services and redis-server started here are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"{args.articles} synthetic articles + the sample site, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="bench-service-memory-") as tmp:
        lengths: dict[str, int] = {}
        figures = measure(Path(tmp), args.articles, args.timeout, lengths)
    print("entries handled: " + ", ".join(f"{s} {n}" for s, n in lengths.items()))
    print()
    print("| service | RSS when ready, MB | peak RSS, MB | RSS at the end, MB |")
    print("| --- | --- | --- | --- |")
    for name, seen in figures.items():
        print(f"| {name} | {seen['ready']:.0f} | {seen['peak']:.0f} | {seen['end']:.0f} |")


if __name__ == "__main__":
    main()
