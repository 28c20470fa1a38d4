"""Deployment files checked without Docker or Grafana: compose against the
Compose Specification's schema, Prometheus config and rules with promtool, the
image's data folder, the installed package's data files, and the metric names
the dashboard and the rules use."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import REPO, SHARED, require_shared

PROMETHEUS = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "newsmon.json"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
METRIC_NAME = re.compile(r"\bnewsmon_[a-z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PACKAGES = ("contracts", "services")
"""Source folders the image copies and installs (with pyproject.toml and README.md)."""


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


REQUIRED_SECRETS = (
    "NEWSMON_REDIS_PASSWORD",
    "NEWSMON_FETCHER_API_TOKEN",
    "NEWSMON_ALERTER_API_TOKEN",
    "NEWSMON_ALERTER_READ_TOKEN",
    "GRAFANA_ADMIN_PASSWORD",
)
"""What compose refuses to start without (`${NAME:?...}`: unset or empty both fail)."""


def required(name: str) -> re.Pattern[str]:
    """A compose interpolation of `name` that fails when it is unset or empty."""
    return re.compile(rf"\$\{{{name}:\?[^}}]*\}}")


def published_ports(service: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(host IP or None for all interfaces, rest) of each port a service publishes."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.append((port.get("host_ip"), str(port.get("published"))))
            continue
        parts = str(port).split(":")
        ports.append((parts[0], ":".join(parts[1:])) if len(parts) == 3 else (None, str(port)))
    return ports


def test_compose_publishes_only_prometheus_and_grafana_and_only_on_loopback() -> None:
    services = compose()["services"]
    published = {name: published_ports(service) for name, service in services.items()}
    assert {name for name, ports in published.items() if ports} == {"prometheus", "grafana"}
    for name, ports in published.items():
        for host_ip, rest in ports:
            assert host_ip == "127.0.0.1", f"{name} publishes {rest} on every interface"


def test_compose_refuses_to_start_without_every_password_and_token() -> None:
    text = (REPO / "compose.yaml").read_text(encoding="utf-8")
    for name in REQUIRED_SECRETS:
        uses = re.findall(rf"\$\{{{name}\b[^}}]*\}}", text)
        assert uses, f"compose does not use {name}"
        assert all(required(name).fullmatch(use) for use in uses), (
            f"{name} has a default or may be empty: {uses}"
        )


def test_compose_redis_requires_a_password_the_services_and_healthcheck_use() -> None:
    services = compose()["services"]
    redis = services["redis"]
    command = redis["command"]
    password = command[command.index("--requirepass") + 1]
    assert required("NEWSMON_REDIS_PASSWORD").fullmatch(password)
    assert redis["environment"]["REDISCLI_AUTH"] == password
    probe = " ".join(redis["healthcheck"]["test"])
    assert "redis-cli" in probe and "PONG" in probe, "a NOAUTH error must fail the healthcheck"
    for name in ("fetcher", "cleaner", "detector", "alerter"):
        url = services[name]["environment"]["NEWSMON_REDIS_URL"]
        assert url == f"redis://:{password}@redis:6379/0", name


def test_compose_gives_each_api_token_only_to_the_service_it_guards() -> None:
    services = compose()["services"]
    tokens = {
        "fetcher": {"NEWSMON_FETCHER_API_TOKEN"},
        "alerter": {"NEWSMON_ALERTER_API_TOKEN", "NEWSMON_ALERTER_READ_TOKEN"},
        "cleaner": set(),
        "detector": set(),
    }
    for name, expected in tokens.items():
        environment = services[name]["environment"]
        assert {key for key in environment if key.endswith("_TOKEN")} == expected, name
        for key in expected:
            assert required(key).fullmatch(environment[key]), f"{name}: {key}"


def test_compose_grafana_has_no_anonymous_access_and_no_default_admin_password() -> None:
    environment = compose()["services"]["grafana"]["environment"]
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in environment
    assert required("GRAFANA_ADMIN_PASSWORD").fullmatch(environment["GF_SECURITY_ADMIN_PASSWORD"])


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


def rule_metric_names() -> set[str]:
    """Every newsmon metric an alert rule queries."""
    exprs = [
        rule["expr"]
        for path in (PROMETHEUS / "rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]
    return {name for expr in exprs for name in METRIC_NAME.findall(expr)}


def declared_metrics() -> dict[str, set[str]]:
    """Metric name -> label names, as services/**/metrics.py declare them."""
    declared: dict[str, set[str]] = {}
    for path in (REPO / "services").rglob("metrics.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            name = node.args[0]
            if not (isinstance(name, ast.Constant) and str(name.value).startswith("newsmon_")):
                continue
            labels = node.args[2] if len(node.args) > 2 else None
            for keyword in node.keywords:
                if keyword.arg == "labelnames":
                    labels = keyword.value
            values = labels.elts if isinstance(labels, ast.List | ast.Tuple) else []
            declared[str(name.value)] = {
                str(v.value) for v in values if isinstance(v, ast.Constant)
            }
    return declared


def is_declared(name: str, declared: dict[str, set[str]]) -> bool:
    """`name` is a declared metric, or a histogram's bucket, sum or count series."""
    return name in declared or (
        name.endswith(HISTOGRAM_SUFFIXES) and name.rsplit("_", 1)[0] in declared
    )


def test_every_metric_the_dashboard_and_the_rules_query_is_declared() -> None:
    declared = declared_metrics()
    assert "newsmon_detector_active_stories" in declared
    for source, names in (("dashboard", dashboard_metric_names()), ("rules", rule_metric_names())):
        missing = sorted(name for name in names if not is_declared(name, declared))
        assert not missing, f"the {source} query metrics no service declares: {missing}"


PROMETHEUS_SERIES = {"up": {"job", "service"}}
"""Series Prometheus itself writes per target, with the labels prometheus.yml gives them."""


def test_rule_tests_feed_series_with_the_names_and_labels_services_export() -> None:
    declared = declared_metrics() | PROMETHEUS_SERIES
    for path in (PROMETHEUS / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for series in case["input_series"]:
                name, _, labels = series["series"].partition("{")
                keys = set(re.findall(r"(\w+)=", labels)) - {"instance"}
                assert name in declared, f"{case['name']}: {name} is not a newsmon metric"
                assert keys <= declared[name], (
                    f"{case['name']}: {name} has no {keys - declared[name]}"
                )


def test_dashboard_panels_query_active_stories_the_sweep_and_empty_extractions_by_reason() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = {
        panel["title"]: [target["expr"] for target in panel["targets"]]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
    }
    assert any("newsmon_detector_active_stories" in e for e in exprs["Active stories"])
    assert any(
        "newsmon_detector_posting_entries_swept_total" in e for e in exprs["Story index sweep"]
    )
    assert exprs["Empty extractions"] == [
        "sum by (reason) (rate(newsmon_cleaner_empty_extractions_total[5m]))"
    ]


def test_alert_rules_cover_redis_memory_and_every_stage_being_down() -> None:
    rules = {
        rule["alert"]: rule
        for group in yaml.safe_load((PROMETHEUS / "rules" / "newsmon.rules.yml").read_text())[
            "groups"
        ]
        for rule in group["rules"]
    }
    assert "newsmon_redis_maxmemory_bytes" in rules["NewsmonRedisMemoryHigh"]["expr"]
    for stage in ("fetcher", "cleaner", "detector", "alerter"):
        assert f'"stage", "{stage}"' in rules["NewsmonStageDown"]["expr"], stage
    assert 'up{job="newsmon"} == 0' in rules["NewsmonProcessDown"]["expr"]
    job = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"][0]
    assert job["job_name"] == "newsmon"


def test_every_dashboard_panel_has_a_question_and_a_query() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "newsmon-overview"
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["description"] and panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "newsmon-prometheus"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_image_keeps_embedded_redis_data_in_a_volume_its_user_owns() -> None:
    instructions = dockerfile_instructions()
    env = " ".join(args for op, args in instructions if op == "ENV")
    data_dir = re.search(r"\bNEWSMON_DATA_DIR=(\S+)", env)
    assert data_dir, "NEWSMON_DATA_DIR is unset: the default .newsmon lands in root's WORKDIR"
    user = next(args for op, args in instructions if op == "USER")
    assert user not in ("root", "0")
    run = " ".join(args for op, args in instructions if op == "RUN")
    assert re.search(rf"chown {user}(:{user})? {re.escape(data_dir[1])}\b", run)
    volumes = [args for op, args in instructions if op == "VOLUME"]
    assert any(data_dir[1] in volume for volume in volumes)


def test_image_data_folder_is_readable_by_its_user_alone() -> None:
    """The embedded Redis's AOF in it holds webhook secrets; a named volume copies the
    image folder's owner and mode when first mounted."""
    instructions = dockerfile_instructions()
    env = " ".join(args for op, args in instructions if op == "ENV")
    data_dir = re.search(r"\bNEWSMON_DATA_DIR=(\S+)", env)
    assert data_dir
    run = " ".join(args for op, args in instructions if op == "RUN")
    assert re.search(rf"chmod 0?700 {re.escape(data_dir[1])}(\s|$)", run)
    assert "NEWSMON_HTTP_HOST" not in env, "the image listens on 127.0.0.1 unless told otherwise"


def test_installed_package_ships_every_data_file_of_the_sources(tmp_path: Path) -> None:
    """What `pip install .` in the image installs: a data file left out of package-data
    (the alerter's lexicon was) is missing there although the tests pass from the sources."""
    pytest.importorskip("setuptools", reason="setuptools builds the package's file list")
    tree = tmp_path / "src"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, tree / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    built = tmp_path / "lib"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from setuptools import setup; setup()",
            "-q",
            "build_py",
            "--build-lib",
            str(built),
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    def data_files(root: Path) -> set[str]:
        return {
            path.relative_to(root).as_posix()
            for package in PACKAGES
            for path in (root / package).rglob("*")
            if path.is_file() and path.suffix not in (".py", ".pyc")
        }

    sources = data_files(tree)
    assert "services/alerter/lexicon.yaml" in sources
    missing = sorted(sources - data_files(built))
    assert not missing, f"add to [tool.setuptools.package-data] in pyproject.toml: {missing}"
