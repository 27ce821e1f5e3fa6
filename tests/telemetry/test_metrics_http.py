"""The metrics server of the orchestrator and processor: GET /metrics on the event loop."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from llmesh.services.telemetry import Metrics, MetricsSettings, start_metrics_server


async def test_it_answers_prometheus_text_and_nothing_else() -> None:
    metrics = Metrics(MetricsSettings(enabled=True), "processor")
    metrics.observe("llmesh.ledger.backlog", lambda: [(3.0, {})])
    server = await start_metrics_server(metrics, "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            r = await http.get("/metrics")
            missing = await http.get("/")
            posted = await http.post("/metrics")
    finally:
        await server.aclose()
        metrics.shutdown()
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert families["llmesh_ledger_backlog"].samples[0].value == 3.0
    assert families["target_info"].samples[0].labels["service_name"] == "llmesh-processor"
    assert (missing.status_code, posted.status_code) == (404, 405)


async def test_a_client_that_sends_nothing_does_not_hold_it_up() -> None:
    metrics = Metrics(MetricsSettings(enabled=True), "orchestrator")
    server = await start_metrics_server(metrics, "127.0.0.1", 0)
    try:
        _, idle = await asyncio.open_connection("127.0.0.1", server.port)  # never writes
        async with httpx.AsyncClient() as http:
            r = await http.get(f"http://127.0.0.1:{server.port}/metrics")
        idle.close()
    finally:
        await server.aclose()
        metrics.shutdown()
    assert r.status_code == 200
