"""Topics and webhook subscribers: the YAML config's, plus those added through the API.

API additions live in Redis (two hashes and a version counter), so every alerter replica
sees them; each replica re-reads them when the version changed, at most once per
`refresh_seconds`. Config entries are read-only: the API cannot change or shadow them.
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from contracts import NewsmonConfig, TopicConfig
from contracts.config import first_stream_clash
from contracts.subscriptions import WebhookSubscription
from contracts.topics import STORED
from services.alerter.core import CompiledTopics, Lemmatize, Lexicon
from services.alerter.keys import alerter_key


class CatalogError(ValueError):
    """A change the catalog refuses (read-only config entry, too many topics)."""


class Catalog:
    def __init__(
        self,
        redis: aioredis.Redis,
        config: NewsmonConfig,
        *,
        key_prefix: str,
        lexicon: Lexicon,
        lemmatize: Lemmatize,
        refresh_seconds: float = 1.0,
        max_topics: int = 500,
    ) -> None:
        self._redis = redis
        self._config = config
        self._lexicon = lexicon
        self._lemmatize = lemmatize
        self._refresh_seconds = refresh_seconds
        self._max_topics = max_topics
        self._topics_key = alerter_key(key_prefix, "api", "topics")
        self._subscriptions_key = alerter_key(key_prefix, "api", "subscriptions")
        self._version_key = alerter_key(key_prefix, "api", "version")
        self._version: bytes | str | None = None
        self._checked_at = float("-inf")
        self._api_topics: tuple[TopicConfig, ...] = ()
        self._api_subscriptions: tuple[WebhookSubscription, ...] = ()
        self.compiled = self._compile()

    @property
    def topics(self) -> tuple[TopicConfig, ...]:
        return (*self._config.topics, *self._api_topics)

    @property
    def subscriptions(self) -> tuple[WebhookSubscription, ...]:
        return (*self._config.subscriptions, *self._api_subscriptions)

    def is_configured_topic(self, name: str) -> bool:
        return any(topic.name == name for topic in self._config.topics)

    def is_configured_subscription(self, name: str) -> bool:
        return any(sub.name == name for sub in self._config.subscriptions)

    async def refresh(self, *, force: bool = False) -> None:
        """Re-read the API's topics and subscribers if they changed."""
        now = time.monotonic()
        if not force and now - self._checked_at < self._refresh_seconds:
            return
        self._checked_at = now
        version = await self._redis.get(self._version_key)
        if version == self._version and not force:
            return
        topics = await self._redis.hgetall(self._topics_key)
        subscriptions = await self._redis.hgetall(self._subscriptions_key)
        self._api_topics = tuple(
            TopicConfig.model_validate_json(raw, context=STORED)
            for _, raw in sorted(topics.items())
        )
        self._api_subscriptions = tuple(
            WebhookSubscription.model_validate_json(raw) for _, raw in sorted(subscriptions.items())
        )
        self._version = version
        # compiled in a thread: hundreds of topics take a while, and the event loop keeps
        # serving (health checks, SSE, consumers) meanwhile
        self.compiled = await asyncio.to_thread(self._compile)

    async def put_topic(self, topic: TopicConfig) -> None:
        if self.is_configured_topic(topic.name):
            raise CatalogError(f"topic {topic.name!r} is set in the config file")
        await self.refresh(force=True)
        known = {t.name for t in self._api_topics}
        if topic.name not in known and len(known) >= self._max_topics:
            raise CatalogError(f"the API holds at most {self._max_topics} topics")
        clash = first_stream_clash(
            [*(t.name for t in self.topics if t.name != topic.name), topic.name]
        )
        if clash:
            raise CatalogError(clash)
        await self._change(self._topics_key, topic.name, topic.model_dump_json())

    async def delete_topic(self, name: str) -> bool:
        if self.is_configured_topic(name):
            raise CatalogError(f"topic {name!r} is set in the config file")
        return await self._change(self._topics_key, name, None)

    async def put_subscription(self, subscription: WebhookSubscription) -> None:
        if self.is_configured_subscription(subscription.name):
            raise CatalogError(f"subscriber {subscription.name!r} is set in the config file")
        await self._change(
            self._subscriptions_key, subscription.name, subscription.model_dump_json()
        )

    async def delete_subscription(self, name: str) -> bool:
        if self.is_configured_subscription(name):
            raise CatalogError(f"subscriber {name!r} is set in the config file")
        return await self._change(self._subscriptions_key, name, None)

    async def _change(self, key: str, name: str, value: str | None) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            if value is None:
                pipe.hdel(key, name)
            else:
                pipe.hset(key, name, value)
            pipe.incr(self._version_key)
            changed, _ = await pipe.execute()
        await self.refresh(force=True)
        return bool(changed) or value is not None

    def _compile(self) -> CompiledTopics:
        return CompiledTopics(self.topics, lexicon=self._lexicon, lemmatize=self._lemmatize)
