"""The alerter's HTTP API, bearer-token protected (read scope: the `read` or `admin` token;
admin scope: the `admin` token only):

- read: `GET /stories` (filters, cursor pages), `GET /stories/{id}`, `GET /stories/stream`
  (server-sent events, one `story` event per story that changed), `GET /alerts` (history),
  `GET /alerts/topics`;
- read: `GET /alerts/stream?topic=NAME`: server-sent events, one `alert` event per alert of the
  topic (all topics without `topic`); the event id is the Redis stream entry id, so a
  client reconnecting with `Last-Event-ID` resumes right after the last event it got.
- admin: `PUT /alerts/topics/{name}`, `DELETE /alerts/topics/{name}`,
  `GET /alerts/subscriptions`, `PUT /alerts/subscriptions/{name}`,
  `DELETE /alerts/subscriptions/{name}` (webhooks; secrets are never returned).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import cast

import redis.asyncio as aioredis
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from contracts import TopicAlert, TopicConfig
from contracts.stories import AlertItem, AlertPage, StoryPage
from contracts.streams import ALERTS, topic_alerts_stream
from contracts.subscriptions import WebhookSubscription
from services.alerter.catalog import Catalog, CatalogError
from services.alerter.delivery import StreamResponse, ensure_webhook_group
from services.alerter.metrics import AlerterMetrics
from services.alerter.stories import StoryView
from services.alerter.views import (
    DEFAULT_PAGE_ITEMS,
    MAX_PAGE_ITEMS,
    QueryError,
    bounded_int,
    detail,
    parse_story_query,
    parse_time,
    preferred_languages,
    summary,
    topic_param,
)
from services.common.bus import DATA_FIELD
from services.common.clock import Clock
from services.common.http_api import ApiTokens, json_error, protected, read_model
from services.common.tasks import raise_if_cancelled

PREFIXES = ("/alerts", "/stories")
_ENTRY_ID = re.compile(r"^([0-9]{1,20})-([0-9]{1,20})$")
_MAX_ENTRY_PART = 2**64 - 1
"""Both parts of a Redis stream entry id are unsigned 64-bit integers."""
MAX_BODY_BYTES = 64 * 1024
"""Largest request body the API reads: a topic or a subscription is a few hundred bytes."""
SSE_READ_COUNT = 100


class LiveStreams:
    """The server-sent event streams open at once, at most `limit`: each holds a blocking
    Redis connection for as long as its client stays."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def response(self, events: AsyncIterator[bytes]) -> Response:
        """`events` as a stream, or a 503 while `limit` streams are open."""
        if self.open >= self.limit:
            return json_error(503, f"{self.limit} live streams are open, the most allowed")

        async def counted() -> AsyncIterator[bytes]:
            self.open += 1
            try:
                async for chunk in events:
                    yield chunk
            finally:
                self.open -= 1

        return StreamingResponse(
            counted(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def sse_event(entry_id: str, data: bytes, kind: bytes = b"alert") -> bytes:
    """One server-sent event; the JSON body holds no newline, so it is one `data:` line."""
    return b"id: " + entry_id.encode() + b"\nevent: " + kind + b"\ndata: " + data + b"\n\n"


def create_api(
    *,
    redis: aioredis.Redis,
    catalog: Catalog,
    metrics: AlerterMetrics,
    view: StoryView,
    clock: Clock,
    tokens: ApiTokens,
    heartbeat_seconds: float,
    max_live_streams: int = 100,
) -> Starlette:
    """The ASGI app serving every path under `/alerts` and `/stories`; at most
    `max_live_streams` server-sent event streams (both kinds) open at once."""

    live = LiveStreams(max_live_streams)

    read = protected(tokens, "read")
    admin = protected(tokens, "admin")

    def languages(request: Request) -> tuple[str, ...]:
        return preferred_languages(
            request.query_params.get("lang"), request.headers.get("accept-language")
        )

    async def list_stories(request: Request) -> Response:
        now = clock()
        try:
            query = parse_story_query(request.query_params, now)
        except QueryError as exc:
            return json_error(400, str(exc))
        listing = await view.page(query, now)
        wanted = languages(request)
        page = StoryPage(
            items=tuple(summary(record, wanted) for record in listing.records),
            next_cursor=listing.next_cursor,
        )
        return Response(page.model_dump_json(), media_type="application/json")

    async def get_story(request: Request) -> Response:
        found = await view.story(request.path_params["story_id"])
        if found is None:
            return json_error(404, "no such story (unknown, or past the retention)")
        record, articles = found
        body = detail(record, articles, languages(request)).model_dump_json()
        return Response(body, media_type="application/json")

    async def story_stream(request: Request) -> Response:
        last_id = request.headers.get("last-event-id") or request.query_params.get("after")
        if last_id is not None and not is_entry_id(last_id):
            return json_error(
                400, "Last-Event-ID must be a stream entry id such as 1700000000000-0"
            )
        start = last_id or await view.newest_change()
        return live.response(_story_events(view, start, languages(request), heartbeat_seconds))

    async def alert_history(request: Request) -> Response:
        params = request.query_params
        try:
            page = await alert_page(redis, params, clock())
        except QueryError as exc:
            return json_error(400, str(exc))
        return Response(page.model_dump_json(), media_type="application/json")

    async def stream(request: Request) -> Response:
        topic = request.query_params.get("topic")
        if topic is not None and topic not in {t.name for t in catalog.topics}:
            await catalog.refresh(force=True)
            if topic not in {t.name for t in catalog.topics}:
                return json_error(404, f"no topic {topic!r}")
        last_id = request.headers.get("last-event-id") or request.query_params.get("after")
        if last_id is not None and not is_entry_id(last_id):
            return json_error(
                400, "Last-Event-ID must be a stream entry id such as 1700000000000-0"
            )
        key = topic_alerts_stream(topic) if topic else ALERTS
        start = last_id or await _last_entry_id(redis, key)
        return live.response(_events(redis, key, start, metrics, clock, heartbeat_seconds))

    async def list_topics(request: Request) -> Response:
        await catalog.refresh(force=True)
        return JSONResponse(
            [
                {**t.model_dump(mode="json"), "read_only": catalog.is_configured_topic(t.name)}
                for t in catalog.topics
            ]
        )

    async def put_topic(request: Request) -> Response:
        topic = await read_model(request, TopicConfig, MAX_BODY_BYTES)
        if isinstance(topic, Response):
            return topic
        if topic.name != request.path_params["name"]:
            return json_error(400, "the body's name differs from the path's")
        try:
            await catalog.put_topic(topic)
        except CatalogError as exc:
            return json_error(409, str(exc))
        return JSONResponse(topic.model_dump(mode="json"))

    async def delete_topic(request: Request) -> Response:
        try:
            found = await catalog.delete_topic(request.path_params["name"])
        except CatalogError as exc:
            return json_error(409, str(exc))
        return Response(status_code=204 if found else 404)

    async def list_subscriptions(request: Request) -> Response:
        await catalog.refresh(force=True)
        return JSONResponse(
            [
                {
                    **sub.model_dump(mode="json", exclude={"secret"}),
                    "read_only": catalog.is_configured_subscription(sub.name),
                }
                for sub in catalog.subscriptions
            ]
        )

    async def put_subscription(request: Request) -> Response:
        sub = await read_model(request, WebhookSubscription, MAX_BODY_BYTES)
        if isinstance(sub, Response):
            return sub
        if sub.name != request.path_params["name"]:
            return json_error(400, "the body's name differs from the path's")
        try:
            await ensure_webhook_group(redis, sub.name)
            await catalog.put_subscription(sub)
        except CatalogError as exc:
            return json_error(409, str(exc))
        return JSONResponse(sub.model_dump(mode="json", exclude={"secret"}))

    async def delete_subscription(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            found = await catalog.delete_subscription(name)
        except CatalogError as exc:
            return json_error(409, str(exc))
        return Response(status_code=204 if found else 404)

    routes = [
        Route("/stories", read(list_stories), methods=["GET"]),
        Route("/stories/stream", read(story_stream), methods=["GET"]),
        Route("/stories/{story_id}", read(get_story), methods=["GET"]),
        Route("/alerts", read(alert_history), methods=["GET"]),
        Route("/alerts/stream", read(stream), methods=["GET"]),
        Route("/alerts/topics", read(list_topics), methods=["GET"]),
        Route("/alerts/topics/{name}", admin(put_topic), methods=["PUT"]),
        Route("/alerts/topics/{name}", admin(delete_topic), methods=["DELETE"]),
        Route("/alerts/subscriptions", admin(list_subscriptions), methods=["GET"]),
        Route("/alerts/subscriptions/{name}", admin(put_subscription), methods=["PUT"]),
        Route("/alerts/subscriptions/{name}", admin(delete_subscription), methods=["DELETE"]),
    ]
    return Starlette(routes=routes)


async def _events(
    redis: aioredis.Redis,
    key: str,
    start: str,
    metrics: AlerterMetrics,
    clock: Clock,
    heartbeat_seconds: float,
) -> AsyncIterator[bytes]:
    """Entries of `key` after `start`, as events, forever; a comment when idle."""
    last_id = start
    yield b": connected\n\n"
    while True:
        raise_if_cancelled()
        response = await redis.xread(
            {key: last_id}, count=SSE_READ_COUNT, block=int(heartbeat_seconds * 1000)
        )
        if not response:
            yield b": keep-alive\n\n"
            continue
        for _, entries in cast(StreamResponse, response):
            for raw_id, fields in entries:
                last_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                data = (fields or {}).get(DATA_FIELD, b"{}")
                yield sse_event(last_id, data)
                metrics.deliveries.labels("sse", "delivered").inc()
                try:
                    created = TopicAlert.model_validate_json(data).created_at
                except ValidationError:
                    continue
                metrics.delivery_seconds.labels("sse").observe(
                    max((clock() - created).total_seconds(), 0.0)
                )


async def _story_events(
    view: StoryView, start: str, languages: tuple[str, ...], heartbeat_seconds: float
) -> AsyncIterator[bytes]:
    """Each story that changed after entry `start`, as a `story` event carrying its summary,
    forever; a comment when idle."""
    last_id = start
    yield b": connected\n\n"
    while True:
        raise_if_cancelled()
        changes = await view.changes(last_id, int(heartbeat_seconds * 1000))
        if not changes:
            yield b": keep-alive\n\n"
            continue
        for last_id, story_id in changes:
            found = await view.story(story_id)
            if found is not None:
                body = summary(found[0], languages).model_dump_json().encode()
                yield sse_event(last_id, body, b"story")


async def alert_page(redis: aioredis.Redis, params: Mapping[str, str], now: datetime) -> AlertPage:
    """A page of `GET /alerts`: alerts of one topic (or all), newest first, within
    `since`..`until`, after `cursor` (the last entry id of the previous page)."""
    limit = bounded_int(params, "limit", DEFAULT_PAGE_ITEMS, MAX_PAGE_ITEMS)
    topic = topic_param(params)
    cursor = params.get("cursor")
    if cursor is not None and not is_entry_id(cursor):
        raise QueryError("cursor: pass back the next_cursor of a previous page")
    high = "+"
    if "until" in params:
        high = str(int(parse_time(params["until"], now, "until").timestamp() * 1000))
    if cursor is not None:
        high = "(" + cursor
    low = "-"
    if "since" in params:
        low = str(int(parse_time(params["since"], now, "since").timestamp() * 1000))
    key = topic_alerts_stream(topic) if topic else ALERTS
    entries = cast(
        list[tuple[bytes, dict[bytes, bytes]]],
        await redis.xrevrange(key, max=high, min=low, count=limit + 1),
    )
    items = []
    for raw_id, fields in entries[:limit]:
        try:
            alert = TopicAlert.model_validate_json(fields.get(DATA_FIELD, b""))
        except ValidationError:
            continue
        items.append(AlertItem(id=raw_id.decode(), alert=alert))
    next_cursor = entries[limit - 1][0].decode() if len(entries) > limit else None
    return AlertPage(items=tuple(items), next_cursor=next_cursor)


async def _last_entry_id(redis: aioredis.Redis, key: str) -> str:
    """The id of the stream's newest entry ("0-0" when empty): new clients get what
    follows it. Read now, not as `$` per read, so nothing between two reads is lost."""
    newest = await redis.xrevrange(key, count=1)
    if not newest:
        return "0-0"
    raw_id = newest[0][0]
    return raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)


def is_entry_id(value: str) -> bool:
    """Whether `value` is a Redis stream entry id ("<ms>-<seq>", each part within 64 bits)."""
    match = _ENTRY_ID.match(value)
    return match is not None and all(int(part) <= _MAX_ENTRY_PART for part in match.groups())
