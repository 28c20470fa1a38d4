"""Webhook delivery, on the common stream consumer (`services.common.runtime`,
`services.common.consumer`): each subscriber is two subscriptions of its own consumer group,
one on `alerts`, one on its retry stream, so a slow or dead endpoint only ever delays its own
alerts, and the runtime starts and stops them as subscribers come and go.

Each alert is one signed POST per try (a digest subscriber's: one message listing the alerts
gathered over `digest_minutes`, a batch of the common consumer); the consumer retries failures
with exponential backoff and jitter and, after the last try, parks the alert in the
subscriber's dead-letter stream `{alerts}.webhook.<name>.dlq` (reason `webhook_failed`). An entry
that is not a `TopicAlert` is parked there too (`invalid_message`), and one delivered more than
`max_deliveries` times (`too_many_deliveries`). An entry is acknowledged only once it was
delivered or parked, so a restarted alerter resumes where it stopped; what a dead alerter held
is taken over after the reclaim idle time, and what a live one holds (an alert retried for
minutes, a digest being gathered) is kept from being taken over.

Webhooks go out through the guarded network layer (`services.common.outbound`), as page
fetches do: an endpoint on a private, loopback or link-local address is refused unless its
host is in `allowed_private_hosts` (the alert is parked at once, no retry), redirects are not
followed and proxy variables are ignored.

Replay: `{alerts}.webhook.<name>` is the `stream` of the subscriber's dead letters, so
`newsmon dlq replay {alerts}.webhook.<name>` puts them back there and only this subscriber
gets them again (`alerts` would reach every subscriber). Nothing else writes to it, and an
entry is deleted from it once delivered or parked again. Each subscription reads one stream:
no command spans two keys (Redis Cluster).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from contracts import TopicAlert
from contracts.streams import ALERTS, DEAD_LETTER_RETENTION_SECONDS, dead_letter_stream, hash_tag
from contracts.subscriptions import WebhookSubscription
from services.alerter.catalog import Catalog
from services.alerter.core import SIGNATURE_HEADER, is_retryable_status, sign
from services.alerter.metrics import AlerterMetrics
from services.common.clock import Clock
from services.common.consumer import Consumer
from services.common.errors import PermanentError, TransientError
from services.common.metrics import ConsumerMetrics
from services.common.outbound import BlockedAddressError, guarded_client
from services.common.subscriptions import DynamicSubscriptions, Subscription
from services.common.tasks import raise_if_cancelled

WEBHOOK_RETRY_SPREAD = 0.5
"""Webhook retries wait half to one and a half times the doubling delay: many alerts failing
at once (a subscriber down) do not all retry at the same moment."""
FAILED = "webhook_failed"
"""The dead-letter reason of an alert the endpoint did not accept."""

StreamResponse = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes] | None]]]]
"""What XREAD and XREADGROUP return: per stream, its entries (None for deleted ones)."""


def webhook_group(name: str) -> str:
    """The consumer group of one webhook subscriber (on `alerts` and its retry stream)."""
    return f"webhook.{name}"


def webhook_retry_stream(name: str) -> str:
    """The subscriber's own stream, read by its group only: where replayed dead letters go.
    `{alerts}.webhook.<name>`, named like the alerter's other streams (`keys.py`)."""
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
    """POSTs of one alert (or digest) before it is parked."""
    base_seconds: float
    """Wait before the first retry, seconds; doubles each retry."""
    max_seconds: float
    """Longest wait between two tries, seconds."""
    timeout_seconds: float
    """One POST, seconds."""


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """What every subscriber's delivery shares; `subscriptions` opens one subscriber's."""

    redis: aioredis.Redis
    policy: RetryPolicy
    metrics: AlerterMetrics
    consumer_metrics: ConsumerMetrics
    clock: Clock
    allowed_private_hosts: Collection[str]
    dead_letter_retention_seconds: float = DEAD_LETTER_RETENTION_SECONDS
    rng: random.Random = field(default_factory=random.Random)

    @contextlib.asynccontextmanager
    async def subscriptions(
        self, subscription: WebhookSubscription
    ) -> AsyncIterator[Sequence[Subscription]]:
        """The subscriber's subscriptions on `alerts` and on its retry stream, with an HTTP
        client of their own for as long as they run."""
        async with guarded_client(
            allowed_private_hosts=self.allowed_private_hosts,
            timeout=self.policy.timeout_seconds,
            follow_redirects=False,
        ) as http:
            sender = _Sender(subscription, http, self.metrics, self.clock)
            digest = subscription.digest_minutes
            yield tuple(
                Subscription(
                    group=webhook_group(subscription.name),
                    consumer=self._consumer(stream, sender),
                    max_in_flight=None if digest else 1,
                    batch_seconds=digest * 60 if digest else None,
                    delete_acked=stream != ALERTS,
                )
                for stream in (ALERTS, webhook_retry_stream(subscription.name))
            )

    def _consumer(self, stream: str, sender: _Sender) -> Consumer[TopicAlert]:
        channel = sender.channel

        def dead_lettered(reason: str) -> None:
            self.metrics.deliveries.labels(channel, "dead_lettered").inc()
            self.metrics.webhook_dead_letters.inc()

        return Consumer(
            service="alerter",
            stream=stream,
            model=TopicAlert,
            handle=sender.send,
            handle_batch=sender.send_many,
            redis=self.redis,
            metrics=self.consumer_metrics,
            clock=self.clock,
            attempts=self.policy.max_attempts,
            retry_base_seconds=self.policy.base_seconds,
            retry_max_seconds=self.policy.max_seconds,
            retry_spread=WEBHOOK_RETRY_SPREAD,
            rng=self.rng,
            exhausted_reason=FAILED,
            replay_stream=webhook_retry_stream(sender.subscription.name),
            dead_letter_retention_seconds=self.dead_letter_retention_seconds,
            on_retry=self.metrics.webhook_retries.inc,
            on_dead_letter=dead_lettered,
        )


@dataclass(frozen=True, slots=True)
class _Sender:
    """One try at delivering to one subscriber: returns once the endpoint accepted, raises
    `TransientError` when a retry may pass, `PermanentError` when none will."""

    subscription: WebhookSubscription
    http: httpx.AsyncClient
    metrics: AlerterMetrics
    clock: Clock

    @property
    def channel(self) -> str:
        return "digest" if self.subscription.digest_minutes else "webhook"

    async def send(self, alert: TopicAlert) -> None:
        """POST one alert, unless the subscriber does not follow its topic."""
        await self.send_many([alert])

    async def send_many(self, alerts: Sequence[TopicAlert]) -> None:
        """POST the alerts the subscriber follows: one alert as itself, or, for a digest
        subscriber, one message listing them."""
        wanted = [alert for alert in alerts if self._wants(alert)]
        self.metrics.deliveries.labels(self.channel, "skipped").inc(len(alerts) - len(wanted))
        if not wanted:
            return
        if self.subscription.digest_minutes:
            body = digest_body(self.subscription.name, wanted, self.clock())
            delivery_id = "dg-" + _digest_id(wanted)
        else:
            [alert] = wanted
            body, delivery_id = alert.model_dump_json().encode(), alert.alert_id
        await self._post(body, delivery_id)
        now = self.clock()
        for alert in wanted:
            self.metrics.deliveries.labels(self.channel, "delivered").inc()
            self.metrics.delivery_seconds.labels(self.channel).observe(
                max((now - alert.created_at).total_seconds(), 0.0)
            )

    def _wants(self, alert: TopicAlert) -> bool:
        return not self.subscription.topics or alert.topic in self.subscription.topics

    async def _post(self, body: bytes, delivery_id: str) -> None:
        timestamp = int(self.clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.subscription.secret, timestamp, body),
            "X-Newsmon-Delivery": delivery_id,
        }
        try:
            response = await self.http.post(self.subscription.url, content=body, headers=headers)
        except BlockedAddressError as exc:
            raise PermanentError(FAILED, f"refused: {exc}") from exc  # retrying cannot help
        except httpx.HTTPError as exc:
            raise_if_cancelled()  # a timeout racing a cancel must not cost a try
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return
        error = f"HTTP {response.status_code}"
        if is_retryable_status(response.status_code):
            raise TransientError(error)
        raise PermanentError(FAILED, error)


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


def _digest_id(alerts: Sequence[TopicAlert]) -> str:
    """16 hex digits naming the set of alerts a digest lists (the same on every try)."""
    return hashlib.sha256(" ".join(a.alert_id for a in alerts).encode()).hexdigest()[:16]


class WebhookSubscribers:
    """The webhook subscribers (config and API) as subscriptions for the runtime to run."""

    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        catalog: Catalog,
        delivery: WebhookDelivery,
        refresh_seconds: float,
    ) -> None:
        self._redis = redis
        self._catalog = catalog
        self._delivery = delivery
        self._refresh_seconds = refresh_seconds
        self._groups_ready = False

    async def ensure_groups(self) -> None:
        """Create every configured subscriber's group before the first alert is sent
        (idempotent; the API creates the group of a subscriber it adds)."""
        if self._groups_ready:
            return
        for subscription in self._catalog.subscriptions:
            await ensure_webhook_group(self._redis, subscription.name)
        self._groups_ready = True

    async def wanted(self) -> tuple[WebhookSubscription, ...]:
        """The subscribers now."""
        await self._catalog.refresh()
        await self.ensure_groups()
        return self._catalog.subscriptions

    def dynamic(self) -> DynamicSubscriptions[WebhookSubscription]:
        return DynamicSubscriptions(
            wanted=self.wanted,
            open=self._delivery.subscriptions,
            refresh_seconds=self._refresh_seconds,
        )
