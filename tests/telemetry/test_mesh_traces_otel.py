"""The mesh's connected trace with opentelemetry-instrumentation-grpc making the gRPC spans
(``telemetry.tracing.grpc_instrumentation: opentelemetry``): the same spans, parents and
statuses as llmesh's own (`test_mesh_traces`), from the instrumentation's scope."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.support.mesh import Mesh
from tests.support.tracing import global_provider
from tests.telemetry.conftest import TRACING_ON, MemorySpans
from tests.telemetry.test_mesh_traces import (
    CALLER_SPAN,
    CALLER_TRACE,
    _attempts,
    _chat,
    _id,
    _one,
    _parent,
    _received,
    _stream,
    _wait,
)

SCOPE = "opentelemetry.instrumentation.grpc"
CHAT = "/llmesh.v1.OrchestratorService/Chat"
STREAM_CHAT = "/llmesh.v1.OrchestratorService/StreamChat"


@pytest.fixture(scope="module")
def otel_mesh() -> Iterator[Mesh]:
    """A whole mesh in this process, its gRPC spans made by the instrumentation."""
    global_provider()
    tracing = replace(TRACING_ON.tracing, grpc_instrumentation="opentelemetry")
    mesh = Mesh().start({"telemetry": replace(TRACING_ON, tracing=tracing)})
    try:
        yield mesh
    finally:
        mesh.stop()


@pytest.fixture(autouse=True)
def _fresh_emulator(otel_mesh: Mesh) -> None:
    httpx.post(f"{otel_mesh.emulator_url}/emulator/reset").raise_for_status()


def test_a_call_is_one_trace_from_the_gateway_through_the_orchestrator(
    otel_mesh: Mesh, spans: MemorySpans
) -> None:
    reply = _chat(otel_mesh, "openai/gpt-4o-mini", max_tokens=50)
    assert reply.status_code == 200, reply.text
    assert reply.headers["traceparent"].split("-")[1] == CALLER_TRACE
    assert reply.headers["x-llmesh-attempts"]  # the intercepted channel keeps the trailers

    found = _wait(spans, lambda f: len(f) >= 4 and any(s.name.startswith("POST") for s in f))
    http = _one(found, SpanKind.SERVER, "POST /v1/chat/completions")
    assert _parent(http) == CALLER_SPAN
    client = _one(found, SpanKind.CLIENT, CHAT)
    assert _parent(client) == _id(http)
    server = _one(found, SpanKind.SERVER, CHAT)
    assert _parent(server) == _id(client)
    assert server.scope.name == client.scope.name == SCOPE
    assert client.status.status_code is server.status.status_code is StatusCode.UNSET
    rpc = {"rpc.system": "grpc", "rpc.service": "llmesh.v1.OrchestratorService"}
    assert dict(client.attributes) == {**rpc, "rpc.method": "Chat", "rpc.grpc.status_code": 0}
    served = dict(server.attributes)
    assert served.pop("rpc.user_agent").startswith("grpc-python")
    assert served.pop("net.peer.port").isdigit()
    # the call is the whole request: its facts are on the server span, no span of its own
    facts = {k: served.pop(k) for k in list(served) if k.startswith(("llmesh.", "gen_ai."))}
    assert facts["llmesh.model"] == "openai/gpt-4o-mini" and facts["llmesh.attempts"] == 1
    assert served == {
        **rpc,
        "rpc.method": "Chat",
        "rpc.grpc.status_code": 0,
        "net.peer.ip": "127.0.0.1",
        "net.peer.name": "localhost",
    }
    assert not [s for s in found if s.kind is SpanKind.INTERNAL]
    (attempt,) = _attempts(found)
    assert _parent(attempt) == _id(server)
    (seen,) = _received(otel_mesh)
    assert seen["traceparent"].split("-")[2] == _id(attempt)
    assert seen["baggage"] == "team=search"  # the caller's baggage crossed the gRPC hop


def test_streams_get_server_spans_with_the_streams_status(
    otel_mesh: Mesh, spans: MemorySpans
) -> None:
    reply = _stream(otel_mesh, "emulator/echo")
    assert reply.status_code == 200 and "[DONE]" in reply.text
    found = _wait(spans, lambda f: any(s.name.startswith("POST") for s in f))
    server = _one(found, SpanKind.SERVER, STREAM_CHAT)
    client = _one(found, SpanKind.CLIENT, STREAM_CHAT)
    assert _parent(server) == _id(client)
    assert _parent(client) == _id(_one(found, SpanKind.SERVER, "POST /v1/chat/completions"))
    assert server.status.status_code is client.status.status_code is StatusCode.UNSET
    assert server.attributes["rpc.grpc.status_code"] == 0
    (attempt,) = _attempts(found)
    assert _parent(attempt) == _id(server)
    assert server.attributes["llmesh.model"] == "emulator/echo"

    spans.clear()
    otel_mesh.set_fault("cut-short", "cut", after=1)
    reply = _stream(otel_mesh, "emulator/cut-short")
    assert '"error"' in reply.text  # the stream ended with an error event, not [DONE]
    found = _wait(spans, lambda f: any(s.name.startswith("POST") for s in f))
    server = _one(found, SpanKind.SERVER, STREAM_CHAT)
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes["rpc.grpc.status_code"] != 0
    assert _one(found, SpanKind.CLIENT, STREAM_CHAT).status.status_code is StatusCode.ERROR
