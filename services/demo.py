"""`newsmon demo`: the whole pipeline on the bundled sample site, then a summary.

It serves the sample pages and feed on 127.0.0.1, runs all four services on an
embedded Redis in a fresh data folder, waits until every stream is drained,
reads what came out of the streams, and prints it.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import httpx
import redis.asyncio as aioredis
import yaml

from contracts import NewsmonConfig, SourceConfig, StoryEvent, StorySnapshot, TopicAlert
from contracts.streams import (
    ALERTS,
    ARTICLES_CLEAN,
    ARTICLES_RAW,
    STORIES_EVENTS,
    dead_letter_stream,
)
from services.alerter.app import create_service as create_alerter
from services.alerter.settings import AlerterSettings
from services.common.bus import DATA_FIELD
from services.common.pipeline import running_services, stop_on_signals, wait_until_done
from services.common.runtime import ServiceFactory
from services.common.settings import CommonSettings
from services.registry import SERVICES
from services.samples.server import SampleSite

SAMPLE_SOURCE = "sample-news"


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run produced, read back from the streams."""

    articles_fetched: int
    stories: tuple[StorySnapshot, ...]
    alerts: tuple[TopicAlert, ...]
    dead_letters: int


def demo_config(feed_url: str) -> NewsmonConfig:
    """The sample source plus the demo topics shipped with newsmon."""
    topics = yaml.safe_load(files("services.samples").joinpath("topics.yaml").read_text("utf-8"))
    return NewsmonConfig.model_validate(
        {
            "sources": [SourceConfig(name=SAMPLE_SOURCE, url=feed_url, interval_seconds=300)],
            "topics": topics["topics"],
            "allowed_private_hosts": [urlsplit(feed_url).netloc],  # the sample site alone
        }
    )


async def _entries(redis: aioredis.Redis, stream: str) -> list[bytes]:
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(stream))
    return [fields[DATA_FIELD] for _, fields in entries]


async def read_summary(redis: aioredis.Redis) -> RunSummary:
    """The latest snapshot of each story, every alert, and the counts."""
    stories: dict[str, StorySnapshot] = {}
    for body in await _entries(redis, STORIES_EVENTS):
        event = StoryEvent.model_validate_json(body)
        stories[event.story.story_id] = event.story
    alerts = tuple(TopicAlert.model_validate_json(b) for b in await _entries(redis, ALERTS))
    dead = 0
    for stream in (ARTICLES_RAW, ARTICLES_CLEAN, STORIES_EVENTS):
        dead += await redis.xlen(dead_letter_stream(stream))
    return RunSummary(
        articles_fetched=await redis.xlen(ARTICLES_RAW),
        stories=tuple(sorted(stories.values(), key=lambda s: (-len(s.members), s.first_seen))),
        alerts=alerts,
        dead_letters=dead,
    )


def render_summary(summary: RunSummary, *, seconds: float, metrics_lines: list[str]) -> str:
    """The summary as people read it."""
    lines = [
        f"Fetched {summary.articles_fetched} articles; {len(summary.stories)} stories;"
        f" {len(summary.alerts)} alerts; {summary.dead_letters} dead letters; {seconds:.1f} s",
        "",
        "Stories",
    ]
    for number, story in enumerate(summary.stories, start=1):
        lines.append(
            f"  {number}. {story.story_id}  {len(story.members)} article(s),"
            f" languages: {', '.join(story.languages) or '?'}"
        )
        for member in story.members:
            lines.append(
                f"     [{member.lang or '??'}] {_short(member.title, 70)}"
                f"  ({member.reason}, {member.similarity:.2f})"
            )
    lines += ["", "Alerts (one per story and topic)"]
    for alert in summary.alerts:
        lines.append(
            f"  [{alert.topic}] {alert.story_id} {_short(alert.title, 50)}"
            f"  ({', '.join(alert.languages)}; matched: {_terms(alert)})"
        )
    lines += ["", "Metrics (excerpt of /metrics at the end of the run)"]
    lines += [f"  {line}" for line in metrics_lines]
    return "\n".join(lines)


def _terms(alert: TopicAlert) -> str:
    return ", ".join(sorted({match.term for match in alert.matched}))


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _free_port(preferred: int) -> int:
    """`preferred` if nothing listens there, else any free port."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            return 0
    return preferred


async def _metrics_excerpt(url: str) -> list[str]:
    async with httpx.AsyncClient() as client:
        text = (await client.get(url)).text
    wanted = (
        "newsmon_fetcher_items_total{",
        "newsmon_cleaner_pages_total{",
        "newsmon_detector_articles_total{",
        "newsmon_alerter_alerts_total{",
        "newsmon_dead_letters_total{",
    )
    return [line for line in text.splitlines() if line.startswith(wanted)]


async def _demo(settings: CommonSettings, timeout_seconds: float, keep_serving: bool) -> int:
    started = time.perf_counter()
    stop = stop_on_signals() if keep_serving else None
    alerter_settings = AlerterSettings()
    if alerter_settings.read_token is None:
        alerter_settings = alerter_settings.model_copy(
            update={"read_token": secrets.token_urlsafe(12)}
        )
    factories: dict[str, ServiceFactory] = {
        **SERVICES,
        "alerter": partial(create_alerter, settings=alerter_settings),
    }
    with SampleSite() as site:
        print(
            f"newsmon demo: sample site at {site.base_url}, feed {site.feed_url}", file=sys.stderr
        )
        config = demo_config(site.feed_url)
        async with running_services(
            list(factories.values()), settings=settings, config=config
        ) as pipeline:
            print(
                f"newsmon demo: pipeline running on embedded Redis ({settings.data_dir});"
                f" metrics at {pipeline.http_url}/metrics",
                file=sys.stderr,
            )
            done = await wait_until_done(pipeline, timeout_seconds=timeout_seconds)
            summary = await read_summary(pipeline.redis)
            metrics_lines = await _metrics_excerpt(f"{pipeline.http_url}/metrics")
            seconds = time.perf_counter() - started
            print(render_summary(summary, seconds=seconds, metrics_lines=metrics_lines))
            page = f"{pipeline.http_url}/ui"
            if not done:
                print(f"newsmon demo: not finished after {timeout_seconds:.0f} s", file=sys.stderr)
                return 1
            if stop is not None:
                print(
                    f"\nThe stories page: {page}  (sign in with the token"
                    f" {alerter_settings.read_token}); API: {pipeline.http_url}/stories."
                    "\nServing until Ctrl-C.",
                    flush=True,
                )
                await stop.wait()
                print("newsmon demo: stopped", file=sys.stderr)
                return 0
    print(
        f"\nThe stories page was served at {page} during the run (`newsmon demo` in a terminal"
        " keeps serving it); `newsmon up --config examples/newsmon.yaml` keeps the pipeline,"
        " the page and /metrics running."
    )
    return 0


def run_demo(
    settings: CommonSettings, *, data_dir: Path, timeout_seconds: float, keep_serving: bool
) -> int:
    """Run the demo in a fresh `data_dir`; 0 when the run completed. With `keep_serving` the
    pipeline, its page and API stay up until Ctrl-C."""
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = settings.model_copy(
        update={
            "redis_url": None,
            "data_dir": data_dir,
            "http_port": _free_port(settings.http_port),
        }
    )
    return asyncio.run(_demo(settings, timeout_seconds, keep_serving))
