"""The Kubernetes manifests (deploy/kubernetes/) checked offline: each layout rendered by
`kubectl kustomize` (kustomize itself, as `kubectl apply -k` renders it), every object
validated against the Kubernetes JSON schemas that `kubernetes-validate` bundles (strict: an
unknown field fails), then the properties users rely on: the four services with their probes,
resources, scrape annotations and a locked-down security context; every setting a service
reads present; a Secret template without values; nothing exposed beyond the cluster.

A tool missing skips with the reason: kubectl (with kustomize v4 or newer for components) is
preinstalled on this project's machines; `kubernetes-validate` is in the dev extra."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO

from contracts import NewsmonConfig

KUBERNETES = REPO / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
WITH_REDIS = KUBERNETES / "overlays" / "with-redis"
SECRET_TEMPLATE = KUBERNETES / "secret.example.yaml"
LAYOUTS = {"external-redis": BASE, "with-redis": WITH_REDIS}
SERVICES = ("fetcher", "cleaner", "detector", "alerter")
TOKENS = {
    "fetcher": {"NEWSMON_FETCHER_API_TOKEN"},
    "alerter": {"NEWSMON_ALERTER_API_TOKEN", "NEWSMON_ALERTER_READ_TOKEN"},
    "cleaner": set(),
    "detector": set(),
}
"""Each API token, only in the service it guards (as under compose)."""
MEASURED_PEAK_MB = {"fetcher": 102, "cleaner": 210, "detector": 102, "alerter": 284}
"""Peak RSS of each `newsmon serve X` (benchmarks/bench_service_memory.py, 2,000 articles):
what a request must cover."""
IMAGE_UID = 10001
SCHEMA_VERSIONS = ("1.28.0", "latest")
"""Kubernetes versions validated against: a still common old one, and the newest bundled."""
MIN_KUSTOMIZE = (4, 0)
"""Components (the optional Redis) need kustomize 3.7; kubectl bundles v4 since 1.21."""


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is absent: it renders the kustomizations (`kubectl kustomize`)")
    return path


@cache
def kustomize_version(path: str) -> tuple[int, ...]:
    out = subprocess.run(
        [path, "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    version = json.loads(out or "{}").get("kustomizeVersion", "")
    return tuple(int(n) for n in re.findall(r"\d+", version)[:2])


@cache
def rendered(layout: str) -> tuple[dict[str, Any], ...]:
    """The objects `kubectl kustomize` makes of a layout."""
    path = kubectl()
    version = kustomize_version(path)
    if version < MIN_KUSTOMIZE:
        said = "v" + ".".join(map(str, version)) if version else "older than v4 or unknown"
        pytest.skip(f"kubectl's kustomize is {said}: the Redis component needs kustomize v4+")
    result = subprocess.run(
        [path, "kustomize", str(LAYOUTS[layout])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(objects: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def deployments(layout: str) -> dict[str, dict[str, Any]]:
    return of_kind(rendered(layout), "Deployment")


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    first: dict[str, Any] = containers[0]
    return first


def secret_template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SECRET_TEMPLATE.read_text(encoding="utf-8"))
    return loaded


def memory_mb(quantity: str) -> float:
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", quantity)
    assert match, f"memory quantities here are Ki, Mi or Gi: {quantity}"
    return int(match[1]) * {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}[match[2]]


def cpu_millis(quantity: str) -> float:
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_object_follows_the_kubernetes_schemas(layout: str) -> None:
    validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (dev extra) holds the schemas"
    )
    objects = [*rendered(layout), secret_template()]
    invalid = []
    for version in SCHEMA_VERSIONS:
        wanted = validate.latest_version() if version == "latest" else version
        for obj in objects:
            try:
                validate.validate(obj, wanted, strict=True)
            except validate.ValidationError as error:
                where = "/".join(map(str, error.absolute_path))
                name = f"{obj['kind']}/{obj['metadata']['name']}"
                invalid.append(f"{name} (Kubernetes {wanted}) at {where}: {error.message}")
    assert not invalid, f"{layout}: " + "\n".join(invalid)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_one_deployment_per_service_running_it_from_the_image(layout: str) -> None:
    found = deployments(layout)
    assert set(found) == set(SERVICES)
    for name, deployment in found.items():
        main = container(deployment)
        assert main["command"] == ["newsmon", "serve", name]
        assert main["image"].startswith("newsmon:")
        assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_service_has_liveness_on_healthz_and_readiness_on_readyz(layout: str) -> None:
    for name, deployment in deployments(layout).items():
        main = container(deployment)
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = main[probe]["httpGet"]
            assert get["path"] == path, f"{name} {probe}"
            assert ports.get(get["port"], get["port"]) == 8000, f"{name} {probe}"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_container_has_requests_and_limits_covering_the_measured_memory(
    layout: str,
) -> None:
    workloads = {**deployments(layout), **of_kind(rendered(layout), "StatefulSet")}
    for name, workload in workloads.items():
        resources = container(workload)["resources"]
        for key in ("cpu", "memory"):
            request, limit = resources["requests"][key], resources["limits"][key]
            convert = memory_mb if key == "memory" else cpu_millis
            assert convert(request) <= convert(limit), f"{name} {key}"
        if name in MEASURED_PEAK_MB:
            assert memory_mb(resources["requests"]["memory"]) >= MEASURED_PEAK_MB[name], name


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_service_pod_carries_the_prometheus_scrape_annotations(layout: str) -> None:
    for name, deployment in deployments(layout).items():
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/port"] == "8000", name
        assert annotations["prometheus.io/path"] == "/metrics", name


def dockerfile_uid() -> int:
    text = (REPO / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    match = re.search(r"useradd\b[^\n]*--uid (\d+)", text)
    assert match, "the Dockerfile no longer says the user's uid"
    return int(match[1])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_pod_runs_as_non_root_without_privileges_on_a_read_only_root(layout: str) -> None:
    assert dockerfile_uid() == IMAGE_UID
    workloads = {**deployments(layout), **of_kind(rendered(layout), "StatefulSet")}
    for name, workload in workloads.items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        if name in SERVICES:
            assert pod["securityContext"]["runAsUser"] == IMAGE_UID, name
        assert not pod.get("hostNetwork") and not pod.get("hostPID"), name
        security = container(workload)["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        assert "add" not in security["capabilities"] and not security.get("privileged"), name


def resolved_environment(
    layout: str, deployment: dict[str, Any]
) -> tuple[list[str], dict[str, str | None], set[str]]:
    """A service container's env names in order; every variable it gets (value, or None
    for one from a Secret); the Secret keys it reads."""
    configmaps = of_kind(rendered(layout), "ConfigMap")
    main = container(deployment)
    values: dict[str, str | None] = {}
    secret_keys: set[str] = set()
    for source in main.get("envFrom", []):
        values.update(configmaps[source["configMapRef"]["name"]]["data"])
    order = []
    for var in main.get("env", []):
        order.append(var["name"])
        reference = var.get("valueFrom", {}).get("secretKeyRef")
        if reference:
            assert reference["name"] == secret_template()["metadata"]["name"]
            assert not reference.get("optional"), f"{var['name']} must be required"
            secret_keys.add(reference["key"])
            values[var["name"]] = None
        else:
            values[var["name"]] = var["value"]
    return order, values, secret_keys


def compose_environment() -> dict[str, str]:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    environment: dict[str, str] = compose["x-environment"]
    return environment


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_service_gets_every_setting_it_needs_and_only_its_own_tokens(layout: str) -> None:
    template_keys = set(secret_template()["stringData"])
    for name, deployment in deployments(layout).items():
        order, values, secret_keys = resolved_environment(layout, deployment)
        assert secret_keys <= template_keys, f"{name} reads keys the template lacks"
        assert "NEWSMON_REDIS_URL" in values, name
        for key, value in compose_environment().items():
            if key != "NEWSMON_REDIS_URL":
                assert values.get(key) == value, f"{name}: {key} differs from compose's"
        tokens = {key for key in values if key.endswith("_TOKEN")}
        assert tokens == TOKENS[name], name
        assert all(values[token] is None for token in tokens), f"{name}: a token in plain text"
        mounts = {m["mountPath"]: m for m in container(deployment)["volumeMounts"]}
        config_path = Path(str(values["NEWSMON_CONFIG"]))
        mount = mounts[str(config_path.parent)]
        assert mount["readOnly"] is True
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        configmap = of_kind(rendered(layout), "ConfigMap")[
            volumes[mount["name"]]["configMap"]["name"]
        ]
        assert config_path.name in configmap["data"], name
        if layout == "with-redis":
            url = values["NEWSMON_REDIS_URL"]
            assert url == "redis://:$(NEWSMON_REDIS_PASSWORD)@redis:6379/0", name
            assert order.index("NEWSMON_REDIS_PASSWORD") < order.index("NEWSMON_REDIS_URL"), (
                f"{name}: $(NEWSMON_REDIS_PASSWORD) is expanded only when defined before"
            )
        else:
            assert values["NEWSMON_REDIS_URL"] is None, f"{name}: the Redis URL is a Secret's"


def test_the_in_cluster_redis_requires_its_password_and_keeps_its_data() -> None:
    objects = rendered("with-redis")
    redis = of_kind(objects, "StatefulSet")["redis"]
    main = container(redis)
    args = main["args"]
    assert args[args.index("--requirepass") + 1] == "$(NEWSMON_REDIS_PASSWORD)"
    assert args[args.index("--appendonly") + 1] == "yes"
    env = {var["name"]: var["valueFrom"]["secretKeyRef"]["key"] for var in main["env"]}
    assert env == {
        "NEWSMON_REDIS_PASSWORD": "NEWSMON_REDIS_PASSWORD",
        "REDISCLI_AUTH": "NEWSMON_REDIS_PASSWORD",
    }
    probe = " ".join(main["readinessProbe"]["exec"]["command"])
    assert "redis-cli" in probe and "PONG" in probe, "a NOAUTH error must fail the probe"
    claims = {claim["metadata"]["name"] for claim in redis["spec"]["volumeClaimTemplates"]}
    assert {m["name"] for m in main["volumeMounts"] if m["mountPath"] == "/data"} <= claims
    service = of_kind(objects, "Service")["redis"]
    assert (
        service["spec"]["selector"].items()
        <= redis["spec"]["template"]["metadata"]["labels"].items()
    )
    assert service["spec"]["ports"][0]["port"] == 6379
    assert "redis" not in of_kind(rendered("external-redis"), "StatefulSet")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_only_the_apis_have_services_and_only_inside_the_cluster(layout: str) -> None:
    objects = rendered(layout)
    services = of_kind(objects, "Service")
    expected = {"fetcher", "alerter"} | ({"redis"} if layout == "with-redis" else set())
    assert set(services) == expected
    pods = {
        name: workload["spec"]["template"]["metadata"]["labels"]
        for name, workload in {
            **of_kind(objects, "Deployment"),
            **of_kind(objects, "StatefulSet"),
        }.items()
    }
    for name, service in services.items():
        spec = service["spec"]
        assert spec.get("type", "ClusterIP") == "ClusterIP", name
        assert not spec.get("externalIPs"), name
        selector = spec["selector"].items()
        selected = [pod for pod, labels in pods.items() if selector <= labels.items()]
        assert selected == [name], f"{name} selects {selected}, not its own pods alone"
    kinds = {obj["kind"] for obj in objects}
    assert not kinds & {"Ingress", "Route", "Gateway"}, "nothing reaches beyond the cluster"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_no_secret_holds_a_value(layout: str) -> None:
    assert not of_kind(rendered(layout), "Secret"), (
        "a Secret in the kustomization would overwrite the user's on every apply"
    )
    template = secret_template()
    assert template["kind"] == "Secret"
    assert "data" not in template
    assert template["stringData"], "the template names the keys"
    for key, value in template["stringData"].items():
        assert value == "", f"{key} has a value in {SECRET_TEMPLATE.name}"
    needed = {"NEWSMON_REDIS_URL", "NEWSMON_REDIS_PASSWORD"} | set().union(*TOKENS.values())
    assert set(template["stringData"]) == needed


def test_the_cluster_config_is_valid_with_the_example_topics_and_no_private_hosts() -> None:
    configmap = of_kind(rendered("external-redis"), "ConfigMap")
    (config_map,) = (c for name, c in configmap.items() if name.startswith("newsmon-config"))
    config = NewsmonConfig.model_validate(yaml.safe_load(config_map["data"]["newsmon.yaml"]))
    example = NewsmonConfig.model_validate(
        yaml.safe_load((REPO / "examples" / "newsmon.yaml").read_text(encoding="utf-8"))
    )
    assert config.topics == example.topics
    assert not config.allowed_private_hosts, "a pod's loopback and the cluster stay off limits"
