"""Deployment files checked without Docker or Grafana: compose against the
Compose Specification's schema, Prometheus config and rules with promtool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import REPO, SHARED, require_shared

PROMETHEUS = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "newsmon.json"
METRIC_NAME = re.compile(r"\bnewsmon_[a-z0-9_]+")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is absent (Debian package `prometheus`; .ci/run installs it)")
    return subprocess.run(
        ["promtool", *args], capture_output=True, text=True, timeout=120, check=False
    )


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    return loaded


def test_compose_file_follows_the_compose_specification() -> None:
    schema_path = require_shared(SHARED / "schemas" / "compose-spec.json")
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(compose())


def test_compose_runs_every_service_with_healthchecks_and_persistent_redis() -> None:
    services = compose()["services"]
    for name in ("fetcher", "cleaner", "detector", "alerter"):
        service = services[name]
        assert service["command"] == ["newsmon", "serve", name]
        assert "healthcheck" in service and service["restart"] == "unless-stopped"
    assert "--appendonly" in services["redis"]["command"]
    assert {"prometheus", "grafana"} <= services.keys()


def test_prometheus_config_and_rules_are_valid() -> None:
    checked = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = promtool("check", "rules", *map(str, (PROMETHEUS / "rules").glob("*.yml")))
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_alert_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", *map(str, (PROMETHEUS / "tests").glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def dashboard_metric_names() -> set[str]:
    """Every newsmon metric a dashboard panel queries (histogram suffixes kept)."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return {name for expr in exprs for name in METRIC_NAME.findall(expr)}


def test_every_dashboard_panel_has_a_question_and_a_query() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "newsmon-overview"
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["description"] and panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "newsmon-prometheus"
