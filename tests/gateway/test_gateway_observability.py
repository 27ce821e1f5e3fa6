"""The gateway's /metrics and /readyz, beside /healthz (liveness)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import httpx
from grpc_health.v1 import health_pb2
from prometheus_client.parser import text_string_to_metric_families

from bench.ports import dead_address
from llmesh.gateway import GatewaySettings, start
from llmesh.gateway.observability import HTTP_BUCKETS
from llmesh.services.telemetry import MetricsSettings
from llmesh.services.telemetry.settings import TelemetrySettings
from tests.gateway.fakes import ORCHESTRATOR, PROCESSOR, FakeMesh


async def test_metrics_are_not_found_when_off(http: httpx.AsyncClient) -> None:
    r = await http.get("/metrics")
    assert r.status_code == 404
    assert "telemetry.metrics.enabled" in r.json()["error"]["message"]


async def test_metrics_count_requests_by_route_and_status(
    gateway_settings: GatewaySettings,
) -> None:
    settings = replace(
        gateway_settings, telemetry=TelemetrySettings(metrics=MetricsSettings(enabled=True))
    )
    running = await start(settings)
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            hi = [{"role": "user", "content": "hi"}]
            await http.post("/v1/chat/completions", json={"model": "fake/text", "messages": hi})
            await http.post("/v1/chat/completions", content=b"{not json")
            await http.get("/no/such/page")
            text = (await http.get("/metrics")).text
    finally:
        await running.stop()
    counts = {
        (s.labels["http_route"], s.labels["http_response_status_code"]): s.value
        for f in text_string_to_metric_families(text)
        if f.name == "http_server_request_duration_seconds"
        for s in f.samples
        if s.name.endswith("_count")
    }
    assert counts == {
        ("/v1/chat/completions", "200"): 1,
        ("/v1/chat/completions", "400"): 1,
        ("unmatched", "404"): 1,
    }


async def test_active_requests_and_duration_buckets_are_scraped_as_recorded(
    gateway_settings: GatewaySettings,
) -> None:
    settings = replace(
        gateway_settings, telemetry=TelemetrySettings(metrics=MetricsSettings(enabled=True))
    )
    running = await start(settings)
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            hi = [{"role": "user", "content": "hi"}]
            for _ in range(3):
                await http.post("/v1/chat/completions", json={"model": "fake/text", "messages": hi})
            text = (await http.get("/metrics")).text
    finally:
        await running.stop()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    active = {
        s.labels["http_request_method"]: s.value
        for s in families["http_server_active_requests"].samples
    }
    assert active == {"POST": 0, "GET": 1}  # the scrape itself is in progress
    route = "/v1/chat/completions"
    samples = [
        s
        for s in families["http_server_request_duration_seconds"].samples
        if s.labels["http_route"] == route
    ]
    buckets = [s.value for s in samples if s.name.endswith("_bucket")]
    (count,) = [s.value for s in samples if s.name.endswith("_count")]
    (total,) = [s.value for s in samples if s.name.endswith("_sum")]
    assert len(buckets) == len(HTTP_BUCKETS) + 1
    assert buckets == sorted(buckets) and buckets[-1] == count == 3  # cumulative, +Inf last
    assert 0 < total < 30


async def test_readyz_follows_the_orchestrator_service_and_the_processor(
    http: httpx.AsyncClient, fake_mesh: FakeMesh
) -> None:
    r = await http.get("/readyz")
    assert (r.status_code, r.json()) == (
        200,
        {"status": "SERVING", "orchestrator": "SERVING", "processor": "SERVING"},
    )
    # a dependency of the orchestrator fails: its service is NOT_SERVING, the server is up
    await fake_mesh.running.health.set(ORCHESTRATOR, health_pb2.HealthCheckResponse.NOT_SERVING)
    r = await http.get("/readyz")
    assert (r.status_code, r.json()["orchestrator"]) == (503, "NOT_SERVING")
    assert (await http.get("/healthz")).status_code == 200  # live, though not ready
    await fake_mesh.running.health.set(ORCHESTRATOR, health_pb2.HealthCheckResponse.SERVING)
    await fake_mesh.running.health.set(PROCESSOR, health_pb2.HealthCheckResponse.NOT_SERVING)
    r = await http.get("/readyz")
    assert (r.status_code, r.json()["processor"]) == (503, "NOT_SERVING")


async def test_readyz_without_upstreams_is_503() -> None:
    dead = dead_address()
    running = await start(
        GatewaySettings(orchestrator_address=dead, processor_address=dead, health_timeout=0.5)
    )
    try:
        async with httpx.AsyncClient(base_url=running.url) as http:
            r = await http.get("/readyz")
    finally:
        await running.stop()
    assert (r.status_code, r.json()) == (
        503,
        {"status": "NOT_SERVING", "orchestrator": "UNREACHABLE", "processor": "UNREACHABLE"},
    )


def test_the_module_entry_point_reads_the_metrics_variables() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llmesh.gateway", "--port", "0"],
        env={"OTEL_METRICS_EXPORTER": "statsd", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "OTEL_METRICS_EXPORTER: unknown exporters ['statsd']" in done.stderr
