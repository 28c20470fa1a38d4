"""Soak: Redis memory levels off when every structure has a retention (issue 16).

`newsmon up` runs on its embedded Redis with every retention set to `--retention-seconds`
(processed stream entries, raw pages, dead letters, alerts, the stories read model, stories,
seen article ids, sent alerts, the detector's statistics generations; a story also closes that
long after its last article), one
topic and one webhook subscriber (a local server answering 204). Generated articles are
pushed to `POST /ingest` at `--rate` a second by four publishers (push tokens): stories in
English, French, German and Spanish from word lists, some syndicated (1-3 copies by other
publishers, a new headline and byline each, pushed a few seconds to a minute later), one in
`--topic-every` English stories about the topic, so alerts go out.

Every `--sample-seconds` the benchmark reads, from the same Redis (the data folder's unix
socket): INFO used_memory, DBSIZE and the XLEN of the pipeline's streams, and from /metrics
the articles the detector placed and the story events the alerter handled; every
`--breakdown-every` samples, MEMORY USAGE of every key (SCAN), summed by key pattern.

Printed: the samples as a table; the levelling figure, the mean used memory over the last
third of the push phase over the mean of the middle third (levelled when under 1.10); bytes
per retained article, that last-third mean minus the empty pipeline's used memory, divided
by the articles pushed within the last retention period (the same samples' mean); the key
patterns at the start of the middle third and at the end of the push, and which of them grew.
After the push, sampling goes on for `--tail-seconds` (default: a retention period and two
trim intervals) to show memory going back down.

    python benchmarks/bench_soak.py                                 # 50,000 articles, ~20 min
    python benchmarks/bench_soak.py --quick     # 2,000 at 20/s, retentions of 20 s: ~2.5 min

Reported, not asserted; the exit status is 0 unless the pipeline could not be run.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis as sync_redis  # noqa: E402

from contracts.streams import (  # noqa: E402
    ALERTS,
    ARTICLES_CLEAN,
    ARTICLES_RAW,
    STORIES_EVENTS,
    topic_alerts_stream,
)
from services.common.redis import embedded_redis  # noqa: E402
from services.samples.corpus import NAME_SYLLABLES, TOPIC_TERM, WORDS  # noqa: E402
from tests.harness import (  # noqa: E402
    LocalHttpServer,
    free_port,
    send,
    start_newsmon,
    stop_group,
    stop_redis_servers_under,
)

MB = 1024 * 1024
TOPIC = "geothermal energy"
PUBLISHERS = ("wire-north", "wire-south", "daily-east", "daily-west")
LEVELLED_BELOW = 1.10
"""Last third's mean used memory over the middle third's under which memory levelled off."""
GREW_BYTES = 64 * 1024
"""A key pattern that grew by more than this (and a tenth) is named as growing."""

WORDS_BY_LANGUAGE: dict[str, tuple[str, ...]] = {
    "en": WORDS,
    "fr": tuple(
        """le la les de des du un une et est en que qui dans pour pas sur au avec il elle ne se
        plus par son sa ses ce cette nous vous ils sont ont été fait comme mais ou donc encore
        aussi tout tous très bien après avant depuis entre sans sous leur leurs même alors
        ville pays gouvernement président année jour temps monde travail vie maison école
        rapport projet ministre région public nouvelle grand petit premier dernier selon
        contre toujours jamais peut doit faire dire voir savoir prendre donner semaine""".split()  # noqa: SIM905
    ),
    "de": tuple(
        """der die das und ist nicht ein eine zu den von mit sich des auf für im dem auch es an
        als nach wie aus bei hat wird sind noch nur oder aber vor zur bis mehr durch über so
        sie wir ihr werden wurde schon jetzt immer unter zwischen gegen ohne seit heute
        Stadt Land Regierung Präsident Jahr Tag Zeit Welt Arbeit Leben Haus Schule Bericht
        Projekt Minister Region neue große kleine erste letzte laut sagte sollen können
        müssen machen sehen geben nehmen Woche Gemeinde Unternehmen Entwicklung""".split()  # noqa: SIM905
    ),
    "es": tuple(
        """el la los las de del un una y es en que por con para no se su sus al lo como más
        pero o ya muy también fue ha han sido está están sobre entre sin desde hasta durante
        este esta estos otro otra todos cuando donde porque ciudad país gobierno presidente
        año día tiempo mundo trabajo vida casa escuela informe proyecto ministro región
        nueva nuevo grande pequeño primero último según contra siempre nunca puede debe
        hacer decir ver dar tomar semana empresa desarrollo comunidad""".split()  # noqa: SIM905
    ),
}
LANGUAGE_WEIGHTS = {"en": 0.7, "fr": 0.1, "de": 0.1, "es": 0.1}
BOILERPLATE = {
    "en": "Sign up for our newsletter to receive the morning briefing.",
    "fr": "Abonnez-vous à notre lettre pour recevoir les nouvelles du matin.",
    "de": "Abonnieren Sie unseren Newsletter für die Nachrichten am Morgen.",
    "es": "Suscríbase a nuestro boletín para recibir las noticias de la mañana.",
}


# --- articles --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pushed:
    """One article as pushed: by whom, its URL and page."""

    publisher: str
    url: str
    html: str
    lang: str


@dataclass(frozen=True, slots=True)
class Story:
    number: int
    lang: str
    names: tuple[str, ...]
    paragraphs: tuple[str, ...]
    publisher: int


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(NAME_SYLLABLES) for _ in range(3)).capitalize()


def _words(rng: random.Random, lang: str, count: int) -> str:
    return " ".join(rng.choice(WORDS_BY_LANGUAGE[lang]) for _ in range(count))


def _story(rng: random.Random, number: int, topic_every: int) -> Story:
    lang = rng.choices(list(LANGUAGE_WEIGHTS), weights=list(LANGUAGE_WEIGHTS.values()))[0]
    names = tuple(_name(rng) for _ in range(4))
    figures = [str(rng.randint(10, 99_999)) for _ in range(3)]

    def sentence() -> str:
        words = _words(rng, lang, rng.randint(12, 20)).split()
        words[rng.randrange(len(words))] = rng.choice(names)
        if rng.random() < 0.5:
            words[rng.randrange(len(words))] = rng.choice(figures)
        return " ".join(words).capitalize() + "."

    paragraphs = [
        " ".join(sentence() for _ in range(rng.randint(3, 5))) for _ in range(rng.randint(4, 7))
    ]
    if lang == "en" and number % topic_every == 0:
        paragraphs[1] += f" The {TOPIC_TERM} plant was opened by {names[2]}."
    return Story(number, lang, names, tuple(paragraphs), rng.randrange(len(PUBLISHERS)))


def _page(rng: random.Random, story: Story, copy: int) -> Pushed:
    """Copy `copy` of `story` (0: the original) by a publisher of its own: a new headline and
    byline, and on copies a boilerplate line and sometimes a paragraph less."""
    publisher = PUBLISHERS[(story.publisher + copy) % len(PUBLISHERS)]
    title = f"{story.names[0]} {story.names[1]}: {_words(rng, story.lang, 6)}"
    paragraphs = list(story.paragraphs)
    byline = f"{_name(rng)} {_name(rng)}"
    if copy:
        paragraphs.append(BOILERPLATE[story.lang])
        if rng.random() < 0.5:
            del paragraphs[-2]
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    html = (
        f'<!DOCTYPE html><html lang="{story.lang}"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head><body><header><a href='/'>{publisher}</a>"
        f"</header><main><article><h1>{escape(title)}</h1><p class='byline'>{byline}</p>"
        f"{body}</article></main><footer>&copy; {publisher}</footer></body></html>"
    )
    url = f"https://{publisher}.example/{story.lang}/{story.number}-{copy}"
    return Pushed(publisher, url, html, story.lang)


def soak_articles(count: int, *, seed: int = 16, topic_every: int = 10) -> Iterator[Pushed]:
    """`count` articles, made as they are pushed: new stories, and copies of earlier ones
    by other publishers (a story has 0 copies in 3 cases out of 5, else 1-3), each due
    50-2,000 articles after its original."""
    rng = random.Random(seed)
    due: list[tuple[int, int, Story, int]] = []  # (article index, order made, story, copy)
    stories = made = 0
    for index in range(count):
        if due and due[0][0] <= index:
            _, _, story, copy = heapq.heappop(due)
            yield _page(rng, story, copy)
            continue
        story = _story(rng, stories, topic_every)
        stories += 1
        copies = 0 if rng.random() < 0.6 else rng.randint(1, 3)
        for copy in range(1, copies + 1):
            made += 1
            heapq.heappush(due, (index + rng.randint(50, 2000), made, story, copy))
        yield _page(rng, story, 0)


# --- the pipeline ----------------------------------------------------------------------------


def soak_env(retention: float, trim_interval: float, push_tokens: dict[str, str]) -> dict[str, str]:
    """The environment of `newsmon up`: every retention `retention` seconds."""
    seconds = f"{retention:g}"
    whole = str(max(1, round(retention)))
    return {
        "NEWSMON_STREAM_RETENTION_SECONDS": seconds,
        "NEWSMON_RAW_RETENTION_SECONDS": seconds,
        "NEWSMON_DEAD_LETTER_RETENTION_SECONDS": seconds,
        "NEWSMON_ALERTER_ALERTS_RETENTION_SECONDS": seconds,
        "NEWSMON_ALERTER_STORIES_RETENTION_SECONDS": seconds,
        "NEWSMON_DETECTOR_STORY_TTL_SECONDS": whole,
        "NEWSMON_DETECTOR_CLOSE_AFTER_HOURS": f"{retention / 3600:g}",
        "NEWSMON_DETECTOR_STATS_PERIOD_SECONDS": whole,
        "NEWSMON_FETCHER_SEEN_RETENTION_SECONDS": seconds,
        "NEWSMON_ALERTER_SENT_TTL_SECONDS": whole,
        "NEWSMON_TRIM_INTERVAL_SECONDS": f"{trim_interval:g}",
        "NEWSMON_FETCHER_PUSH_TOKENS": json.dumps(push_tokens),
        "NEWSMON_ALERTER_API_TOKEN": "soak-admin-token-0123456789",
        # an update alert when two more outlets join, at most one a minute per story
        "NEWSMON_ALERTER_UPDATE_DEBOUNCE_SECONDS": "60",
        "NEWSMON_LOG_LEVEL": "WARNING",
    }


def soak_config(webhook_url: str) -> str:
    return yaml.safe_dump(
        {
            "topics": [{"name": TOPIC, "keywords": [TOPIC_TERM]}],
            "subscriptions": [
                {"name": "soak-hook", "url": webhook_url, "secret": "soak-webhook-secret-0123"}
            ],
            "allowed_private_hosts": ["127.0.0.1:*"],  # the webhook receiver's port
        }
    )


@contextlib.contextmanager
def newsmon_up(config_yaml: str, work_dir: Path, env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """`newsmon up` on its embedded Redis in `work_dir/data`, as tests/conftest.py's fixture
    of that name starts it; yields its HTTP base URL and data folder; stops it and the Redis."""
    port = free_port()
    config = work_dir / "newsmon.yaml"
    config.write_text(config_yaml, encoding="utf-8")
    data_dir = work_dir / "data"
    full_env = {**os.environ, "NEWSMON_DATA_DIR": str(data_dir), **env}
    full_env["NEWSMON_HTTP_PORT"] = str(port)
    full_env.pop("REDIS_URL", None)
    with (work_dir / "newsmon.log").open("wb") as log:
        process = start_newsmon(["up", "--config", str(config)], full_env, log)
    try:
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while not _ready(base_url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"newsmon up did not get ready: see {work_dir}/newsmon.log")
            time.sleep(0.3)
        yield base_url, data_dir
    finally:
        stop_group(process, timeout_seconds=60)
        stop_redis_servers_under(work_dir)


def _ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


# --- sampling --------------------------------------------------------------------------------

STREAMS = (ARTICLES_RAW, ARTICLES_CLEAN, STORIES_EVENTS, ALERTS, topic_alerts_stream(TOPIC))
SHORT = {ARTICLES_RAW: "raw", ARTICLES_CLEAN: "clean", STORIES_EVENTS: "events", ALERTS: "alerts"}
_BAND_KEY = re.compile(r"[a-z]\d+")
_BUCKET = re.compile(r"[0-9a-f]{2,3}")


def key_pattern(key: str) -> str:
    """The key with each part that names one of many (a number, an id, a hex bucket) as `*`:
    `{newsmon:detector}:r:123` -> `{newsmon:detector}:r:*`, `...:s0:ab` -> `...:s*:*`."""
    parts = key.split(":")
    for i in range(1, len(parts)):
        part = parts[i]
        if parts[i - 1] in ("d", "t", "s*") and _BUCKET.fullmatch(part):
            parts[i] = "*"
        elif _BAND_KEY.fullmatch(part):
            parts[i] = part[0] + "*"
        elif any(c.isdigit() for c in part):
            parts[i] = "*"
    return ":".join(parts)


def memory_by_pattern(client: sync_redis.Redis) -> dict[str, tuple[int, int]]:
    """MEMORY USAGE of every key summed by `key_pattern`: pattern -> (bytes, keys)."""
    found: dict[str, list[int]] = {}
    keys = [k.decode("utf-8", "replace") for k in client.scan_iter(count=1000)]
    for start in range(0, len(keys), 500):
        batch = keys[start : start + 500]
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
        for key, size in zip(batch, pipe.execute(), strict=True):
            entry = found.setdefault(key_pattern(key), [0, 0])
            entry[0] += int(size or 0)
            entry[1] += 1
    return {pattern: (size, count) for pattern, (size, count) in found.items()}


def metric_sums(base_url: str) -> dict[str, float]:
    """Sums of the /metrics samples the table shows (0 when unreadable)."""
    sums: dict[str, float] = defaultdict(float)
    try:
        text = httpx.get(f"{base_url}/metrics", timeout=5).text
    except httpx.TransportError:
        return sums
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name == "newsmon_detector_articles_total":
            sums["detected"] += float(line.split()[-1])
        elif name == "newsmon_alerter_alerts_total":
            sums["alerts"] += float(line.split()[-1])
        elif name == "newsmon_messages_total" and f'stream="{STORIES_EVENTS}"' in line:
            if 'outcome="processed"' in line:
                sums["alerted"] += float(line.split()[-1])
        elif name == "newsmon_dead_letters_total":
            sums["dead"] += float(line.split()[-1])
    return sums


@dataclass
class Sample:
    at: float
    """Seconds since the first push."""
    pushed: int
    retained: int
    """Articles pushed within the last retention period."""
    used: int
    keys: int
    lengths: dict[str, int]
    counts: dict[str, float]
    patterns: dict[str, tuple[int, int]] | None = None


@dataclass
class Sampler:
    """Samples Redis and /metrics in a thread of its own while articles are pushed."""

    client: sync_redis.Redis
    base_url: str
    retention: float
    interval: float
    breakdown_every: int
    push_times: list[float] = field(default_factory=list)
    """Monotonic time of each push, appended by the pusher."""
    samples: list[Sample] = field(default_factory=list)
    started: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self, *, breakdown: bool) -> Sample:
        now = time.monotonic()
        pushed = len(self.push_times)
        cutoff = now - self.retention
        retained = pushed - _first_after(self.push_times, cutoff, pushed)
        info = self.client.info("memory")
        pipe = self.client.pipeline(transaction=False)
        pipe.dbsize()
        for stream in STREAMS:
            pipe.xlen(stream)
        keys, *lengths = pipe.execute()
        sample = Sample(
            at=now - self.started,
            pushed=pushed,
            retained=retained,
            used=int(info["used_memory"]),
            keys=int(keys),
            lengths=dict(zip(STREAMS, map(int, lengths), strict=True)),
            counts=metric_sums(self.base_url),
            patterns=memory_by_pattern(self.client) if breakdown else None,
        )
        self.samples.append(sample)
        return sample

    def run(self) -> None:
        taken = 0
        while not self._stop.wait(
            max(0.0, self.started + taken * self.interval - time.monotonic())
        ):
            sample = self.sample(breakdown=taken % self.breakdown_every == 0)
            print(row(sample), flush=True)
            taken += 1

    def _until(self, taken: int) -> float:
        """Seconds until sample number `taken` is due."""
        return max(0.0, self.started + taken * self.interval - time.monotonic())

    def start(self) -> threading.Thread:
        self.started = time.monotonic()
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread

    def stop(self, thread: threading.Thread) -> None:
        self._stop.set()
        thread.join()


def _first_after(times: Sequence[float], cutoff: float, end: int) -> int:
    """Index of the first of `times[:end]` (ascending) after `cutoff`."""
    low, high = 0, end
    while low < high:
        middle = (low + high) // 2
        if times[middle] <= cutoff:
            low = middle + 1
        else:
            high = middle
    return low


# --- output ----------------------------------------------------------------------------------

HEADER = (
    "| t s | pushed | placed | handled | alerts | used MB | keys | XLEN raw | XLEN clean "
    "| XLEN events | XLEN alerts | largest key patterns (MB) |\n"
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)
"""placed: articles the detector placed in stories; handled: story events the alerter handled;
alerts: alerts it sent (its metrics)."""


def row(sample: Sample) -> str:
    lengths = sample.lengths
    largest = ""
    if sample.patterns:
        top = sorted(sample.patterns.items(), key=lambda kv: -kv[1][0])[:3]
        largest = ", ".join(f"`{pattern}` {size / MB:.1f}" for pattern, (size, _) in top)
    counts = sample.counts
    return (
        f"| {sample.at:.0f} | {sample.pushed} | {counts['detected']:.0f} "
        f"| {counts['alerted']:.0f} | {counts['alerts']:.0f} | {sample.used / MB:.2f} "
        f"| {sample.keys} | {lengths[ARTICLES_RAW]} | {lengths[ARTICLES_CLEAN]} "
        f"| {lengths[STORIES_EVENTS]} | {lengths[ALERTS]} | {largest} |"
    )


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def report(samples: Sequence[Sample], baseline: int, push_seconds: float) -> None:
    """The levelling figure, bytes per retained article, and the key patterns that grew."""
    pushing = [s for s in samples if s.at <= push_seconds]
    middle = [s for s in pushing if push_seconds / 3 < s.at <= 2 * push_seconds / 3]
    last = [s for s in pushing if s.at > 2 * push_seconds / 3]
    if not middle or not last:
        print("too few samples for the levelling figures")
        return
    middle_used, last_used = mean([s.used for s in middle]), mean([s.used for s in last])
    ratio = last_used / middle_used
    retained = mean([s.retained for s in last])
    per_article = (last_used - baseline) / retained if retained else float("nan")
    slope = (last[-1].used - last[0].used) / max(1.0, last[-1].at - last[0].at) * 60 / MB
    print()
    print(f"empty pipeline: {baseline / MB:.2f} MB")
    print(
        f"used memory, mean of the middle third {middle_used / MB:.2f} MB, of the last third "
        f"{last_used / MB:.2f} MB: ratio {ratio:.3f} "
        f"({'levels off' if ratio < LEVELLED_BELOW else 'DOES NOT level off'}, "
        f"threshold {LEVELLED_BELOW}); last third's trend {slope:+.2f} MB/min"
    )
    print(
        f"articles within the retention period (last third, mean) {retained:.0f}: "
        f"{per_article:,.0f} bytes per retained article above the empty pipeline"
    )
    tail = samples[-1]
    if tail.at > push_seconds:
        print(
            f"{tail.at - push_seconds:.0f} s after the last push: {tail.used / MB:.2f} MB "
            f"({(tail.used - baseline) / MB:+.2f} MB over the empty pipeline), {tail.keys} keys"
        )
    broken = [s for s in middle if s.patterns]
    ended = [s for s in pushing if s.patterns]
    if broken and ended:
        print_growth(broken[0], ended[-1])


def print_growth(before: Sample, after: Sample) -> None:
    """Key patterns at two samples, largest first, with their growth; then those that grew."""
    then, now = before.patterns or {}, after.patterns or {}
    patterns = sorted(set(then) | set(now), key=lambda p: -now.get(p, (0, 0))[0])
    print()
    print(f"key patterns at t={before.at:.0f} s and t={after.at:.0f} s (MEMORY USAGE):")
    print()
    print("| key pattern | MB then | MB now | keys then | keys now | now/then |")
    print("|---|---:|---:|---:|---:|---:|")
    for pattern in patterns[:20]:
        size0, keys0 = then.get(pattern, (0, 0))
        size1, keys1 = now.get(pattern, (0, 0))
        growth = f"{size1 / size0:.2f}" if size0 else "new"
        print(
            f"| `{pattern}` | {size0 / MB:.2f} | {size1 / MB:.2f} | {keys0} | {keys1} | {growth} |"
        )
    grown = [
        pattern
        for pattern in patterns
        if now.get(pattern, (0, 0))[0] - then.get(pattern, (0, 0))[0] > GREW_BYTES
        and now.get(pattern, (0, 0))[0] > LEVELLED_BELOW * then.get(pattern, (0, 0))[0]
    ]
    print()
    print(
        "grew by more than a tenth and 64 KB: " + ", ".join(f"`{p}`" for p in grown)
        if grown
        else "no key pattern grew by more than a tenth and 64 KB"
    )


# --- the run ---------------------------------------------------------------------------------


def push_all(
    base_url: str,
    articles: Iterator[Pushed],
    tokens: dict[str, str],
    rate: float,
    sampler: Sampler,
) -> dict[int, int]:
    """POST every article to /ingest at `rate` a second (catching up when behind); returns
    the count of answers by status."""
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for index, article in enumerate(articles):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            response = client.post(
                "/ingest",
                json={"url": article.url, "html": article.html, "lang": article.lang},
                headers={"Authorization": f"Bearer {tokens[article.publisher]}"},
            )
            statuses[response.status_code] += 1
            sampler.push_times.append(time.monotonic())
    return dict(statuses)


def run(args: argparse.Namespace) -> None:
    retention = float(args.retention_seconds)
    trim_interval = args.trim_seconds or max(1.0, min(60.0, retention / 10))
    tail = args.tail_seconds if args.tail_seconds is not None else retention + 2 * trim_interval
    tokens = {name: f"soak-push-token-{name}-0123456789" for name in PUBLISHERS}
    print(
        f"soak: {args.articles} articles at {args.rate:g}/s ({args.articles / args.rate:.0f} s), "
        f"retentions {retention:g} s, trim every {trim_interval:g} s, then {tail:g} s more"
    )
    with (
        tempfile.TemporaryDirectory(prefix="newsmon-soak-") as tmp,
        LocalHttpServer(lambda handler: send(handler, 204)) as hook,
        newsmon_up(
            soak_config(f"{hook.base_url}/hook"),
            Path(tmp),
            soak_env(retention, trim_interval, tokens),
        ) as (base_url, data_dir),
        embedded_redis(data_dir) as redis_url,  # the server `newsmon up` started, reused
    ):
        client = sync_redis.Redis.from_url(redis_url)
        try:
            time.sleep(3)  # consumer groups made, start-up writes done
            baseline = int(client.info("memory")["used_memory"])
            sampler = Sampler(
                client, base_url, retention, args.sample_seconds, args.breakdown_every
            )
            print(HEADER, flush=True)
            thread = sampler.start()
            push_started = time.monotonic()
            statuses = push_all(base_url, soak_articles(args.articles), tokens, args.rate, sampler)
            push_seconds = time.monotonic() - push_started
            time.sleep(tail)
            sampler.stop(thread)
            final = sampler.sample(breakdown=True)
            print(row(final))
            print(f"\n/ingest answers: {statuses}; pushing took {push_seconds:.0f} s")
            report(sampler.samples, baseline, push_seconds)
            hooks = sum(path == "/hook" for path in hook.requests)
            print(f"webhook POSTs received: {hooks}; dead letters: {final.counts['dead']:.0f}")
        finally:
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a 2-minute run: 2,000 articles at 20/s, retentions of 20 s",
    )
    parser.add_argument("--articles", type=int, default=50_000, help="articles pushed")
    parser.add_argument("--rate", type=float, default=50.0, help="articles pushed a second")
    parser.add_argument(
        "--retention-seconds", type=float, default=180.0, help="every retention, seconds"
    )
    parser.add_argument(
        "--trim-seconds", type=float, default=None, help="stream trim interval (default R/10)"
    )
    parser.add_argument(
        "--tail-seconds", type=float, default=None, help="sampling after the last push"
    )
    parser.add_argument("--sample-seconds", type=float, default=10.0, help="sample interval")
    parser.add_argument(
        "--breakdown-every", type=int, default=3, help="key patterns every N samples"
    )
    args = parser.parse_args()
    if args.quick:
        args.articles, args.rate, args.retention_seconds = 2000, 20.0, 20.0
    run(args)


if __name__ == "__main__":
    main()
