"""The deployment files, checked offline: every Kubernetes manifest against the bundled
Kubernetes schemas (kubernetes-validate), the compose file's services and commands, the
configuration both ship, and the Dockerfile's shape (docker itself is not used in tests)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from llmesh.gateway.balancing import channel_target
from llmesh.gateway.settings import GatewaySettings
from llmesh.services.common.config import load_config

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "deploy" / "compose"
KUBERNETES_VERSION = "1.33.0"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _all() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in _docs(path)]


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in _all() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_is_valid_kubernetes(path: Path) -> None:
    for doc in _docs(path):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_an_invalid_manifest_is_caught() -> None:
    bad = _one("Deployment", "llmesh-orchestrator")
    bad = json.loads(json.dumps(bad))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in MANIFESTS]


def test_the_orchestrator_is_balanced_by_dns_probed_on_grpc_and_drained() -> None:
    service = _one("Service", "llmesh-orchestrator")
    assert service["spec"]["clusterIP"] == "None"  # headless: one address per pod
    pod = _one("Deployment", "llmesh-orchestrator")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["serve", "orchestrator"]
    assert container["readinessProbe"]["grpc"]["service"] == "llmesh.v1.OrchestratorService"
    assert "service" not in container["livenessProbe"]["grpc"]
    config = _config(_one("ConfigMap", "llmesh-config")["data"]["llmesh.yaml"])
    assert pod["terminationGracePeriodSeconds"] > config.shutdown_grace + 5
    target = channel_target(GatewaySettings.from_config(config).orchestrator_address)
    assert target == f"dns:///{service['metadata']['name']}.llmesh.svc.cluster.local:50051"
    processor = _one("Service", "llmesh-processor")
    assert processor["spec"]["clusterIP"] == "None"
    assert channel_target(config.processor_address) == (
        "dns:///llmesh-processor.llmesh.svc.cluster.local:50052"
    )


def test_pdb_and_autoscaler_on_calls_in_flight() -> None:
    labels = _one("Deployment", "llmesh-orchestrator")["spec"]["selector"]["matchLabels"]
    assert _one("PodDisruptionBudget", "llmesh-orchestrator")["spec"]["selector"][
        "matchLabels"
    ] == (labels)
    hpa = _one("HorizontalPodAutoscaler", "llmesh-orchestrator")["spec"]
    assert hpa["metrics"][0]["pods"]["metric"]["name"] == "llmesh_calls_in_flight"


def test_gateway_probes_healthz_and_readyz_and_keys_come_from_secrets() -> None:
    container = _one("Deployment", "llmesh-gateway")["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    orch = _one("Deployment", "llmesh-orchestrator")["spec"]["template"]["spec"]["containers"][0]
    secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in orch["env"] if "valueFrom" in e
    }
    assert secrets["OPENAI_API_KEY"] == secrets["ANTHROPIC_API_KEY"] == "llmesh-provider-keys"


def _config(text: str) -> Any:
    """The configuration `text` holds, loaded as llmesh loads its file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "llmesh.yaml"
        path.write_text(text)
        return load_config(str(path), env={})


def test_compose_runs_the_mesh_with_redis_postgres_and_a_collector() -> None:
    compose = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {
        "orchestrator",
        "processor",
        "gateway",
        "redis",
        "postgres",
        "otel-collector",
    }
    for name in ("orchestrator", "processor", "gateway"):
        assert services[name]["image"] == "llmesh:latest"
        assert services[name]["command"] == ["serve", name]
    assert services["redis"]["image"].startswith("redis:")
    assert services["postgres"]["image"].startswith("postgres:")
    assert "opentelemetry-collector" in services["otel-collector"]["image"]
    config = _config((COMPOSE / "llmesh.yaml").read_text())
    assert config.policy.budgets.redis_url == "redis://redis:6379/0"
    assert config.resilience.breaker.redis_url == "redis://redis:6379/0"
    assert config.database_url.startswith("postgresql://")
    assert channel_target(GatewaySettings.from_config(config).orchestrator_address) == (
        "dns:///orchestrator:50051"
    )


def test_the_dockerfile_is_multi_stage_slim_non_root_and_pinned() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) == 2 and all("python:3.11-slim" in s for s in stages)
    text = "\n".join(lines)
    assert "-c constraints.txt ." in text and "[dev" not in text
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1] != "USER root" and "COPY --from=build" in text
    # the build stage compiles the optional span encoder (setup.py); the image has no compiler
    build, image = text.split("\nFROM ", 1)
    assert "setup.py" in build and "gcc" in build and "gcc" not in image
