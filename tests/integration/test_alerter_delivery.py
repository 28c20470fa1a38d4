"""Webhooks against real HTTP receivers on 127.0.0.1, and SSE with a real HTTP client:
retries, dead letters and their replay, alerters dying mid-delivery, malformed alerts. Webhook
subscribers run as the alerter runs them: subscriptions of the common stream consumer, started
on a live FastStream broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
import redis.asyncio as aioredis
from conftest import newsmon_dlq
from faststream.redis import RedisBroker
from harness import free_port, serving
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
    WebhookDelivery,
    WebhookSubscribers,
    ensure_webhook_group,
    webhook_dead_letter_stream,
    webhook_group,
    webhook_retry_stream,
)
from services.alerter.metrics import AlerterMetrics
from services.alerter.stories import StoryView
from services.common.bus import DATA_FIELD, publish
from services.common.clock import utc_now
from services.common.http_api import ApiTokens
from services.common.metrics import ConsumerMetrics
from services.common.subscriptions import LiveSubscriptions, Subscription

pytestmark = pytest.mark.integration

SECRET = "0123456789abcdef-secret"
OUTAGE_SECONDS = float(os.environ.get("NEWSMON_TEST_WEBHOOK_OUTAGE_SECONDS", "60"))
"""How long the receiver is down (seconds): a minute, as users see when an endpoint restarts."""
OUTAGE_RETRIES = RetryPolicy(max_attempts=60, base_seconds=0.2, max_seconds=3.0, timeout_seconds=5)
"""Retries spanning at least 85 s (each wait is at least half of min(3, 0.2 * 2^n) seconds)."""
LOCAL_RECEIVERS = ("127.0.0.1:*",)
"""The tests' receivers listen on loopback, which webhooks may reach only when allow-listed."""
FAST_RETRIES = RetryPolicy(max_attempts=12, base_seconds=0.05, max_seconds=0.5, timeout_seconds=5)


class Receiver:
    """Records what it is sent; `hold` makes it wait, `status` sets its answer."""

    def __init__(self, status: int = 200) -> None:
        self.received: list[tuple[bytes, str]] = []
        self.requests = 0
        """Requests that arrived, answered or still held."""
        self.status = status
        self.hold: asyncio.Event | None = None

    async def handle(self, request: Request) -> Response:
        self.requests += 1
        if self.hold is not None:
            await self.hold.wait()
        self.received.append((await request.body(), request.headers.get(SIGNATURE_HEADER, "")))
        return Response(status_code=self.status)

    def alert_ids(self) -> list[str]:
        return [TopicAlert.model_validate_json(body).alert_id for body, _ in self.received]


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


@dataclass(frozen=True, slots=True)
class Worker:
    """One alerter's delivery to one subscriber."""

    subscription: WebhookSubscription
    policy: RetryPolicy = FAST_RETRIES
    consumer: str = "test"
    reclaim_idle_seconds: float = 60.0
    allowed_private_hosts: tuple[str, ...] = LOCAL_RECEIVERS


def _worker(
    name: str,
    url: str,
    policy: RetryPolicy = FAST_RETRIES,
    *,
    consumer: str = "test",
    reclaim_idle_seconds: float = 60.0,
    allowed_private_hosts: tuple[str, ...] = LOCAL_RECEIVERS,
) -> Worker:
    return Worker(
        WebhookSubscription(name=name, url=url, secret=SECRET),
        policy,
        consumer,
        reclaim_idle_seconds,
        allowed_private_hosts,
    )


@pytest.fixture
async def broker(redis: aioredis.Redis, redis_url: str) -> AsyncIterator[RedisBroker]:
    """A running FastStream broker on the test's (emptied) Redis."""
    broker = RedisBroker(redis_url, logger=None)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


@contextlib.asynccontextmanager
async def running(
    broker: RedisBroker, redis: aioredis.Redis, *workers: Worker
) -> AsyncIterator[list[Sequence[Subscription]]]:
    """The workers' subscriptions, consumed until the block ends (as an alerter that stops:
    what they held stays pending); yields each worker's subscriptions."""
    lives: list[LiveSubscriptions] = []
    started: list[Sequence[Subscription]] = []
    try:
        for worker in workers:
            live = LiveSubscriptions(
                broker,
                redis,
                consumer_name=worker.consumer,
                reclaim_idle_seconds=worker.reclaim_idle_seconds,
                max_deliveries=5,
                polling_ms=100,
            )
            lives.append(live)
            delivery = WebhookDelivery(
                redis=redis,
                policy=worker.policy,
                metrics=AlerterMetrics(CollectorRegistry()),
                consumer_metrics=ConsumerMetrics(CollectorRegistry()),
                clock=utc_now,
                allowed_private_hosts=worker.allowed_private_hosts,
            )
            name = worker.subscription.name
            started.append(await live.start(name, delivery.subscriptions(worker.subscription)))
        yield started
    finally:
        async with asyncio.timeout(15):
            for live in lives:
                await live.stop_all()


async def _until(condition: object, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def _until_stream(redis: aioredis.Redis, stream: str, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not await redis.xlen(stream):
            await asyncio.sleep(0.02)


async def _pending(redis: aioredis.Redis, name: str, consumer: str | None = None) -> int:
    """Entries of `alerts` and the retry stream the subscriber's group (or one consumer of
    it) read and did not acknowledge."""
    total = 0
    for stream in (ALERTS, webhook_retry_stream(name)):
        rows = await redis.xpending_range(
            stream, webhook_group(name), min="-", max="+", count=100, consumername=consumer
        )
        total += len(rows)
    return total


async def test_webhook_body_is_signed_with_the_subscriber_secret(
    redis: aioredis.Redis, broker: RedisBroker
) -> None:
    receiver = Receiver()
    async with serving(_receiver_app(hook=receiver), free_port()) as base:
        await ensure_webhook_group(redis, "a")
        async with running(broker, redis, _worker("a", f"{base}/hook")):
            await publish(redis, ALERTS, _alert(1))
            await _until(lambda: receiver.received)
    body, header = receiver.received[0]
    now = int(datetime.now(UTC).timestamp())
    assert verify_signature(SECRET, header, body, now=now)
    assert TopicAlert.model_validate_json(body).alert_id == "al-1"


async def test_a_receiver_down_for_a_while_gets_every_alert_once_back(
    redis: aioredis.Redis,
    broker: RedisBroker,
) -> None:
    receiver = Receiver()
    port = free_port()
    await ensure_webhook_group(redis, "down")
    async with running(
        broker, redis, _worker("down", f"http://127.0.0.1:{port}/hook", OUTAGE_RETRIES)
    ):
        for number in range(5):
            await publish(redis, ALERTS, _alert(number))
        await asyncio.sleep(OUTAGE_SECONDS)
        async with serving(_receiver_app(hook=receiver), port):
            await _until(lambda: len(receiver.received) >= 5)
    assert receiver.alert_ids() == [f"al-{n}" for n in range(5)]
    assert await redis.xlen(webhook_dead_letter_stream("down")) == 0


async def test_a_digest_subscriber_gets_one_signed_message_listing_the_alerts(
    redis: aioredis.Redis,
    broker: RedisBroker,
) -> None:
    receiver = Receiver()
    async with serving(_receiver_app(hook=receiver), free_port()) as base:
        subscription = WebhookSubscription(
            name="daily", url=f"{base}/hook", secret=SECRET, digest_minutes=0.02
        )
        worker = Worker(subscription)
        await ensure_webhook_group(redis, "daily")
        async with running(broker, redis, worker):
            for number in range(3):
                await publish(redis, ALERTS, _alert(number))
            await _until(lambda: receiver.received)
            async with asyncio.timeout(30):  # all three acknowledged with that one message
                while await _pending(redis, "daily"):
                    await asyncio.sleep(0.02)
    ((body, header),) = receiver.received
    assert verify_signature(SECRET, header, body, now=int(datetime.now(UTC).timestamp()))
    digest = json.loads(body)
    assert digest["kind"] == "digest" and digest["subscriber"] == "daily"
    assert [alert["alert_id"] for alert in digest["alerts"]] == ["al-0", "al-1", "al-2"]


async def test_a_permanently_failing_receiver_ends_in_the_dead_letter_stream(
    redis: aioredis.Redis,
    broker: RedisBroker,
) -> None:
    receiver = Receiver(status=500)
    policy = RetryPolicy(max_attempts=3, base_seconds=0.01, max_seconds=0.05, timeout_seconds=5)
    dlq = webhook_dead_letter_stream("broken")
    async with serving(_receiver_app(hook=receiver), free_port()) as base:
        await ensure_webhook_group(redis, "broken")
        async with running(broker, redis, _worker("broken", f"{base}/hook", policy)):
            await publish(redis, ALERTS, _alert(7))
            await _until_stream(redis, dlq)
    assert len(receiver.received) == 3
    ((_, fields),) = await redis.xrange(dlq)
    letter = DeadLetter.model_validate_json(fields[DATA_FIELD])
    assert letter.reason == "webhook_failed" and "500" in letter.error
    assert TopicAlert.model_validate_json(letter.payload).alert_id == "al-7"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_webhook_to_an_internal_address_is_refused_and_parked_at_once(
    redis: aioredis.Redis, broker: RedisBroker, host: str
) -> None:
    receiver = Receiver()
    dlq = webhook_dead_letter_stream("internal")
    async with serving(_receiver_app(hook=receiver), free_port()) as base:
        url = base.replace("127.0.0.1", host) + "/admin"
        await ensure_webhook_group(redis, "internal")
        worker = _worker("internal", url, FAST_RETRIES, allowed_private_hosts=())
        async with running(broker, redis, worker):
            await publish(redis, ALERTS, _alert(3))
            await _until_stream(redis, dlq)
    assert receiver.received == []  # nothing was posted, not even once
    ((_, fields),) = await redis.xrange(dlq)
    letter = DeadLetter.model_validate_json(fields[DATA_FIELD])
    assert letter.reason == "webhook_failed" and "refused" in letter.error


async def test_what_a_killed_worker_was_delivering_is_delivered_by_another(
    redis: aioredis.Redis,
    broker: RedisBroker,
) -> None:
    receiver = Receiver()
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    await ensure_webhook_group(redis, "hook")
    async with running(broker, redis, _worker("hook", url, consumer="host-101")):  # receiver down
        await publish(redis, ALERTS, _alert(1))
        async with asyncio.timeout(30):
            while not await _pending(redis, "hook", "host-101"):
                await asyncio.sleep(0.02)
    # killed while retrying (unacknowledged); restarted under a new pid, so a new name
    async with (
        serving(_receiver_app(hook=receiver), port),
        running(broker, redis, _worker("hook", url, consumer="host-202", reclaim_idle_seconds=0.3)),
    ):
        await _until(lambda: receiver.received)
        async with asyncio.timeout(30):
            while await _pending(redis, "hook"):
                await asyncio.sleep(0.02)
    assert receiver.alert_ids() == ["al-1"]
    assert await redis.xlen(webhook_dead_letter_stream("hook")) == 0


async def test_an_alert_held_for_long_is_not_taken_over_by_a_second_worker(
    redis: aioredis.Redis, broker: RedisBroker
) -> None:
    receiver = Receiver()
    receiver.hold = asyncio.Event()
    idle = 0.2
    await ensure_webhook_group(redis, "held")
    async with serving(_receiver_app(hook=receiver), free_port()) as base:
        workers = [
            _worker("held", f"{base}/hook", consumer=name, reclaim_idle_seconds=idle)
            for name in ("alerter-1", "alerter-2")
        ]
        async with running(broker, redis, *workers) as subscriptions:
            await publish(redis, ALERTS, _alert(1))
            await _until(lambda: receiver.requests == 1)
            [entry] = await redis.xpending_range(ALERTS, webhook_group("held"), "-", "+", 10)
            holder = entry["consumer"].decode()
            [other] = [
                subs[0].in_flight
                for worker, subs in zip(workers, subscriptions, strict=True)
                if worker.consumer != holder
            ]
            # the receiver answers slowly, the POST goes on; meanwhile the other alerter looks
            # three times for entries idle for longer than `idle`, as this one would be
            takeover_from = time.monotonic() + idle
            await _until(lambda: time.monotonic() >= takeover_from)
            scans = other.reclaim_scans
            await _until(lambda: other.reclaim_scans >= scans + 3)
            [entry] = await redis.xpending_range(ALERTS, webhook_group("held"), "-", "+", 10)
            assert entry["consumer"].decode() == holder and entry["times_delivered"] == 1
            assert receiver.requests == 1
            receiver.hold.set()
            await _until(lambda: receiver.received)
            async with asyncio.timeout(30):  # acknowledged: nothing is left to take over
                while await _pending(redis, "held"):
                    await asyncio.sleep(0.02)
    assert receiver.alert_ids() == ["al-1"] and receiver.requests == 1


async def test_a_malformed_alert_is_parked_as_invalid_and_the_next_delivered(
    redis: aioredis.Redis,
    broker: RedisBroker,
) -> None:
    receiver = Receiver()
    dlq = webhook_dead_letter_stream("strict")
    async with serving(_receiver_app(hook=receiver), free_port()) as base:
        await ensure_webhook_group(redis, "strict")
        async with running(broker, redis, _worker("strict", f"{base}/hook")):
            await redis.xadd(ALERTS, {DATA_FIELD: b'{"alert_id": 42}'})
            await publish(redis, ALERTS, _alert(2))
            await _until(lambda: receiver.received)
            await _until_stream(redis, dlq)
    assert receiver.alert_ids() == ["al-2"]
    ((_, fields),) = await redis.xrange(dlq)
    letter = DeadLetter.model_validate_json(fields[DATA_FIELD])
    assert (letter.reason, letter.payload) == ("invalid_message", '{"alert_id": 42}')
    assert "alert_id" in letter.error
    assert await _pending(redis, "strict") == 0


async def test_replaying_a_webhook_dead_letter_redelivers_it_to_that_subscriber_only(
    redis: aioredis.Redis, broker: RedisBroker, redis_url: str
) -> None:
    broken, other = Receiver(status=500), Receiver()
    once = RetryPolicy(max_attempts=1, base_seconds=0.01, max_seconds=0.01, timeout_seconds=5)
    dlq = webhook_dead_letter_stream("broken")
    async with serving(_receiver_app(broken=broken, other=other), free_port()) as base:
        for name in ("broken", "other"):
            await ensure_webhook_group(redis, name)
        workers = (
            _worker("broken", f"{base}/broken", once),
            _worker("other", f"{base}/other", once),
        )
        async with running(broker, redis, *workers):
            await publish(redis, ALERTS, _alert(3))
            await _until_stream(redis, dlq)
            await _until(lambda: other.received)
            broken.status = 200  # the receiver is fixed
            replayed = await asyncio.to_thread(
                newsmon_dlq, redis_url, "replay", webhook_retry_stream("broken"), "--all"
            )
            assert replayed.returncode == 0, replayed.stderr
            assert "replayed 1" in replayed.stdout
            await _until(lambda: len(broken.received) == 2)
            async with asyncio.timeout(30):
                while await _pending(redis, "broken"):
                    await asyncio.sleep(0.02)
    assert broken.alert_ids() == ["al-3", "al-3"]  # refused once, then accepted
    assert other.alert_ids() == ["al-3"]
    assert await redis.xlen(dlq) == 0
    assert await redis.xlen(webhook_retry_stream("broken")) == 0


async def test_subscribers_added_changed_and_removed_while_running_are_followed(
    redis: aioredis.Redis, broker: RedisBroker
) -> None:
    """The alerter's path: the runtime follows the catalog's subscribers (API changes made on
    any replica), starting, restarting and stopping their subscriptions."""
    first, second = Receiver(), Receiver()
    catalog = Catalog(
        redis, NewsmonConfig(), key_prefix="test", lexicon=Lexicon(), lemmatize=lambda w, _: w
    )
    delivery = WebhookDelivery(
        redis=redis,
        policy=FAST_RETRIES,
        metrics=AlerterMetrics(CollectorRegistry()),
        consumer_metrics=ConsumerMetrics(CollectorRegistry()),
        clock=utc_now,
        allowed_private_hosts=LOCAL_RECEIVERS,
    )
    subscribers = WebhookSubscribers(
        redis=redis, catalog=catalog, delivery=delivery, refresh_seconds=0.05
    )
    live = LiveSubscriptions(
        broker, redis, consumer_name="alerter", reclaim_idle_seconds=60, max_deliveries=5
    )

    async def subscribe_then_alert(url: str, number: int, receiver: Receiver) -> None:
        subscription = WebhookSubscription(name="ops", url=url, secret=SECRET)
        await ensure_webhook_group(redis, "ops")  # as the API does
        await catalog.put_subscription(subscription)
        await _until(lambda: subscription in live.running())
        await publish(redis, ALERTS, _alert(number))
        await _until(lambda: receiver.received)

    async with serving(_receiver_app(first=first, second=second), free_port()) as base:
        follower = asyncio.create_task(live.follow(subscribers.dynamic()))
        try:
            await subscribe_then_alert(f"{base}/first", 1, first)
            await subscribe_then_alert(f"{base}/second", 2, second)  # the URL changed
            await catalog.delete_subscription("ops")
            await _until(lambda: not live.running())
            await publish(redis, ALERTS, _alert(3))
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
    # the alert published once the subscriber was removed went to no one (a read the stopped
    # subscriber had already sent to Redis may still have taken it: it stays pending, unsent)
    assert first.alert_ids() == ["al-1"] and second.alert_ids() == ["al-2"]


async def test_a_slow_receiver_does_not_delay_a_fast_one(
    redis: aioredis.Redis, broker: RedisBroker
) -> None:
    slow, fast = Receiver(), Receiver()
    slow.hold = asyncio.Event()
    async with serving(_receiver_app(slow=slow, fast=fast), free_port()) as base:
        for name in ("slow", "fast"):
            await ensure_webhook_group(redis, name)
        workers = (_worker("slow", f"{base}/slow"), _worker("fast", f"{base}/fast"))
        async with running(broker, redis, *workers):
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
        view=StoryView(redis, key_prefix="test", retention_seconds=3600),
        clock=utc_now,
        tokens=ApiTokens(admin=None, admin_setting="-", read="tok"),
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

    async with serving(api, free_port()) as base:
        auth = {"Authorization": "Bearer tok"}
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            assert (await client.get("/alerts/stream")).status_code == 401
            await read_events(client, auth, 2)
            await publish(redis, stream, _alert(5, "OpenAI"))
            await read_events(client, {**auth, "Last-Event-ID": received[-1][0]}, 6)
    assert [alert for _, alert in received] == [f"al-{n}" for n in range(6)]


async def test_live_streams_beyond_the_limit_get_503_until_one_closes(
    redis: aioredis.Redis,
) -> None:
    api = create_api(
        redis=redis,
        catalog=Catalog(
            redis,
            NewsmonConfig(),
            key_prefix="test",
            lexicon=Lexicon(),
            lemmatize=lambda word, lang: word,
        ),
        metrics=AlerterMetrics(CollectorRegistry()),
        view=StoryView(redis, key_prefix="test", retention_seconds=3600),
        clock=utc_now,
        tokens=ApiTokens(admin=None, admin_setting="-", read="tok"),
        heartbeat_seconds=0.2,
        max_live_streams=1,
    )
    auth = {"Authorization": "Bearer tok"}
    async with (
        serving(api, free_port()) as base,
        httpx.AsyncClient(base_url=base, timeout=10, headers=auth) as client,
    ):
        async with client.stream("GET", "/stories/stream") as first:
            assert first.status_code == 200
            lines = first.aiter_lines()  # kept: dropping it would close the stream
            assert await anext(lines) == ": connected"
            refused = await client.get("/alerts/stream")
            assert refused.status_code == 503 and "live streams" in refused.json()["error"]
        # once the first client has gone, a stream is served again
        for _ in range(100):
            async with client.stream("GET", "/alerts/stream") as again:
                if again.status_code == 200:
                    break
            await asyncio.sleep(0.05)
        assert again.status_code == 200
