#!/usr/bin/env python3
"""Offline checks of the Helm chart deploy/helm/shop, run by .ci/run.

Renders the chart with real Helm (PyPI's helm-python-sdk: Helm v4 as a library, no binary,
no cluster) for the default values and values-production.yaml, lints it, validates every
rendered object against the Kubernetes schemas (PyPI's kubernetes-validate), and checks
properties of the objects: every container has limits, runAsNonRoot, readOnlyRootFilesystem
and no privilege escalation; every service container has liveness and readiness probes;
every Service selects a pod of the chart; every service has a NetworkPolicy. Each property
check is also shown failing on a broken rendering, and bad values are shown rejected by
values.schema.json. Ends with `N passed, M failed`.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "shop"
KUBE_VERSION = "1.30.0"
SERVICES = ["gateway", "order", "billing", "warehouse", "delivery", "notification"]
# Objects of CRDs that kubernetes-validate has no schema for.
CRD_GROUPS = ("monitoring.coreos.com/",)


def load_values(name: str) -> dict:
    return yaml.safe_load((CHART / name).read_text())


def render(values: dict | None = None) -> list[dict]:
    chart = helm.Chart.load(CHART)
    chart.validate_schema(values or {})
    manifests = chart.render(values or {}, name="shop", namespace="store", is_install=True)
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("metadata", {}).setdefault("annotations", {})
                objects.append(doc)
    return objects


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def pod_templates(objects: list[dict]) -> list[tuple[dict, dict]]:
    """(workload, pod template) of every StatefulSet and Job."""
    return [(o, o["spec"]["template"]) for o in objects if o["kind"] in ("StatefulSet", "Job")]


# ---- property checks: each returns the problems it found (empty: holds) ----


def container_problems(objects: list[dict]) -> list[str]:
    problems = []
    for workload, template in pod_templates(objects):
        pod_context = template["spec"].get("securityContext", {})
        for c in template["spec"]["containers"]:
            where = f"{workload['kind']} {workload['metadata']['name']} container {c['name']}"
            limits = c.get("resources", {}).get("limits", {})
            if not limits.get("cpu") or not limits.get("memory"):
                problems.append(f"{where}: no cpu and memory limits")
            requests = c.get("resources", {}).get("requests", {})
            if not requests.get("cpu") or not requests.get("memory"):
                problems.append(f"{where}: no cpu and memory requests")
            context = c.get("securityContext", {})
            if not (context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True):
                problems.append(f"{where}: runAsNonRoot is not true")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if "ALL" not in context.get("capabilities", {}).get("drop", []):
                problems.append(f"{where}: capabilities not all dropped")
            if workload["kind"] == "StatefulSet":
                # The gateway serves /health/* on its admin port; its public port answers 404.
                health_port = "admin" if c["name"] == "gateway" else "http"
                ports = {p["name"] for p in c.get("ports", [])}
                for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
                    get = c.get(probe, {}).get("httpGet", {})
                    if get.get("path") != path:
                        problems.append(f"{where}: no {probe} on {path}")
                    elif get.get("port") != health_port or health_port not in ports:
                        problems.append(f"{where}: {probe} not on the {health_port} port, where {path} is served")
    return problems


def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def service_problems(objects: list[dict]) -> list[str]:
    pods = [t["metadata"].get("labels", {}) for _, t in pod_templates(objects)]
    problems = []
    for service in of_kind(objects, "Service"):
        selector = service["spec"].get("selector", {})
        if not any(matches(selector, labels) for labels in pods):
            problems.append(f"Service {service['metadata']['name']} selects no pod of the chart: {selector}")
    return problems


def network_policy_problems(objects: list[dict]) -> list[str]:
    policies = [p["spec"]["podSelector"].get("matchLabels", {}) for p in of_kind(objects, "NetworkPolicy")]
    problems = []
    for workload in of_kind(objects, "StatefulSet"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        if not any(matches(selector, labels) for selector in policies):
            problems.append(f"StatefulSet {workload['metadata']['name']} has no NetworkPolicy")
    return problems


def check_properties(objects: list[dict]) -> None:
    problems = container_problems(objects) + service_problems(objects) + network_policy_problems(objects)
    assert not problems, "\n".join(problems)


def validate_objects(objects: list[dict]) -> int:
    checked = 0
    for obj in objects:
        if obj["apiVersion"].startswith(CRD_GROUPS):
            assert obj["kind"] == "ServiceMonitor" and obj["spec"]["endpoints"], obj
            continue
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        checked += 1
    return checked


# ---- tests ----

TESTS = []


def test(function):
    TESTS.append(function)
    return function


@test
def default_values_render_validate_and_hold_every_property():
    objects = render()
    kinds = sorted({o["kind"] for o in objects})
    assert kinds == ["ConfigMap", "NetworkPolicy", "Secret", "Service", "StatefulSet"], kinds
    assert len(of_kind(objects, "StatefulSet")) == 6 and len(of_kind(objects, "NetworkPolicy")) == 6
    for workload in of_kind(objects, "StatefulSet"):
        assert workload["spec"]["replicas"] == 1, workload["metadata"]["name"]
        assert workload["spec"]["volumeClaimTemplates"], workload["metadata"]["name"]
    assert validate_objects(objects) == len(objects)
    check_properties(objects)


@test
def production_values_render_validate_and_hold_every_property():
    objects = render(load_values("values-production.yaml"))
    kinds = {o["kind"] for o in objects}
    assert {"Ingress", "ServiceMonitor"} <= kinds and "Secret" not in kinds, kinds
    validate_objects(objects)
    check_properties(objects)


@test
def the_sweep_job_renders_indexed_and_restricted():
    objects = render({"sweep": {"enabled": True, "shards": 8, "seeds": 100, "scenarios": ["crash", "swarm"]}})
    (job,) = of_kind(objects, "Job")
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 8
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert '--shard "$((JOB_COMPLETION_INDEX + 1))/8"' in script and "--scenario crash,swarm" in script, script
    validate_objects(objects)
    check_properties(objects)


@test
def the_chart_lints_clean():
    for values in (None, load_values("values-production.yaml")):
        report = helm.lint(CHART, values, strict=True, namespace="store", kube_version=KUBE_VERSION)
        bad = [m for m in report["messages"] if m["severity"] >= 2] + report.get("errors", [])
        assert not bad, bad


@test
def peers_and_secrets_reach_every_service():
    objects = render({"secrets": {"userTokenSecret": "u" * 40, "serviceTokenSecret": "s" * 40}})
    (config,) = of_kind(objects, "ConfigMap")
    peers = config["data"]["SHOP_PEERS"]
    for name, port in zip(SERVICES, range(8080, 8086)):
        assert f"{name}=shop-{name}:{port}" in peers, peers
    (secret,) = of_kind(objects, "Secret")
    import base64

    assert base64.b64decode(secret["data"]["user-token-secret"]).decode() == "u" * 40
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


@test
def every_property_check_fails_on_a_broken_rendering():
    good = render()
    breakages = {
        "no cpu and memory limits": lambda o: sts(o, "order")["containers"][0]["resources"].pop("limits"),
        "runAsNonRoot is not true": lambda o: (
            sts(o, "billing")["containers"][0]["securityContext"].pop("runAsNonRoot"),
            sts(o, "billing")["securityContext"].update(runAsNonRoot=False),
        ),
        "readOnlyRootFilesystem is not true": lambda o: sts(o, "warehouse")["containers"][0]["securityContext"].update(
            readOnlyRootFilesystem=False
        ),
        "allowPrivilegeEscalation is not false": lambda o: sts(o, "delivery")["containers"][0][
            "securityContext"
        ].pop("allowPrivilegeEscalation"),
        "no livenessProbe": lambda o: sts(o, "notification")["containers"][0].pop("livenessProbe"),
        "no readinessProbe": lambda o: sts(o, "gateway")["containers"][0].pop("readinessProbe"),
        "not on the admin port": lambda o: sts(o, "gateway")["containers"][0]["livenessProbe"]["httpGet"].update(
            port="http"
        ),
        "selects no pod": lambda o: of_kind(o, "Service")[0]["spec"]["selector"].update(
            {"app.kubernetes.io/component": "nothing"}
        ),
        "has no NetworkPolicy": lambda o: o.remove(of_kind(o, "NetworkPolicy")[2]),
    }
    for says, breakage in breakages.items():
        broken = copy.deepcopy(good)
        breakage(broken)
        try:
            check_properties(broken)
        except AssertionError as error:
            assert says in str(error), f"{says}: {error}"
        else:
            raise AssertionError(f"the check missed a rendering with '{says}'")


def sts(objects: list[dict], service: str) -> dict:
    (workload,) = [o for o in of_kind(objects, "StatefulSet") if o["metadata"]["name"] == f"shop-{service}"]
    return workload["spec"]["template"]["spec"]


@test
def bad_values_are_rejected_by_the_schema():
    chart = helm.Chart.load(CHART)
    # Overrides as `--set`/`-f` would give them; null deletes a default (Helm's coalescing).
    bad = {
        "limits removed": {"services": {"order": {"resources": {"limits": None}}}},
        "unknown service": {"services": {"cart": {"port": 9000}}},
        "port as text": {"services": {"order": {"port": "eighty"}}},
        "password cost": {"config": {"passwordCost": "none"}},
        "no shards": {"sweep": {"shards": 0}},
        "caller unknown": {"services": {"billing": {"callers": ["anyone"]}}},
    }
    for what, values in bad.items():
        try:
            chart.validate_schema(values)
        except helm.HelmValuesError:
            continue
        raise AssertionError(f"the schema accepted bad values: {what}")
    chart.validate_schema({})
    # Rendering (as an install does) refuses them too.
    try:
        render(bad["limits removed"])
    except helm.HelmError:
        pass
    else:
        raise AssertionError("a chart without limits rendered")


@test
def kubernetes_validate_rejects_a_broken_object():
    broken = copy.deepcopy(render())
    sts_obj = of_kind(broken, "StatefulSet")[0]
    sts_obj["spec"]["replicas"] = "one"
    try:
        validate_objects([sts_obj])
    except kubernetes_validate.ValidationError:
        return
    raise AssertionError("kubernetes-validate accepted replicas: 'one'")


@test
def the_image_builds_where_an_engine_is_present():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "info"], capture_output=True).returncode != 0:
        raise Skipped("no container engine is running here (docker info failed); the Dockerfile is not built in this run")
    if os.environ.get("SHOP_BUILD_IMAGE") != "1":
        raise Skipped("an engine is present; set SHOP_BUILD_IMAGE=1 to build the image")
    subprocess.run([docker, "build", "-t", "shop:ci", str(ROOT)], check=True)


class Skipped(Exception):
    """A check that needs what this machine lacks: counted and shown, never as passed."""


def main() -> int:
    passed = failed = skipped = 0
    for function in TESTS:
        try:
            function()
        except Skipped as why:
            skipped += 1
            print(f"SKIPPED {function.__name__}: {why}")
        except Exception:  # noqa: BLE001 - every failure is reported, then counted
            failed += 1
            print(f"FAILED {function.__name__}")
            traceback.print_exc()
        else:
            passed += 1
            print(f"ok {function.__name__}")
    print(f"chart: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
