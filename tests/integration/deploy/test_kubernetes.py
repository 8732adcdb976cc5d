"""deploy/k8s: both overlays render with kustomize (built from its Go module by scripts/kustomize.sh)
and validate offline against the Kubernetes schemas (PyPI kubernetes-validate, strict), and every
workload is hardened, probed and sized the way the README promises."""

from __future__ import annotations

import functools
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.tools import REPO_ROOT, kustomize, run

OVERLAYS = ["dev", "prod"]
WORKLOADS = {"Deployment", "StatefulSet"}
Doc = dict[str, Any]


@functools.cache
def _rendered(overlay: str) -> tuple[str, list[Doc]]:
    text = run(kustomize(), "build", REPO_ROOT / "deploy" / "k8s" / "overlays" / overlay)
    return text, [doc for doc in yaml.safe_load_all(text) if doc]


def _docs(overlay: str, *kinds: str) -> list[Doc]:
    return [doc for doc in _rendered(overlay)[1] if not kinds or doc["kind"] in kinds]


def _config(overlay: str) -> Doc:
    (configmap,) = _docs(overlay, "ConfigMap")
    loaded: Doc = yaml.safe_load(configmap["data"]["config.yaml"])
    return loaded


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_renders_and_validates_against_the_kubernetes_schemas(
    overlay: str, tmp_path: Path
) -> None:
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(_rendered(overlay)[0])
    validator = shutil.which("kubernetes-validate")
    assert validator is not None, "kubernetes-validate (a dev dependency) is not installed"
    output = run(validator, "--strict", manifest)
    kinds = {doc["kind"] for doc in _docs(overlay)}
    assert {"Namespace", "ConfigMap", "Service", "Deployment", "StatefulSet", "Job",
            "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor"} <= kinds  # fmt: skip
    # Every kind but the Operator's ServiceMonitor (a CRD, checked below) has a schema and passed.
    assert output.count("passed for resource") == len(_docs(overlay)) - 1
    (monitor,) = _docs(overlay, "ServiceMonitor")
    services = _docs(overlay, "Service")
    selected = [
        s
        for s in services
        if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    assert selected == services
    ports = {port["name"] for s in services for port in s["spec"]["ports"]}
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} == ports
    # Each scraped port's job is the one the scrape configs give it, which the alert rules select.
    scrape = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "kubernetes.yml").read_text())
    jobs = {job["job_name"] for job in scrape["scrape_configs"]}
    named = set()
    for endpoint in monitor["spec"]["endpoints"]:
        for service in services:
            if endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}:
                named.add(_relabelled_job(endpoint["relabelings"], service["metadata"]["name"]))
    assert named == jobs == {"fluxforge-collector", "fluxforge-engine", "fluxforge-sink", "fluxforge-s3-sync"}


def _relabelled_job(relabelings: list[Doc], service_name: str) -> str:
    """Prometheus' `replace` relabeling of the job label (anchored regex, `$1` groups)."""
    job = service_name
    for rule in relabelings:
        assert rule["targetLabel"] == "job"
        source = ";".join(service_name for _ in rule.get("sourceLabels", []))
        match = re.fullmatch(rule.get("regex", "(.*)"), source)
        if match is not None:
            job = match.expand(rule["replacement"].replace("$1", r"\1"))
    return job


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_is_non_root_read_only_probed_and_sized(overlay: str) -> None:
    for doc in _docs(overlay, *WORKLOADS, "Job"):
        pod = doc["spec"]["template"]
        name = doc["metadata"]["name"]
        security = pod["spec"]["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001, name
        writable = [v for v in pod["spec"].get("volumes", []) if "emptyDir" in v] + doc["spec"].get(
            "volumeClaimTemplates", []
        )
        if doc["kind"] in WORKLOADS:
            assert writable and security["fsGroup"] == 10001, name
        for container in pod["spec"]["containers"]:
            where = f"{name}/{container['name']}"
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
            }, where  # fmt: skip
            resources = container["resources"]
            assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}, where
            if doc["kind"] in WORKLOADS:
                assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", where
                assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", where
        if doc["kind"] in WORKLOADS:
            annotations = pod["metadata"]["annotations"]
            assert annotations["prometheus.io/scrape"] == "true", name
            assert int(annotations["prometheus.io/port"]) in {
                port["containerPort"] for c in pod["spec"]["containers"] for port in c["ports"]
            }, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_disruption_budgets_and_the_network_policy_cover_every_workload(overlay: str) -> None:
    services = {doc["metadata"]["name"]: doc for doc in _docs(overlay, "Service")}
    budgets = [doc["spec"]["selector"]["matchLabels"] for doc in _docs(overlay, "PodDisruptionBudget")]
    for doc in _docs(overlay, *WORKLOADS):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert any(budget.items() <= labels.items() for budget in budgets), doc["metadata"]["name"]
        assert any(s["spec"]["selector"].items() <= labels.items() for s in services.values())
        if doc["kind"] == "StatefulSet":
            assert services[doc["spec"]["serviceName"]]["spec"]["clusterIP"] == "None"
    (policy,) = _docs(overlay, "NetworkPolicy")
    assert policy["spec"]["podSelector"] == {} and policy["spec"]["policyTypes"] == ["Ingress", "Egress"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_come_from_the_one_secret_and_engine_replicas_fit_the_raw_partitions(overlay: str) -> None:
    # The Secret is created out of band, never applied: an apply would empty the keys filled in the cluster.
    assert _docs(overlay, "Secret") == []
    secret = yaml.safe_load((REPO_ROOT / "deploy" / "k8s" / "base" / "secret.yaml").read_text())
    for doc in _docs(overlay, *WORKLOADS, "Job"):
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
                    assert ref["optional"] is True  # the pods start before it exists
    assert not any(value for value in secret["stringData"].values()), "credentials never live in git"
    (engine,) = [doc for doc in _docs(overlay, "Deployment") if doc["metadata"]["name"] == "feature-engine"]
    assert 1 <= engine["spec"]["replicas"] <= _config(overlay)["kafka"]["partitions"]


def test_prod_reaches_kafka_over_sasl_ssl_with_the_cluster_ca_mounted_where_the_config_says() -> None:
    kafka = _config("prod")["kafka"]
    assert kafka["security_protocol"] == "SASL_SSL" and kafka["sasl_mechanism"].startswith("SCRAM")
    assert "sasl_password" not in kafka  # the password comes from the Secret's environment variable
    ca_dir = str(Path(kafka["ssl_ca_file"]).parent)
    for doc in _docs("prod", *WORKLOADS, "Job"):
        first = doc["spec"]["template"]["spec"]["containers"][0]
        assert ca_dir in {mount["mountPath"] for mount in first["volumeMounts"]}, doc["metadata"]["name"]
        assert "FLUXFORGE_KAFKA_SASL_PASSWORD" in {variable["name"] for variable in first["env"]}
    (engine,) = [doc for doc in _docs("prod", "Deployment") if doc["metadata"]["name"] == "feature-engine"]
    assert engine["spec"]["replicas"] == kafka["partitions"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_network_policy_lets_the_pods_reach_what_the_config_names(overlay: str) -> None:
    config = _config(overlay)
    (policy,) = _docs(overlay, "NetworkPolicy")
    allowed = {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
    wanted = {int(server.rsplit(":", 1)[1]) for server in config["kafka"]["bootstrap_servers"].split(",")}
    endpoint = config["storage"].get("s3", {}).get("endpoint_url")
    if endpoint is not None:
        url = urlsplit(endpoint)
        wanted.add(url.port or (443 if url.scheme == "https" else 80))
    assert wanted <= allowed, sorted(wanted - allowed)


def test_the_dev_market_starts_when_its_collector_starts() -> None:
    """A restarted dev collector must not publish its default day again (the engine would refuse it all)."""
    (collector,) = [doc for doc in _docs("dev", "StatefulSet") if doc["metadata"]["name"] == "collector"]
    (container,) = collector["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["/bin/sh", "-c"]
    assert container["command"][2].startswith("FLUXFORGE_SIMULATOR__START_MS=$$(date +%s000) exec fluxforge ")
    assert container["args"][:2] == ["collect", "--config"] and "simulator" in container["args"]
