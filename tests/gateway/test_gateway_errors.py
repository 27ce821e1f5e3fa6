"""Failures of the gateway's own gRPC channel: an unreachable service, an expired deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from bench.ports import dead_address
from llmesh.gateway import GatewaySettings, RunningGateway, start
from tests.gateway.fakes import FakeMesh

HI = [{"role": "user", "content": "hi"}]


@dataclass
class Lonely:
    """A gateway whose orchestrator and processor are not running."""

    running: RunningGateway
    settings: GatewaySettings

    @property
    def url(self) -> str:
        return self.running.url


@pytest.fixture
async def lonely() -> AsyncIterator[Lonely]:
    settings = GatewaySettings(
        orchestrator_address=dead_address(), processor_address=dead_address()
    )
    running = await start(settings)
    yield Lonely(running, settings)
    await running.stop()


def _assert_unreachable(error: dict[str, Any], service: str, address: str) -> None:
    assert error["reason"] == "SERVICE_UNREACHABLE"
    assert f"cannot reach the llmesh {service} at {address}" in error["message"]
    assert f"--{service}" in error["message"]
    assert f"LLMESH_{service.upper()}_ADDRESS" in error["message"]
    assert "UPSTREAM" not in error["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/chat", {"input": {"model": "m"}}),
        ("/api/v1/chat/stream", {"input": {"model": "m"}}),
        ("/api/v1/models", None),
    ],
)
async def test_unreachable_orchestrator_native(lonely: Lonely, path: str, body: Any) -> None:
    address = lonely.settings.orchestrator_address
    async with httpx.AsyncClient(base_url=lonely.url, timeout=10) as client:
        r = await (client.post(path, json=body) if body else client.get(path))
    assert r.status_code == 503
    assert r.headers["x-should-retry"] == "true"
    error = r.json()["error"]
    assert error["status"] == "UNAVAILABLE"
    assert error["metadata"]["address"] == address
    _assert_unreachable(error, "orchestrator", address)


async def test_healthz_names_the_unreachable_orchestrator(lonely: Lonely) -> None:
    async with httpx.AsyncClient(base_url=lonely.url, timeout=10) as client:
        r = await client.get("/healthz")
    assert r.status_code == 503
    assert r.json()["status"] == "NOT_SERVING"
    address = lonely.settings.orchestrator_address
    assert f"cannot reach the llmesh orchestrator at {address}" in r.json()["detail"]


@pytest.mark.parametrize("stream", [False, True])
async def test_unreachable_orchestrator_openai(lonely: Lonely, stream: bool) -> None:
    async with httpx.AsyncClient(base_url=lonely.url, timeout=10) as client:
        r = await client.post(
            "/v1/chat/completions", json={"model": "m", "messages": HI, "stream": stream}
        )
    assert r.status_code == 503
    error = r.json()["error"]
    assert error["code"] == "service_unreachable"
    assert lonely.settings.orchestrator_address in error["message"]
    assert "--orchestrator" in error["message"]


async def test_unreachable_processor_is_named(lonely: Lonely) -> None:
    async with httpx.AsyncClient(base_url=lonely.url, timeout=10) as client:
        r = await client.post("/api/v1/tokens/count", json={"model": "m", "text": "x"})
    assert r.status_code == 503
    _assert_unreachable(r.json()["error"], "processor", lonely.settings.processor_address)


async def _until_error(ws: Any) -> list[dict[str, Any]]:
    """The frames of one chat up to its error frame (the socket stays open for the next)."""
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] != "error":
        frames.append(orjson.loads(await asyncio.wait_for(ws.recv(), 10)))
    return frames


async def test_unreachable_orchestrator_websocket(lonely: Lonely) -> None:
    url = f"ws://{lonely.running.host}:{lonely.running.port}/api/v1/chat/ws"
    frame = {"type": "chat", "request": {"input": {"model": "m"}}}
    async with connect(url, proxy=None) as ws:
        await ws.send(orjson.dumps(frame).decode())
        frames = await _until_error(ws)
    assert [f["type"] for f in frames] == ["error"]
    _assert_unreachable(frames[0]["error"], "orchestrator", lonely.settings.orchestrator_address)


def _assert_deadline(error: dict[str, Any]) -> None:
    assert error["reason"] == "DEADLINE_EXCEEDED"
    assert "deadline passed" in error["message"]
    assert "Stream removed" not in error["message"]
    assert "Deadline Exceeded" not in error["message"]


async def test_deadline_mid_sse_stream_is_clear(http: httpx.AsyncClient) -> None:
    body = {"input": {"model": "fake/slow", "messages": [{"role": 2, "content": "hi"}]}}
    r = await http.post("/api/v1/chat/stream", json=body, headers={"x-llmesh-timeout": "0.3"})
    assert r.status_code == 200
    event, _, data = r.text.rstrip("\n").rpartition("\n\n")[2].partition("\n")
    assert event == "event: error"
    _assert_deadline(orjson.loads(data.removeprefix("data: "))["error"])


async def test_deadline_before_the_reply_is_clear(http: httpx.AsyncClient) -> None:
    body = {"input": {"model": "fake/slow-start"}}
    r = await http.post("/api/v1/chat", json=body, headers={"x-llmesh-timeout": "0.2"})
    assert r.status_code == 504
    _assert_deadline(r.json()["error"])


async def test_deadline_mid_openai_stream_is_clear(http: httpx.AsyncClient) -> None:
    body = {"model": "fake/slow", "messages": HI, "stream": True}
    r = await http.post("/v1/chat/completions", json=body, headers={"x-llmesh-timeout": "0.3"})
    last = orjson.loads(r.text.strip().rsplit("\n\n", 1)[-1].removeprefix("data: "))
    assert last["error"]["code"] == "deadline_exceeded"
    assert "Stream removed" not in last["error"]["message"]
    assert "deadline passed" in last["error"]["message"]


async def test_deadline_mid_websocket_stream_is_clear(gateway: RunningGateway) -> None:
    url = f"ws://{gateway.host}:{gateway.port}/api/v1/chat/ws"
    frame = {"type": "chat", "request": {"input": {"model": "fake/slow"}}}
    async with connect(url, proxy=None, additional_headers={"x-llmesh-timeout": "0.3"}) as ws:
        await ws.send(orjson.dumps(frame).decode())
        frames = await _until_error(ws)
    assert frames[-1]["type"] == "error"
    _assert_deadline(frames[-1]["error"])


@pytest.mark.parametrize("path", ["/api/v1/chat", "/v1/chat/completions"])
async def test_a_request_that_can_never_fit_is_not_retried(
    http: httpx.AsyncClient, path: str
) -> None:
    if path.startswith("/v1"):
        body: dict[str, Any] = {"model": "fake/never-fits", "messages": HI}
    else:
        body = {"input": {"model": "fake/never-fits"}}
    r = await http.post(path, json=body)
    assert r.status_code == 429
    assert r.headers["x-should-retry"] == "false"
    assert "retry-after" not in r.headers


async def test_with_tracing_off_the_callers_traceparent_is_passed_on(
    http: httpx.AsyncClient, fake_mesh: FakeMesh
) -> None:
    body = {"model": "fake/text", "messages": HI}
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = await http.post("/v1/chat/completions", json=body, headers={"traceparent": parent})
    assert r.status_code == 200
    assert fake_mesh.orchestrator.calls[-1].metadata["traceparent"] == parent
    # a header that cannot be gRPC metadata is dropped, as W3C says of a bad one: not an error
    unusable = {"traceparent": "00-\xe9".encode("latin-1")}
    r = await http.post("/v1/chat/completions", json=body, headers=unusable)
    assert r.status_code == 200
    assert "traceparent" not in fake_mesh.orchestrator.calls[-1].metadata


@pytest.mark.parametrize("header", ["x-stainless-retry-count", "x-llmesh-retry-count"])
async def test_the_clients_retry_count_is_passed_on(
    http: httpx.AsyncClient, fake_mesh: FakeMesh, header: str
) -> None:
    body = {"model": "fake/text", "messages": HI}
    r = await http.post("/v1/chat/completions", json=body, headers={header: "2"})
    assert r.status_code == 200
    assert fake_mesh.orchestrator.calls[-1].metadata["llmesh-retry-count"] == "2"
    r = await http.post("/v1/chat/completions", json=body, headers={header: "twice"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == header
