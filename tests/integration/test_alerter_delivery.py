"""Webhooks against real HTTP receivers on 127.0.0.1, and SSE with a real HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import traceback
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import cast

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contracts import DeadLetter, NewsmonConfig, TopicAlert, TopicConfig
from contracts.streams import ALERTS, topic_alerts_stream
from contracts.subscriptions import WebhookSubscription
from services.alerter.api import create_api
from services.alerter.catalog import Catalog
from services.alerter.core import SIGNATURE_HEADER, Lexicon, verify_signature
from services.alerter.delivery import (
    RetryPolicy,
    WebhookWorker,
    ensure_webhook_group,
    webhook_dead_letter_stream,
)
from services.alerter.metrics import AlerterMetrics
from services.common.bus import DATA_FIELD, publish
from services.common.clock import utc_now

pytestmark = pytest.mark.integration

SECRET = "0123456789abcdef-secret"
OUTAGE_SECONDS = float(os.environ.get("NEWSMON_TEST_WEBHOOK_OUTAGE_SECONDS", "1.5"))
"""How long the receiver is down; the issue's minute with NEWSMON_TEST_WEBHOOK_OUTAGE_SECONDS=60
(the retry policy below then needs a larger cap, as the defaults have)."""
FAST_RETRIES = RetryPolicy(max_attempts=12, base_seconds=0.05, max_seconds=0.5, timeout_seconds=5)


class Receiver:
    """Records what it is sent; `hold` makes it wait, `status` sets its answer."""

    def __init__(self, status: int = 200) -> None:
        self.received: list[tuple[bytes, str]] = []
        self.status = status
        self.hold: asyncio.Event | None = None

    async def handle(self, request: Request) -> Response:
        if self.hold is not None:
            await self.hold.wait()
        self.received.append((await request.body(), request.headers.get(SIGNATURE_HEADER, "")))
        return Response(status_code=self.status)

    def alert_ids(self) -> list[str]:
        return [TopicAlert.model_validate_json(body).alert_id for body, _ in self.received]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return cast(int, probe.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(app: Starlette, port: int) -> AsyncIterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def _receiver_app(**receivers: Receiver) -> Starlette:
    return Starlette(
        routes=[Route(f"/{n}", r.handle, methods=["POST"]) for n, r in receivers.items()]
    )


def _alert(number: int, topic: str = "t") -> TopicAlert:
    return TopicAlert(
        alert_id=f"al-{number}",
        topic=topic,
        story_id=f"s-{number}",
        title="t",
        languages=("fr",),
        sources=("x",),
        urls=("http://x/1",),
        matched=(),
        created_at=utc_now(),
    )


def _worker(
    redis: aioredis.Redis, name: str, url: str, policy: RetryPolicy = FAST_RETRIES
) -> WebhookWorker:
    return WebhookWorker(
        redis=redis,
        subscription=WebhookSubscription(name=name, url=url, secret=SECRET),
        policy=policy,
        metrics=AlerterMetrics(CollectorRegistry()),
        clock=utc_now,
        consumer_name="test",
    )


@contextlib.asynccontextmanager
async def running(*workers: WebhookWorker) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        yield
    finally:
        await _stop(tasks)


async def _stop(tasks: list[asyncio.Task[None]], grace_seconds: float = 10.0) -> None:
    """Cancel the workers; a worker still running after the grace period is reported (with
    its stack) and cancelled again, so the test's own subject is what decides its outcome."""
    for task in tasks:
        task.cancel()
    while True:
        _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
        if not pending:
            break
        for task in pending:
            stack = (
                "".join(traceback.format_stack(task.get_stack()[-1])) if task.get_stack() else ""
            )
            warnings.warn(
                f"webhook worker ignored cancellation; cancelling again\n{stack}", stacklevel=1
            )
            task.cancel()
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise cast(BaseException, task.exception())


async def _until(condition: object, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def _until_stream(redis: aioredis.Redis, stream: str, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not await redis.xlen(stream):
            await asyncio.sleep(0.02)


async def test_webhook_body_is_signed_with_the_subscriber_secret(redis: aioredis.Redis) -> None:
    receiver = Receiver()
    async with serving(_receiver_app(hook=receiver), _free_port()) as base:
        await ensure_webhook_group(redis, "a")
        async with running(_worker(redis, "a", f"{base}/hook")):
            await publish(redis, ALERTS, _alert(1))
            await _until(lambda: receiver.received)
    body, header = receiver.received[0]
    now = int(datetime.now(UTC).timestamp())
    assert verify_signature(SECRET, header, body, now=now)
    assert TopicAlert.model_validate_json(body).alert_id == "al-1"


async def test_a_receiver_down_for_a_while_gets_every_alert_once_back(
    redis: aioredis.Redis,
) -> None:
    receiver = Receiver()
    port = _free_port()
    await ensure_webhook_group(redis, "down")
    async with running(_worker(redis, "down", f"http://127.0.0.1:{port}/hook")):
        for number in range(5):
            await publish(redis, ALERTS, _alert(number))
        await asyncio.sleep(OUTAGE_SECONDS)
        async with serving(_receiver_app(hook=receiver), port):
            await _until(lambda: len(receiver.received) >= 5)
    assert receiver.alert_ids() == [f"al-{n}" for n in range(5)]
    assert await redis.xlen(webhook_dead_letter_stream("down")) == 0


async def test_a_permanently_failing_receiver_ends_in_the_dead_letter_stream(
    redis: aioredis.Redis,
) -> None:
    receiver = Receiver(status=500)
    policy = RetryPolicy(max_attempts=3, base_seconds=0.01, max_seconds=0.05, timeout_seconds=5)
    dlq = webhook_dead_letter_stream("broken")
    async with serving(_receiver_app(hook=receiver), _free_port()) as base:
        await ensure_webhook_group(redis, "broken")
        async with running(_worker(redis, "broken", f"{base}/hook", policy)):
            await publish(redis, ALERTS, _alert(7))
            await _until_stream(redis, dlq)
    assert len(receiver.received) == 3
    ((_, fields),) = await redis.xrange(dlq)
    letter = DeadLetter.model_validate_json(fields[DATA_FIELD])
    assert letter.reason == "webhook_failed" and "500" in letter.error
    assert TopicAlert.model_validate_json(letter.payload).alert_id == "al-7"


async def test_a_slow_receiver_does_not_delay_a_fast_one(redis: aioredis.Redis) -> None:
    slow, fast = Receiver(), Receiver()
    slow.hold = asyncio.Event()
    async with serving(_receiver_app(slow=slow, fast=fast), _free_port()) as base:
        for name in ("slow", "fast"):
            await ensure_webhook_group(redis, name)
        workers = (_worker(redis, "slow", f"{base}/slow"), _worker(redis, "fast", f"{base}/fast"))
        async with running(*workers):
            for number in range(10):
                await publish(redis, ALERTS, _alert(number))
            await _until(lambda: len(fast.received) == 10)
            assert slow.received == []
            slow.hold.set()
            await _until(lambda: len(slow.received) == 10)
    assert fast.alert_ids() == slow.alert_ids()


async def test_sse_reconnecting_with_last_event_id_loses_nothing(redis: aioredis.Redis) -> None:
    topic = TopicConfig(name="OpenAI", keywords=("OpenAI",))
    catalog = Catalog(
        redis,
        NewsmonConfig(topics=(topic,)),
        key_prefix="test",
        lexicon=Lexicon(),
        lemmatize=lambda word, lang: word,
    )
    api = create_api(
        redis=redis,
        catalog=catalog,
        metrics=AlerterMetrics(CollectorRegistry()),
        clock=utc_now,
        token="tok",
        heartbeat_seconds=0.2,
    )
    stream = topic_alerts_stream("OpenAI")
    received: list[tuple[str, str]] = []

    async def read_events(client: httpx.AsyncClient, headers: dict[str, str], count: int) -> None:
        async with client.stream(
            "GET", "/alerts/stream", params={"topic": "OpenAI"}, headers=headers
        ) as response:
            assert response.status_code == 200
            event_id = ""
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    received.append((event_id, TopicAlert.model_validate_json(line[6:]).alert_id))
                    if len(received) == count:
                        return
                elif line == ": connected" and count == 2 and not received:
                    for number in range(5):
                        await publish(redis, stream, _alert(number, "OpenAI"))

    async with serving(api, _free_port()) as base:
        auth = {"Authorization": "Bearer tok"}
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            assert (await client.get("/alerts/stream")).status_code == 401
            await read_events(client, auth, 2)
            await publish(redis, stream, _alert(5, "OpenAI"))
            await read_events(client, {**auth, "Last-Event-ID": received[-1][0]}, 6)
    assert [alert for _, alert in received] == [f"al-{n}" for n in range(6)]
