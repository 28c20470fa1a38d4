"""Webhook delivery: one worker per subscriber, each reading `alerts` through its own
consumer group, so a slow or dead endpoint only ever delays its own alerts.

A worker POSTs each alert (or, for a digest subscriber, one message listing the alerts of
the last N minutes) signed with the subscriber's secret, retries failures with exponential
backoff and jitter, and after the last attempt parks the alert in the subscriber's
dead-letter stream `alerts.webhook.<name>.dlq`. An entry is acknowledged only once it was
delivered or parked, so a restarted alerter resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import httpx
import redis.asyncio as aioredis
import structlog
from pydantic import ValidationError
from redis.exceptions import ResponseError

from contracts import TopicAlert
from contracts.streams import ALERTS, dead_letter_stream
from contracts.subscriptions import WebhookSubscription
from services.alerter.catalog import Catalog
from services.alerter.core import SIGNATURE_HEADER, backoff_seconds, is_retryable_status, sign
from services.alerter.metrics import AlerterMetrics
from services.common.bus import DATA_FIELD, dead_letter, park
from services.common.clock import Clock

log = structlog.get_logger("newsmon.alerter.delivery")

StreamResponse = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes] | None]]]]
"""What XREAD and XREADGROUP return: per stream, its entries (None for deleted ones)."""

READ_BLOCK_MS = 1000
READ_COUNT = 50


def raise_if_cancelled() -> None:
    """Honour a cancellation a library swallowed: redis-py can absorb a CancelledError that
    lands during a blocking XREAD and go on reading, which would keep a stopped loop alive."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def webhook_group(name: str) -> str:
    """The consumer group on `alerts` of one webhook subscriber."""
    return f"webhook.{name}"


def webhook_dead_letter_stream(name: str) -> str:
    """Where a subscriber's undeliverable alerts are parked."""
    return dead_letter_stream(f"{ALERTS}.webhook.{name}")


async def ensure_webhook_group(redis: aioredis.Redis, name: str) -> None:
    """Create the subscriber's group at the end of `alerts`: it gets alerts from now on."""
    try:
        await redis.xgroup_create(ALERTS, webhook_group(name), id="$", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    max_seconds: float
    timeout_seconds: float


@dataclass(frozen=True, slots=True)
class _Entry:
    entry_id: str
    body: bytes
    alert: TopicAlert | None


class WebhookWorker:
    """Delivers one subscriber's alerts, in order, until cancelled."""

    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        subscription: WebhookSubscription,
        policy: RetryPolicy,
        metrics: AlerterMetrics,
        clock: Clock,
        consumer_name: str,
        rng: random.Random | None = None,
    ) -> None:
        self._redis = redis
        self._sub = subscription
        self._policy = policy
        self._metrics = metrics
        self._clock = clock
        self._consumer = consumer_name
        self._rng = rng or random.Random()
        self._group = webhook_group(subscription.name)
        self._channel = "digest" if subscription.digest_minutes else "webhook"

    async def run(self) -> None:
        await ensure_webhook_group(self._redis, self._sub.name)
        async with httpx.AsyncClient(timeout=self._policy.timeout_seconds) as http:
            while True:
                try:
                    await self._deliver_backlog(http)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("webhook worker failed; restarting", subscriber=self._sub.name)
                    await asyncio.sleep(1.0)

    async def _deliver_backlog(self, http: httpx.AsyncClient) -> None:
        """Deliver what this consumer read but never acknowledged (a restart), then new
        entries as they come."""
        batch: list[_Entry] = []
        cursor: str | None = "0"
        while True:
            raise_if_cancelled()
            if cursor is not None:
                entries = await self._read(cursor, block_ms=None)
                cursor = entries[-1].entry_id if entries else None
            else:
                entries = await self._read(">", block_ms=self._block_ms(batch))
            for entry in entries:
                if entry.alert is None or not self._wants(entry.alert):
                    await self._ack([entry])
                    self._metrics.deliveries.labels(self._channel, "skipped").inc()
                elif self._sub.digest_minutes:
                    batch.append(entry)
                else:
                    await self._deliver([entry], http)
            if batch and cursor is None and self._digest_due(batch):
                await self._deliver(batch, http)
                batch = []

    def _wants(self, alert: TopicAlert) -> bool:
        return not self._sub.topics or alert.topic in self._sub.topics

    def _block_ms(self, batch: Sequence[_Entry]) -> int:
        if not batch or not self._sub.digest_minutes:
            return READ_BLOCK_MS
        due = _entry_ms(batch[0].entry_id) + self._sub.digest_minutes * 60_000
        now_ms = self._clock().timestamp() * 1000
        return int(min(READ_BLOCK_MS, max(due - now_ms, 1)))

    def _digest_due(self, batch: Sequence[_Entry]) -> bool:
        assert self._sub.digest_minutes is not None
        age_ms = self._clock().timestamp() * 1000 - _entry_ms(batch[0].entry_id)
        return age_ms >= self._sub.digest_minutes * 60_000

    async def _read(self, start: str, *, block_ms: int | None) -> list[_Entry]:
        response = await self._redis.xreadgroup(
            self._group, self._consumer, {ALERTS: start}, count=READ_COUNT, block=block_ms
        )
        entries = []
        for _, stream_entries in cast(StreamResponse, response or []):
            for raw_id, fields in stream_entries:
                body = (fields or {}).get(DATA_FIELD, b"")
                entries.append(_Entry(_decode_id(raw_id), body, _parse(body)))
        return entries

    async def _deliver(self, entries: Sequence[_Entry], http: httpx.AsyncClient) -> None:
        alerts = [entry.alert for entry in entries if entry.alert is not None]
        if self._sub.digest_minutes:
            body = digest_body(self._sub.name, alerts, self._clock())
        else:
            body = entries[0].body
        error = await self._post(body, entries[-1].entry_id, http)
        if error is None:
            now = self._clock()
            for alert in alerts:
                self._metrics.deliveries.labels(self._channel, "delivered").inc()
                self._metrics.delivery_seconds.labels(self._channel).observe(
                    max((now - alert.created_at).total_seconds(), 0.0)
                )
        else:
            for entry in entries:
                await park(
                    self._redis,
                    dead_letter(
                        stream=f"{ALERTS}.webhook.{self._sub.name}",
                        entry_id=entry.entry_id,
                        service="alerter",
                        reason="webhook_failed",
                        error=error,
                        payload=entry.body,
                        now=self._clock(),
                    ),
                )
                self._metrics.deliveries.labels(self._channel, "dead_lettered").inc()
                self._metrics.webhook_dead_letters.inc()
            log.error("webhook delivery dead-lettered", subscriber=self._sub.name, error=error)
        await self._ack(entries)

    async def _post(self, body: bytes, delivery_id: str, http: httpx.AsyncClient) -> str | None:
        """POST until accepted; None on success, else the last error."""
        error = "no attempt"
        for attempt in range(1, self._policy.max_attempts + 1):
            timestamp = int(self._clock().timestamp())
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(self._sub.secret, timestamp, body),
                "X-Newsmon-Delivery": delivery_id,
            }
            try:
                response = await http.post(self._sub.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return None
                error = f"HTTP {response.status_code}"
                if not is_retryable_status(response.status_code):
                    return error
            if attempt < self._policy.max_attempts:
                self._metrics.webhook_retries.inc()
                await asyncio.sleep(
                    backoff_seconds(
                        attempt,
                        base=self._policy.base_seconds,
                        cap=self._policy.max_seconds,
                        jitter=self._rng.random(),
                    )
                )
        return error

    async def _ack(self, entries: Sequence[_Entry]) -> None:
        await self._redis.xack(ALERTS, self._group, *(entry.entry_id for entry in entries))


def digest_body(subscriber: str, alerts: Sequence[TopicAlert], now: datetime) -> bytes:
    """One message listing the alerted stories: {"kind": "digest", "alerts": [...]}."""
    return json.dumps(
        {
            "kind": "digest",
            "subscriber": subscriber,
            "created_at": now.isoformat(),
            "alerts": [alert.model_dump(mode="json") for alert in alerts],
        }
    ).encode()


def _parse(body: bytes) -> TopicAlert | None:
    try:
        return TopicAlert.model_validate_json(body)
    except ValidationError:
        return None


def _decode_id(raw_id: bytes | str) -> str:
    return raw_id.decode() if isinstance(raw_id, bytes) else raw_id


def _entry_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


class DeliverySupervisor:
    """Keeps one running worker per current subscriber (config and API)."""

    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        catalog: Catalog,
        make_worker: Callable[[WebhookSubscription], WebhookWorker],
        refresh_seconds: float,
    ) -> None:
        self._redis = redis
        self._catalog = catalog
        self._make_worker = make_worker
        self._refresh_seconds = refresh_seconds
        self._workers: dict[str, tuple[WebhookSubscription, asyncio.Task[None]]] = {}
        self._groups_ready = False

    async def ensure_groups(self) -> None:
        """Create every subscriber's group before the first alert is sent (idempotent)."""
        if self._groups_ready:
            return
        for subscription in self._catalog.subscriptions:
            await ensure_webhook_group(self._redis, subscription.name)
        self._groups_ready = True

    async def run(self) -> None:
        try:
            while True:
                await self._catalog.refresh()
                await self.ensure_groups()
                self._reconcile(self._catalog.subscriptions)
                await asyncio.sleep(self._refresh_seconds)
        finally:
            for _, task in self._workers.values():
                task.cancel()
            for _, task in self._workers.values():
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._workers.clear()

    def _reconcile(self, subscriptions: Sequence[WebhookSubscription]) -> None:
        wanted = {sub.name: sub for sub in subscriptions}
        for name, (sub, task) in list(self._workers.items()):
            if wanted.get(name) != sub or task.done():
                task.cancel()
                del self._workers[name]
        for name, sub in wanted.items():
            if name not in self._workers:
                task = asyncio.create_task(self._make_worker(sub).run(), name=f"webhook:{name}")
                self._workers[name] = (sub, task)
