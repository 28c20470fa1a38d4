"""The alerter's topic and subscription API, on a real Redis, as an operator uses it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis
from harness import serving
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from contracts import NewsmonConfig, TopicConfig
from contracts.streams import ALERTS
from contracts.subscriptions import WebhookSubscription
from services.alerter.api import create_api
from services.alerter.catalog import Catalog
from services.alerter.core import Lexicon
from services.alerter.delivery import webhook_group
from services.alerter.keys import alerter_key
from services.alerter.metrics import AlerterMetrics
from services.alerter.stories import StoryView
from services.common.clock import utc_now
from services.common.http_api import ApiTokens

pytestmark = pytest.mark.integration

TOKEN = "operator-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIGURED = NewsmonConfig(
    topics=(TopicConfig(name="OpenAI", keywords=("OpenAI",)),),
    subscriptions=(
        WebhookSubscription(name="ops", url="http://127.0.0.1:9/hook", secret="s" * 16),
    ),
)


def _catalog(redis: aioredis.Redis) -> Catalog:
    return Catalog(
        redis,
        CONFIGURED,
        key_prefix="test",
        lexicon=Lexicon(),
        lemmatize=lambda word, lang: word,
    )


READER = {"Authorization": "Bearer reader-token"}


def _app(redis: aioredis.Redis, admin: str | None, read: str | None) -> Starlette:
    return create_api(
        redis=redis,
        catalog=_catalog(redis),
        metrics=AlerterMetrics(CollectorRegistry()),
        view=StoryView(redis, key_prefix="test", retention_seconds=3600),
        clock=utc_now,
        tokens=ApiTokens(
            admin=admin,
            admin_setting="NEWSMON_ALERTER_API_TOKEN",
            read=read,
            read_setting="NEWSMON_ALERTER_READ_TOKEN",
        ),
        heartbeat_seconds=0.2,
    )


def _client(redis: aioredis.Redis, admin: str | None, read: str | None) -> httpx.AsyncClient:
    app = _app(redis, admin, read)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://alerter")


@pytest.fixture
async def api(redis: aioredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(redis, TOKEN, "reader-token") as client:
        yield client


async def test_the_api_refuses_requests_without_the_token(
    api: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    assert (await api.get("/alerts/topics")).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await api.get("/alerts/topics", headers=wrong)).status_code == 401
    async with _client(redis, None, None) as disabled:
        response = await disabled.get("/alerts/topics", headers=AUTH)
    assert response.status_code == 503 and "NEWSMON_ALERTER_API_TOKEN" in response.text


async def test_a_read_token_reads_and_changes_nothing(api: httpx.AsyncClient) -> None:
    for path in ("/alerts/topics", "/alerts", "/stories"):
        assert (await api.get(path, headers=READER)).status_code == 200, path
    body = {"name": "fusion", "keywords": ["nuclear fusion"]}
    refused = await api.put("/alerts/topics/fusion", json=body, headers=READER)
    assert refused.status_code == 403 and refused.json()["error"]
    # webhook addresses are the operator's: a reader does not see them
    assert (await api.get("/alerts/subscriptions", headers=READER)).status_code == 403
    names = {t["name"] for t in (await api.get("/alerts/topics", headers=READER)).json()}
    assert "fusion" not in names


async def test_a_topic_is_added_listed_and_removed(
    api: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    body = {"name": "fusion", "keywords": ["nuclear fusion"]}
    response = await api.put("/alerts/topics/fusion", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    listed = {t["name"]: t for t in (await api.get("/alerts/topics", headers=AUTH)).json()}
    assert listed["fusion"]["read_only"] is False and listed["OpenAI"]["read_only"] is True
    # another replica's catalog sees it too: the topic lives in Redis
    other = _catalog(redis)
    await other.refresh(force=True)
    assert "fusion" in {t.name for t in other.topics}
    assert (await api.delete("/alerts/topics/fusion", headers=AUTH)).status_code == 204
    assert (await api.delete("/alerts/topics/fusion", headers=AUTH)).status_code == 404
    names = {t["name"] for t in (await api.get("/alerts/topics", headers=AUTH)).json()}
    assert names == {"OpenAI"}


async def test_bad_topic_requests_say_what_is_wrong(api: httpx.AsyncClient) -> None:
    mismatch = await api.put(
        "/alerts/topics/a", json={"name": "b", "keywords": ["x"]}, headers=AUTH
    )
    assert mismatch.status_code == 400 and "name" in mismatch.json()["error"]
    invalid = await api.put("/alerts/topics/a", json={"name": "a", "nope": 1}, headers=AUTH)
    assert invalid.status_code == 422 and invalid.json()["error"]
    configured = await api.delete("/alerts/topics/OpenAI", headers=AUTH)
    assert configured.status_code == 409 and "config" in configured.json()["error"]


async def test_topics_an_attacker_or_a_careless_operator_sends_are_refused(
    api: httpx.AsyncClient,
) -> None:
    for name, status in (("evil\u202etxt", 422), ("a" * 10_000, 422), ("OPENAI", 409)):
        response = await api.put(
            f"/alerts/topics/{name}", json={"name": name, "keywords": ["x"]}, headers=AUTH
        )
        assert response.status_code == status, (name[:20], response.text)
        assert response.json()["error"]
    huge = {"name": "huge", "keywords": [f"word{n}" for n in range(100_000)]}
    too_large = await api.put("/alerts/topics/huge", json=huge, headers=AUTH)
    assert too_large.status_code == 413
    many = {"name": "many", "keywords": [f"word{n}" for n in range(101)]}
    too_many = await api.put("/alerts/topics/many", json=many, headers=AUTH)
    assert too_many.status_code == 422 and "at most 100" in too_many.json()["error"]
    names = {t["name"] for t in (await api.get("/alerts/topics", headers=AUTH)).json()}
    assert names == {"OpenAI"}


async def test_a_keyword_of_function_words_gets_a_clear_refusal_and_nothing_is_stored(
    redis: aioredis.Redis,
) -> None:
    refused: list[tuple[str, dict[str, object], str]] = [
        ("news", {"keywords": ["the"]}, "'the'"),
        ("nachrichten", {"keywords": ["Kanzler", "der die"]}, "'der die'"),
        ("actualite", {"any_of": ["de la"], "languages": ["fr"]}, "'de la'"),
    ]
    async with (
        serving(_app(redis, TOKEN, None)) as url,
        httpx.AsyncClient(base_url=url, headers=AUTH) as client,
    ):
        for name, terms, keyword in refused:
            response = await client.put(f"/alerts/topics/{name}", json={"name": name, **terms})
            error = response.json()["error"]
            assert response.status_code == 422 and keyword in error, error
            assert "only function words" in error
        us = await client.put("/alerts/topics/us", json={"name": "us", "keywords": ["US"]})
        assert us.status_code == 200, us.text
        names = {t["name"] for t in (await client.get("/alerts/topics")).json()}
    assert names == {"OpenAI", "us"}
    assert set(await redis.hkeys(alerter_key("test", "api", "topics"))) == {b"us"}


async def test_an_out_of_range_last_event_id_gets_a_clear_400(api: httpx.AsyncClient) -> None:
    response = await api.get("/alerts/stream", headers={**AUTH, "Last-Event-ID": "1" * 26 + "-0"})
    assert response.status_code == 400 and "Last-Event-ID" in response.json()["error"]


async def test_a_subscription_is_added_without_ever_returning_its_secret(
    api: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    body = {"name": "newsroom", "url": "https://example.org/hook", "secret": "x" * 32}
    response = await api.put("/alerts/subscriptions/newsroom", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    assert "secret" not in response.json()
    listed = (await api.get("/alerts/subscriptions", headers=AUTH)).json()
    assert {s["name"] for s in listed} == {"ops", "newsroom"}
    assert all("secret" not in s for s in listed)
    # its delivery group exists from now on, so no alert published after this is missed
    groups = {g["name"] for g in await redis.xinfo_groups(ALERTS)}
    assert webhook_group("newsroom").encode() in groups
    not_http = {**body, "url": "ftp://example.org/hook"}
    refused = await api.put("/alerts/subscriptions/newsroom", json=not_http, headers=AUTH)
    assert refused.status_code == 422 and "http" in refused.json()["error"]
    assert (await api.delete("/alerts/subscriptions/newsroom", headers=AUTH)).status_code == 204
    assert (await api.delete("/alerts/subscriptions/ops", headers=AUTH)).status_code == 409
