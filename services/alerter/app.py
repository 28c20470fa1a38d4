"""Alerter app factory: consumes `stories.events`, keeps the stories read model, publishes
`alerts` and `{alerts}.<topic>`, delivers to webhook subscribers, and serves the API and SSE
under `/alerts` and `/stories` and the web page under `/ui`."""

from __future__ import annotations

from contracts import StoryEvent
from contracts.streams import GROUP_ALERTER, STORIES_EVENTS
from services.alerter.api import PREFIXES, create_api
from services.alerter.catalog import Catalog
from services.alerter.core import UpdatePolicy
from services.alerter.delivery import RetryPolicy, WebhookDelivery, WebhookSubscribers
from services.alerter.handlers import AlertHandler
from services.alerter.keys import legacy_alerter_keys
from services.alerter.lexicon import load_lexicon, simplemma_lemma
from services.alerter.metrics import AlerterMetrics
from services.alerter.settings import AlerterSettings
from services.alerter.stories import StoryView
from services.alerter.web import PREFIX as WEB_PREFIX
from services.alerter.web import create_web
from services.common.http_api import ApiTokens
from services.common.runtime import Deps, Service
from services.common.subscriptions import Subscription

NAME = "alerter"


def create_service(deps: Deps, settings: AlerterSettings | None = None) -> Service:
    settings = settings or AlerterSettings()
    metrics = AlerterMetrics(deps.registry)
    catalog = Catalog(
        deps.redis,
        deps.config,
        key_prefix=settings.key_prefix,
        lexicon=load_lexicon(settings.lexicon_path),
        lemmatize=simplemma_lemma,
        refresh_seconds=settings.refresh_seconds,
        max_topics=settings.api_max_topics,
    )
    retry = RetryPolicy(
        max_attempts=settings.webhook_max_attempts,
        base_seconds=settings.webhook_backoff_base_seconds,
        max_seconds=settings.webhook_backoff_max_seconds,
        timeout_seconds=settings.webhook_timeout_seconds,
    )

    subscribers = WebhookSubscribers(
        redis=deps.redis,
        catalog=catalog,
        delivery=WebhookDelivery(
            redis=deps.redis,
            policy=retry,
            metrics=metrics,
            consumer_metrics=deps.consumer_metrics,
            clock=deps.clock,
            allowed_private_hosts=deps.config.allowed_private_hosts,
            dead_letter_retention_seconds=deps.settings.dead_letter_retention_seconds,
        ),
        refresh_seconds=settings.refresh_seconds,
    )
    view = StoryView(
        deps.redis,
        key_prefix=settings.key_prefix,
        retention_seconds=settings.stories_retention_seconds,
    )
    tokens = ApiTokens(
        admin=settings.api_token,
        admin_setting="NEWSMON_ALERTER_API_TOKEN",
        read=settings.read_token,
        read_setting="NEWSMON_ALERTER_READ_TOKEN",
    )
    handler = AlertHandler(
        redis=deps.redis,
        catalog=catalog,
        metrics=metrics,
        clock=deps.clock,
        key_prefix=settings.key_prefix,
        view=view,
        sent_ttl_seconds=settings.sent_ttl_seconds,
        policy=UpdatePolicy(
            min_new_sources=settings.update_min_new_sources,
            debounce_seconds=settings.update_debounce_seconds,
        ),
        before_first=subscribers.ensure_groups,
        alerts_retention_seconds=settings.alerts_retention_seconds,
    )
    api = create_api(
        redis=deps.redis,
        catalog=catalog,
        metrics=metrics,
        view=view,
        clock=deps.clock,
        tokens=tokens,
        heartbeat_seconds=settings.sse_heartbeat_seconds,
        max_live_streams=settings.max_live_streams,
    )
    web = create_web(redis=deps.redis, view=view, catalog=catalog, clock=deps.clock, tokens=tokens)
    consumer = deps.consumer(service=NAME, stream=STORIES_EVENTS, model=StoryEvent, handle=handler)
    return Service(
        name=NAME,
        subscriptions=[Subscription(GROUP_ALERTER, consumer)],
        dynamic=[subscribers.dynamic()],
        legacy_keys=legacy_alerter_keys(settings.key_prefix),
        routes=[*((prefix, api) for prefix in PREFIXES), (WEB_PREFIX, web), ("/", web)],
    )
