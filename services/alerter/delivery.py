"""Webhook delivery: one worker per subscriber, each reading `alerts` through its own
consumer group, so a slow or dead endpoint only ever delays its own alerts.

A worker POSTs each alert (or, for a digest subscriber, one message listing the alerts of
the last N minutes) signed with the subscriber's secret, retries failures with exponential
backoff and jitter, and after the last attempt parks the alert in the subscriber's
dead-letter stream `alerts.webhook.<name>.dlq`. An entry that is not a `TopicAlert` is
parked there too (reason `invalid_message`). An entry is acknowledged only once it was
delivered or parked, so a restarted alerter resumes where it stopped.

Webhooks go out through the guarded network layer (`services.common.outbound`), as page
fetches do: an endpoint on a private, loopback or link-local address is refused unless its
host is in `allowed_private_hosts` (the alert is parked at once, no retry), redirects are not
followed and proxy variables are ignored.

Replay: the worker reads, with the same group, a second stream, `alerts.webhook.<name>`,
the subscriber's retry stream. It is the `stream` of the subscriber's dead letters, so
`newsmon dlq replay alerts.webhook.<name>` puts them back there and only this subscriber
gets them again (`alerts` would reach every subscriber). Nothing else writes to it, and an
entry is deleted from it once delivered or parked again.

Dead workers: entries another consumer of the group (a worker killed, restarted under a new
consumer name) left unacknowledged for the reclaim idle time are claimed and delivered, as
the pipeline's reclaimer does (`services.common.streams.claim_idle`); one delivered more
than `max_deliveries` times is parked (`too_many_deliveries`). A live worker keeps what it
holds (a digest being gathered, an alert being retried for minutes) marked as just read, so
another alerter's worker never takes it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import httpx
import redis.asyncio as aioredis
import structlog
from pydantic import ValidationError
from redis.exceptions import RedisError, ResponseError
from redis.typing import KeyT, StreamIdT

from contracts import TopicAlert
from contracts.streams import ALERTS, DEAD_LETTER_RETENTION_SECONDS, dead_letter_stream, hash_tag
from contracts.subscriptions import WebhookSubscription
from services.alerter.catalog import Catalog
from services.alerter.core import SIGNATURE_HEADER, is_retryable_status, sign
from services.alerter.metrics import AlerterMetrics
from services.common.backoff import backoff_seconds
from services.common.bus import DATA_FIELD, dead_letter, park
from services.common.clock import Clock
from services.common.consumer import validation_summary
from services.common.outage import REDIS_UNAVAILABLE, report_unavailable
from services.common.outbound import BlockedAddressError, guarded_client
from services.common.streams import ClaimedEntry, claim_idle
from services.common.tasks import raise_if_cancelled

WEBHOOK_RETRY_SPREAD = 0.5
"""Webhook retries wait half to one and a half times the doubling delay: many alerts failing
at once (a subscriber down) do not all retry at the same moment."""

log = structlog.get_logger("newsmon.alerter.delivery")

StreamResponse = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes] | None]]]]
"""What XREAD and XREADGROUP return: per stream, its entries (None for deleted ones)."""

READ_BLOCK_MS = 1000
READ_COUNT = 50
RECLAIM_IDLE_SECONDS = 60.0
"""Default of the idle time (seconds) after which another consumer's unacknowledged entries
are claimed; the alerter passes NEWSMON_RECLAIM_IDLE_SECONDS."""
MAX_DELIVERIES = 5
"""Default of NEWSMON_MAX_DELIVERIES: deliveries of one entry before it is parked."""


def webhook_group(name: str) -> str:
    """The consumer group of one webhook subscriber (on `alerts` and its retry stream)."""
    return f"webhook.{name}"


def webhook_retry_stream(name: str) -> str:
    """The subscriber's own stream, read by its worker only: where replayed dead letters go.
    `{alerts}.webhook.<name>`: in the hash slot of `alerts`, as the worker reads both at once."""
    return f"{hash_tag(ALERTS)}.webhook.{name}"


def webhook_dead_letter_stream(name: str) -> str:
    """Where a subscriber's undeliverable alerts are parked."""
    return dead_letter_stream(webhook_retry_stream(name))


async def ensure_webhook_group(redis: aioredis.Redis, name: str) -> None:
    """Create the subscriber's group at the end of `alerts` (it gets alerts from now on)
    and at the start of its retry stream (a replay made while no worker ran is not missed)."""
    for stream, start in ((ALERTS, "$"), (webhook_retry_stream(name), "0")):
        try:
            await redis.xgroup_create(stream, webhook_group(name), id=start, mkstream=True)
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
    stream: str
    entry_id: str
    body: bytes
    alert: TopicAlert | None
    problem: str
    """Why `body` is not a `TopicAlert` ("" when it is one)."""
    gone: bool = False
    """Deleted from the stream while pending: nothing to deliver."""


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
        allowed_private_hosts: Collection[str],
        reclaim_idle_seconds: float = RECLAIM_IDLE_SECONDS,
        max_deliveries: int = MAX_DELIVERIES,
        rng: random.Random | None = None,
        dead_letter_retention_seconds: float = DEAD_LETTER_RETENTION_SECONDS,
    ) -> None:
        self._redis = redis
        self._sub = subscription
        self._policy = policy
        self._metrics = metrics
        self._clock = clock
        self._consumer = consumer_name
        self._reclaim_idle_ms = int(reclaim_idle_seconds * 1000)
        self._reclaim_every = max(reclaim_idle_seconds / 4, 0.05)
        self._max_deliveries = max_deliveries
        self._rng = rng or random.Random()
        self._group = webhook_group(subscription.name)
        self._streams = (ALERTS, webhook_retry_stream(subscription.name))
        self._channel = "digest" if subscription.digest_minutes else "webhook"
        self._held: set[tuple[str, str]] = set()
        """(stream, entry id) read and not yet acknowledged."""
        self._allowed_private_hosts = allowed_private_hosts
        self._dead_letter_retention_seconds = dead_letter_retention_seconds

    async def run(self) -> None:
        async with (
            guarded_client(
                allowed_private_hosts=self._allowed_private_hosts,
                timeout=self._policy.timeout_seconds,
                follow_redirects=False,
            ) as http,
            asyncio.TaskGroup() as tasks,
        ):
            tasks.create_task(self._keep_held(), name=f"webhook-keep:{self._sub.name}")
            await self._deliver_forever(http)

    async def _deliver_forever(self, http: httpx.AsyncClient) -> None:
        while True:
            try:
                await self._deliver_backlog(http)
            except asyncio.CancelledError:
                raise
            except Exception:
                raise_if_cancelled()
                log.exception("webhook worker failed; restarting", subscriber=self._sub.name)
                await asyncio.sleep(1.0)

    async def _deliver_backlog(self, http: httpx.AsyncClient) -> None:
        """Deliver what this consumer read but never acknowledged (a restart), then new
        entries as they come, and what other consumers of the group left idle."""
        await ensure_webhook_group(self._redis, self._sub.name)
        self._held.clear()
        batch: list[_Entry] = []
        for stream in self._streams:
            cursor = "0"
            while entries := await self._read({stream: cursor}, block_ms=None):
                raise_if_cancelled()
                cursor = entries[-1].entry_id
                await self._take(entries, batch, http)
        next_reclaim = 0.0
        while True:
            raise_if_cancelled()
            if time.monotonic() >= next_reclaim:
                await self._reclaim(batch, http)
                next_reclaim = time.monotonic() + self._reclaim_every
            new: dict[KeyT, StreamIdT] = {stream: ">" for stream in self._streams}
            await self._take(await self._read(new, block_ms=self._block_ms(batch)), batch, http)
            if batch and self._digest_due(batch):
                await self._deliver(batch, http)
                batch.clear()

    async def _take(
        self, entries: Sequence[_Entry], batch: list[_Entry], http: httpx.AsyncClient
    ) -> None:
        """Deliver, gather into the digest, park or skip each entry read or claimed."""
        for entry in entries:
            if entry.gone:
                await self._ack([entry])
            elif entry.alert is None:
                await self._park([entry], "invalid_message", entry.problem)
                await self._ack([entry])
            elif not self._wants(entry.alert):
                await self._ack([entry])
                self._metrics.deliveries.labels(self._channel, "skipped").inc()
            elif self._sub.digest_minutes:
                batch.append(entry)
            else:
                await self._deliver([entry], http)

    async def _reclaim(self, batch: list[_Entry], http: httpx.AsyncClient) -> None:
        """Claim and handle entries other consumers of the group left unacknowledged."""
        for stream in self._streams:
            while claimed := await claim_idle(
                self._redis,
                stream,
                self._group,
                self._consumer,
                min_idle_ms=self._reclaim_idle_ms,
                count=READ_COUNT,
            ):
                for item in claimed:
                    if (stream, item.entry_id) not in self._held:
                        await self._take_claimed(stream, item, batch, http)

    async def _take_claimed(
        self, stream: str, item: ClaimedEntry, batch: list[_Entry], http: httpx.AsyncClient
    ) -> None:
        entry = _entry(stream, item.entry_id, {DATA_FIELD: item.body})
        self._held.add((stream, entry.entry_id))
        log.info(
            "claimed webhook entry a consumer left idle",
            subscriber=self._sub.name,
            stream=stream,
            entry_id=entry.entry_id,
            deliveries=item.deliveries,
        )
        if item.deliveries > self._max_deliveries:
            problem = f"delivered {item.deliveries} times without being acknowledged"
            await self._park([entry], "too_many_deliveries", problem)
            await self._ack([entry])
        else:
            await self._take([entry], batch, http)

    async def _keep_held(self) -> None:
        """Forever: mark the entries this worker holds as just read (XCLAIM JUSTID to itself:
        idle time reset, delivery count unchanged), so no consumer claims them as idle."""
        while True:
            await asyncio.sleep(self._reclaim_every)
            for stream in self._streams:
                ids: list[StreamIdT] = [i for held, i in self._held if held == stream]
                if not ids:
                    continue
                try:
                    await self._redis.xclaim(
                        stream, self._group, self._consumer, 0, ids, justid=True
                    )
                except REDIS_UNAVAILABLE as exc:
                    report_unavailable(exc, subscriber=self._sub.name)
                except RedisError as exc:
                    log.warning(
                        "cannot refresh held entries", subscriber=self._sub.name, error=str(exc)
                    )

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

    async def _read(self, streams: dict[KeyT, StreamIdT], *, block_ms: int | None) -> list[_Entry]:
        response = await self._redis.xreadgroup(
            self._group, self._consumer, streams, count=READ_COUNT, block=block_ms
        )
        entries = []
        for raw_stream, stream_entries in cast(StreamResponse, response or []):
            stream = _decode_id(raw_stream)
            for raw_id, fields in stream_entries:
                entry = _entry(stream, _decode_id(raw_id), fields)
                self._held.add((stream, entry.entry_id))
                entries.append(entry)
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
            await self._park(entries, "webhook_failed", error)
        await self._ack(entries)

    async def _park(self, entries: Sequence[_Entry], reason: str, error: str) -> None:
        """Put entries in the subscriber's dead-letter stream, from where a replay puts
        them on its retry stream."""
        for entry in entries:
            await park(
                self._redis,
                dead_letter(
                    stream=webhook_retry_stream(self._sub.name),
                    entry_id=entry.entry_id,
                    service="alerter",
                    reason=reason,
                    error=error,
                    payload=entry.body,
                    now=self._clock(),
                ),
                retention_seconds=self._dead_letter_retention_seconds,
            )
            self._metrics.deliveries.labels(self._channel, "dead_lettered").inc()
            self._metrics.webhook_dead_letters.inc()
        log.error(
            "webhook delivery dead-lettered",
            subscriber=self._sub.name,
            reason=reason,
            error=error,
            entries=len(entries),
        )

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
            except BlockedAddressError as exc:
                return f"refused: {exc}"  # the address will not change by retrying
            except httpx.HTTPError as exc:
                raise_if_cancelled()  # a timeout racing a cancel must not cost the retries
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
                        spread=WEBHOOK_RETRY_SPREAD,
                        draw=self._rng.uniform(-1, 1),
                    )
                )
        return error

    async def _ack(self, entries: Sequence[_Entry]) -> None:
        """Acknowledge entries; the retry stream's are also deleted (one reader only)."""
        for stream in self._streams:
            ids = [entry.entry_id for entry in entries if entry.stream == stream]
            if not ids:
                continue
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(stream, self._group, *ids)
                if stream != ALERTS:
                    pipe.xdel(stream, *ids)
                await pipe.execute()
            self._held.difference_update((stream, entry_id) for entry_id in ids)


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


def _entry(stream: str, entry_id: str, fields: dict[bytes, bytes] | None) -> _Entry:
    """An entry as read: no fields means it was deleted from the stream while pending."""
    if not fields:
        return _Entry(stream, entry_id, b"", None, "deleted", gone=True)
    body = fields.get(DATA_FIELD, b"")
    try:
        return _Entry(stream, entry_id, body, TopicAlert.model_validate_json(body), "")
    except ValidationError as exc:
        return _Entry(stream, entry_id, body, None, validation_summary(exc))


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
                raise_if_cancelled()
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
