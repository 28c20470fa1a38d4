"""newsmon on a Redis Cluster of three masters, started here from `redis-server`: the four
services as separate processes, the detector twice, each service killed with SIGKILL once
in the middle of the run and started again; then every article is in exactly one story, the
seeds make their three stories, each (story, topic) was alerted once, and a webhook
subscriber got every alert.

The run is 800 synthetic articles (200 stories x 4 syndicated copies, one story in four
about the topic) plus the five seed pages; NEWSMON_CLUSTER_STORIES changes the number.
"""

from __future__ import annotations

import os
from collections import defaultdict
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from harness import (
    LocalHttpServer,
    LocalRedisCluster,
    ServiceProcess,
    corpus_config,
    drained,
    placed_articles,
    send,
    stream_alerts,
    wait_for,
)
from redis.cluster import RedisCluster

from contracts.streams import (
    CONSUMED_STREAMS,
    STORIES_EVENTS,
    dead_letter_stream,
    topic_alerts_stream,
)
from services.samples.corpus import CorpusSite, synthetic_corpus
from services.samples.server import SampleSite

pytestmark = pytest.mark.e2e

STORIES = int(os.environ.get("NEWSMON_CLUSTER_STORIES", "200"))
COPIES = 4
SEED_STORIES = 3
SEED_PAGES = 5


class Hook(LocalHttpServer):
    """A webhook subscriber: notes each delivery's id (the alert's) and answers 204."""

    def __init__(self) -> None:
        self.deliveries: list[str] = []
        super().__init__()

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        self.deliveries.append(handler.headers.get("X-Newsmon-Delivery", ""))
        send(handler, 204)


def _client(cluster: LocalRedisCluster) -> RedisCluster:
    return RedisCluster(host="127.0.0.1", port=cluster.ports[0])


@pytest.mark.timeout(900)
def test_services_on_a_cluster_split_no_story_and_alert_once(
    cluster: LocalRedisCluster, tmp_path: Path
) -> None:
    corpus = synthetic_corpus(STORIES, COPIES, heavy_edits=False)
    expected = len(corpus) + SEED_PAGES
    topic_stories = {a.story for a in corpus if a.mentions_topic}
    logs = tmp_path / "logs"
    with CorpusSite(corpus, items_per_feed=100) as site, SampleSite() as samples, Hook() as hook:
        hook_yaml = (
            f"subscriptions:\n  - name: ops\n    url: {hook.base_url}/hook\n"
            "    secret: 0123456789abcdef0123\n"
        )
        feeds = [*site.feed_urls, samples.feed_url]
        config = corpus_config(tmp_path / "newsmon.yaml", feeds, hook_yaml)
        names = ["fetcher", "cleaner", "detector", "detector", "alerter"]
        services = []
        for k, name in enumerate(names):
            folder = logs / f"{name}-{k}"
            folder.mkdir(parents=True)
            services.append(ServiceProcess(name, cluster.url, config, folder))
            services[-1].env["NEWSMON_CONSUMER_NAME"] = f"{name}-{k}"
        client = _client(cluster)
        try:
            for service in services:
                service.start()
            for share, service in zip((0.15, 0.3, 0.45, 0.6, 0.75), services, strict=True):
                wait_for(
                    lambda share=share: client.xlen(STORIES_EVENTS) >= share * expected,
                    240,
                    f"{share:.0%} of the articles placed",
                )
                service.kill()
                service.start()
            wait_for(
                lambda: len(placed_articles(client)) >= expected and drained(cluster.url),
                300,
                "every article placed and every stream drained",
            )
            wait_for(
                lambda: set(hook.deliveries) >= {a.alert_id for a in stream_alerts(client)},
                120,
                "every alert delivered to the webhook",
            )
        finally:
            for service in services:
                service.stop()
        placed = placed_articles(client)
        alerts = stream_alerts(client)
        per_topic = {t: stream_alerts(client, topic_alerts_stream(t)) for t in ("energy", "OpenAI")}
        dead = {stream: client.xlen(dead_letter_stream(stream)) for stream in CONSUMED_STREAMS}

    assert len(placed) == expected
    in_two = {article: ids for article, ids in placed.items() if len(ids) != 1}
    assert not in_two, f"articles in more than one story: {in_two}"
    assert len({next(iter(ids)) for ids in placed.values()}) == STORIES + SEED_STORIES
    by_topic: dict[str, list[str]] = defaultdict(list)
    for alert in alerts:
        by_topic[alert.topic].append(alert.story_id)
    assert len(by_topic["energy"]) == len(topic_stories)
    assert len(by_topic["OpenAI"]) == SEED_STORIES
    assert len(alerts) == len({(a.story_id, a.topic) for a in alerts}), "an alert was sent twice"
    assert {t: [a.alert_id for a in found] for t, found in per_topic.items()} == {
        t: [a.alert_id for a in alerts if a.topic == t] for t in per_topic
    }
    assert dead == dict.fromkeys(CONSUMED_STREAMS, 0)
    assert all(service.starts == 2 for service in services)
    assert set(hook.deliveries) == {a.alert_id for a in alerts}
