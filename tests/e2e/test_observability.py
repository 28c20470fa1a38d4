"""A running `newsmon up` seen the way operators see it: every metric the
Grafana dashboard and the alert rules query is exported, the active-stories
gauge counts the stories formed, and a real Prometheus scraping it answers
PromQL about fetched items, stories and alerts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import REPO, free_port, newsmon_up, wait_for_metric

from services.samples.server import SampleSite

pytestmark = pytest.mark.e2e

DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "newsmon.json"
RULES = REPO / "deploy" / "prometheus" / "rules"
METRIC_NAME = re.compile(r"\bnewsmon_[a-z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@pytest.fixture(scope="module")
def running_newsmon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`newsmon up` on the sample site, after the sample run produced its alerts."""
    work = tmp_path_factory.mktemp("up")
    with SampleSite() as site:
        config = (
            f"sources:\n  - name: sample-news\n    url: {site.feed_url}\n"
            "topics:\n  - name: OpenAI\n    keywords: [OpenAI]\n"
            'allowed_private_hosts: ["127.0.0.1:*"]\n'
        )
        with newsmon_up(config, work) as (base_url, _):
            wait_for_metric(base_url, 'newsmon_alerter_alerts_total{kind="new",topic="OpenAI"}', 3)
            yield base_url


def exported_names(exposition: str) -> set[str]:
    """Metric family names and sample names in a /metrics text."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def queried_names() -> dict[str, set[str]]:
    """Newsmon metric names each of the dashboard and the alert rules queries."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    rules = [
        rule
        for path in RULES.glob("*.yml")
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]
    return {
        "dashboard": {
            name
            for panel in dashboard["panels"]
            for target in panel.get("targets", [])
            for name in METRIC_NAME.findall(target["expr"])
        },
        "alert rules": {name for rule in rules for name in METRIC_NAME.findall(rule["expr"])},
    }


def sample_value(exposition: str, sample: str) -> float | None:
    """The value of one sample (name with its labels, as exposed) in a /metrics text."""
    for line in exposition.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return None


def test_every_metric_the_dashboard_and_the_rules_query_is_exported(running_newsmon: str) -> None:
    exported = exported_names(httpx.get(f"{running_newsmon}/metrics", timeout=5).text)
    for source, queried in queried_names().items():
        missing = {
            name
            for name in queried
            if name not in exported
            and not (name.endswith(HISTOGRAM_SUFFIXES) and name.rsplit("_", 1)[0] in exported)
        }
        assert not missing, f"the {source} query metrics no service exports: {sorted(missing)}"


def test_active_stories_gauge_counts_the_stories_formed(running_newsmon: str) -> None:
    """Every story of the sample run is still open (the window is days): the gauge, read
    from Redis every few seconds, reaches the number of stories the detector created."""
    deadline = time.monotonic() + 60
    active = created = None
    while time.monotonic() < deadline:
        text = httpx.get(f"{running_newsmon}/metrics", timeout=5).text
        active = sample_value(text, "newsmon_detector_active_stories")
        created = sample_value(text, 'newsmon_detector_articles_total{reason="new"}')
        if created and active == created:
            break
        time.sleep(0.5)
    assert created and created >= 1
    assert active == created


def test_prometheus_scrapes_the_pipeline_and_answers_promql(
    running_newsmon: str, tmp_path: Path
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is absent (Debian package `prometheus`; .ci/run installs it)")
    target = running_newsmon.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        f"scrape_configs:\n  - job_name: newsmon\n    static_configs:\n"
        f"      - targets: ['{target}']\n",
        encoding="utf-8",
    )
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        api = f"http://127.0.0.1:{port}/api/v1/query"
        for query in (
            "sum(newsmon_fetcher_items_total)",
            'sum(newsmon_detector_articles_total{reason="new"})',
            "max(newsmon_detector_active_stories)",
            "sum(newsmon_alerter_alerts_total)",
        ):
            assert promql_value(api, query) > 0, query
    finally:
        process.terminate()
        process.wait(timeout=30)


def promql_value(api: str, query: str, timeout_seconds: float = 60) -> float:
    """The value of an instant query once Prometheus has it (0 if it never does)."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(api, params={"query": query}, timeout=5).json()
        except (httpx.TransportError, json.JSONDecodeError):
            answer = {}
        result = answer.get("data", {}).get("result", [])
        if result and float(result[0]["value"][1]) > 0:
            return float(result[0]["value"][1])
        time.sleep(0.5)
    return 0.0
