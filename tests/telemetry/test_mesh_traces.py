"""One connected trace per call across the mesh (in this process, spans kept in memory).

The caller's ``traceparent`` is continued by the gateway's server span; the gateway's gRPC
client span, the orchestrator's server span and one client span per provider attempt follow,
and the provider (the emulator) receives the attempt's own context.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.trace import SpanKind, StatusCode

from llmesh.services.telemetry.lean_trace import LeanSpan
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.mesh import Mesh
from tests.telemetry.conftest import MemorySpans

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


def _wait(spans: MemorySpans, done: Callable[[Sequence[LeanSpan]], bool]) -> list[LeanSpan]:
    """The finished spans of the caller's trace, once `done` holds (spans end after replies)."""
    deadline = time.monotonic() + 10
    while True:
        mine = [
            s
            for s in spans.get_finished_spans()
            if s.context is not None and f"{s.context.trace_id:032x}" == CALLER_TRACE
        ]
        if done(mine) or time.monotonic() > deadline:
            return mine
        time.sleep(0.02)


def _attempts(found: Sequence[LeanSpan]) -> list[LeanSpan]:
    chat = [s for s in found if s.kind is SpanKind.CLIENT and s.name.startswith("chat ")]
    return sorted(chat, key=lambda s: s.attributes["llmesh.attempt.number"])  # type: ignore[index, arg-type, return-value]


def _one(found: Sequence[LeanSpan], kind: SpanKind, name: str) -> LeanSpan:
    matching = [s for s in found if s.kind is kind and s.name == name]
    assert len(matching) == 1, [(s.kind, s.name) for s in found]
    return matching[0]


def _parent(span: LeanSpan) -> str:
    assert span.parent is not None
    return f"{span.parent.span_id:016x}"


def _id(span: LeanSpan) -> str:
    assert span.context is not None
    return f"{span.context.span_id:016x}"


def _chat(mesh: Mesh, model: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{mesh.gateway_url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "secret prompt"}], **extra},
        headers={
            "traceparent": TRACEPARENT,
            "baggage": "team=search",
            "authorization": "Bearer sk-never-on-a-span",
        },
        timeout=30,
    )


def _received(mesh: Mesh) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = httpx.get(f"{mesh.emulator_url}/emulator/trace-context").json()
    return [e for e in seen if e["traceparent"].split("-")[1] == CALLER_TRACE]


@pytest.fixture(autouse=True)
def _fresh_emulator(traced_mesh: Mesh) -> None:
    httpx.post(f"{traced_mesh.emulator_url}/emulator/reset").raise_for_status()


def test_a_plain_call_is_one_trace_from_the_caller_to_the_provider(
    traced_mesh: Mesh, spans: MemorySpans
) -> None:
    reply = _chat(traced_mesh, "openai/gpt-4o-mini", max_tokens=50, temperature=0.5, top_p=0.9)
    assert reply.status_code == 200, reply.text
    assert reply.headers["traceparent"].split("-")[1] == CALLER_TRACE
    assert reply.headers["x-llmesh-attempts"]  # the instrumented channel keeps the trailers

    found = _wait(spans, lambda f: len(f) >= 4 and any(s.name.startswith("POST") for s in f))
    http = _one(found, SpanKind.SERVER, "POST /v1/chat/completions")
    assert _parent(http) == CALLER_SPAN
    assert http.attributes is not None and http.attributes["http.response.status_code"] == 200
    client = _one(found, SpanKind.CLIENT, "/llmesh.v1.OrchestratorService/Chat")
    assert _parent(client) == _id(http)
    server = _one(found, SpanKind.SERVER, "/llmesh.v1.OrchestratorService/Chat")
    assert _parent(server) == _id(client)
    assert server.status.status_code is not StatusCode.ERROR
    assert server.scope.name == client.scope.name == "llmesh.grpc"
    rpc = {"rpc.system": "grpc", "rpc.service": "llmesh.v1.OrchestratorService"}
    assert dict(client.attributes) == {**rpc, "rpc.method": "Chat", "rpc.grpc.status_code": 0}
    served = dict(server.attributes)
    assert served.pop("rpc.user_agent").startswith("grpc-python")
    assert served.pop("net.peer.port").isdigit()
    # the call is the whole request: its facts are on the server span, no span of its own
    assert served.pop("llmesh.request_id").startswith("req_")
    assert served.pop("llmesh.overhead_ms") >= 0
    assert served.pop("llmesh.cost_usd") >= 0
    assert served.pop("gen_ai.usage.input_tokens") > 0
    assert served.pop("gen_ai.usage.output_tokens") > 0
    assert served == {
        **rpc,
        "rpc.method": "Chat",
        "rpc.grpc.status_code": 0,
        "net.peer.ip": "127.0.0.1",
        "net.peer.name": "localhost",
        "llmesh.tenant": "default",
        "llmesh.model": "openai/gpt-4o-mini",
        "llmesh.targets": ("openai/gpt-4o-mini",),
        "llmesh.cache_hit": False,
        "llmesh.attempts": 1,
    }
    assert not [s for s in found if s.kind is SpanKind.INTERNAL]
    (attempt,) = _attempts(found)
    assert _parent(attempt) == _id(server)
    assert attempt.name == "chat gpt-4o-mini"
    attrs = dict(attempt.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini"
    assert str(attrs["gen_ai.response.id"]).startswith("chatcmpl-")
    assert attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.request.top_p"] == 0.9
    assert attrs["gen_ai.usage.input_tokens"] > 0
    assert attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == int(traced_mesh.emulator_url.rsplit(":", 1)[1])
    assert attrs["llmesh.attempt.number"] == 1
    assert attrs["llmesh.attempt.winner"] is True
    assert attrs["llmesh.attempt.fallback"] is False
    assert attrs["llmesh.target"] == "openai/gpt-4o-mini"
    assert (server.attributes or {})["llmesh.request_id"] == reply.headers["x-request-id"]
    # the provider saw the attempt's own context
    (seen,) = _received(traced_mesh)
    assert seen["traceparent"].split("-")[2] == _id(attempt)
    assert seen["baggage"] == "team=search"  # the caller's baggage travels with the trace
    # no content, no credential on any span (content capture is off)
    for span in found:
        text = repr(dict(span.attributes or {}))
        assert "secret prompt" not in text and "sk-never-on-a-span" not in text
        assert "gen_ai.input.messages" not in (span.attributes or {})


def test_a_retried_call_has_a_span_per_attempt(traced_mesh: Mesh, spans: MemorySpans) -> None:
    traced_mesh.set_fault("flaky-once", "server_error", times=1)
    reply = _chat(traced_mesh, "emulator/flaky-once")
    assert reply.status_code == 200, reply.text
    found = _wait(spans, lambda f: len(_attempts(f)) >= 2)
    first, second = _attempts(found)
    assert (first.attributes or {})["error.type"] == "UPSTREAM_UNAVAILABLE"
    assert first.status.status_code is StatusCode.ERROR
    assert (first.attributes or {})["llmesh.attempt.winner"] is False
    assert (second.attributes or {})["llmesh.attempt.retry"] is True
    assert (second.attributes or {})["llmesh.attempt.retry_reason"] == "UPSTREAM_UNAVAILABLE"
    assert (second.attributes or {})["llmesh.attempt.winner"] is True
    assert _parent(first) == _parent(second)
    assert {e["traceparent"].split("-")[2] for e in _received(traced_mesh)} == {
        _id(first),
        _id(second),
    }


def test_a_fallback_is_its_own_span_marked_as_one(traced_mesh: Mesh, spans: MemorySpans) -> None:
    traced_mesh.set_fault("always-down", "server_error")
    reply = _chat(traced_mesh, "emulator/always-down", fallbacks=["emulator/echo"])
    assert reply.status_code == 200, reply.text
    found = _wait(spans, lambda f: any(s.name == "chat echo" for s in f))
    attempts = _attempts(found)
    assert [s.name for s in attempts] == ["chat always-down"] * 3 + ["chat echo"]
    last = dict(attempts[-1].attributes or {})
    assert last["llmesh.attempt.fallback"] is True and last["llmesh.attempt.winner"] is True
    assert not any((s.attributes or {})["llmesh.attempt.winner"] for s in attempts[:-1])


def test_a_failed_call_carries_its_trace_to_the_caller(
    traced_mesh: Mesh, spans: MemorySpans
) -> None:
    traced_mesh.set_fault("broken", "bad_request")
    reply = _chat(traced_mesh, "emulator/broken")
    assert reply.status_code == 400
    assert reply.headers["traceparent"].split("-")[1] == CALLER_TRACE
    assert reply.headers["x-request-id"]
    ended = {
        (SpanKind.SERVER, "POST /v1/chat/completions"),
        (SpanKind.SERVER, "/llmesh.v1.OrchestratorService/Chat"),
    }
    # the orchestrator's server span may end a moment after the caller has its reply (the
    # gateway's client span of the same name, before it)
    found = _wait(spans, lambda f: ended <= {(s.kind, s.name) for s in f})
    server = _one(found, SpanKind.SERVER, "/llmesh.v1.OrchestratorService/Chat")
    # INVALID_ARGUMENT is the caller's fault: no error status on a server span (gRPC semconv)
    assert (server.attributes or {})[
        "rpc.grpc.status_code"
    ] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert server.status.status_code is not StatusCode.ERROR
    # the call's failure reason is on it all the same
    assert (server.attributes or {})["error.type"] == "UPSTREAM_INVALID_REQUEST"
    (attempt,) = _attempts(found)
    assert attempt.status.status_code is StatusCode.ERROR


def _stream(mesh: Mesh, model: str) -> httpx.Response:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(
        f"{mesh.gateway_url}/v1/chat/completions",
        json=body,
        headers={"traceparent": TRACEPARENT},
        timeout=30,
    )


def test_a_streamed_call_gets_a_server_span_with_an_ok_status(
    traced_mesh: Mesh, spans: MemorySpans
) -> None:
    reply = _stream(traced_mesh, "emulator/echo")
    assert reply.status_code == 200 and "[DONE]" in reply.text
    name = "/llmesh.v1.OrchestratorService/StreamChat"
    found = _wait(spans, lambda f: any(s.name.startswith("POST") for s in f))
    server = _one(found, SpanKind.SERVER, name)
    assert server.status.status_code is not StatusCode.ERROR
    assert (server.attributes or {})["rpc.grpc.status_code"] == 0
    assert _parent(server) == _id(_one(found, SpanKind.CLIENT, name))
    assert (server.attributes or {})["llmesh.model"] == "emulator/echo"
    (attempt,) = _attempts(found)
    assert _parent(attempt) == _id(server)


def test_a_failed_stream_gets_a_server_span_with_an_error_status(
    traced_mesh: Mesh, spans: MemorySpans
) -> None:
    traced_mesh.set_fault("cut-short", "cut", after=1)
    reply = _stream(traced_mesh, "emulator/cut-short")
    assert '"error"' in reply.text  # the stream ended with an error event, not [DONE]
    name = "/llmesh.v1.OrchestratorService/StreamChat"
    found = _wait(spans, lambda f: any(s.name.startswith("POST") for s in f))
    server = _one(found, SpanKind.SERVER, name)
    assert server.status.status_code is StatusCode.ERROR
    assert (server.attributes or {})["rpc.grpc.status_code"] != 0
    assert (server.attributes or {})["error.type"] == "STREAM_INTERRUPTED"
    attempts = _attempts(found)
    assert attempts and all(a.status.status_code is StatusCode.ERROR for a in attempts)


async def test_a_grpc_error_carries_the_calls_traceparent_in_its_trailers(
    traced_mesh: Mesh, spans: MemorySpans
) -> None:
    traced_mesh.set_fault("broken", "bad_request")
    inp = chat_pb2.ChatInput(model="emulator/broken")
    inp.messages.add(role=chat_pb2.ROLE_USER, content="hi")
    async with grpc.aio.insecure_channel(traced_mesh.orchestrator_address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Chat(
                orchestrator_pb2.ChatRequest(input=inp),
                metadata=(("traceparent", TRACEPARENT),),
                timeout=10,
            )
    trailers = dict(info.value.trailing_metadata() or ())
    trace_id, span_id = str(trailers["traceparent"]).split("-")[1:3]
    assert trace_id == CALLER_TRACE
    found = _wait(spans, lambda f: any(s.kind is SpanKind.SERVER for s in f))
    assert span_id == _id(_one(found, SpanKind.SERVER, "/llmesh.v1.OrchestratorService/Chat"))


def test_health_checks_get_no_spans_and_the_calls_beside_them_do(
    traced_mesh: Mesh, spans: MemorySpans
) -> None:
    inp = chat_pb2.ChatInput(model="emulator/echo")
    inp.messages.add(role=chat_pb2.ROLE_USER, content="hi")
    context = (("traceparent", TRACEPARENT),)
    with grpc.insecure_channel(traced_mesh.orchestrator_address) as channel:
        check = health_pb2.HealthCheckRequest(service="llmesh.v1.OrchestratorService")
        reply = health_pb2_grpc.HealthStub(channel).Check(check, metadata=context, timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        stub.Chat(orchestrator_pb2.ChatRequest(input=inp), metadata=context, timeout=10)
    # the gateway checks the orchestrator's and processor's health over its traced channels;
    # the probe itself, the liveness probe and the metrics scrape get no span either
    for probe in ("/readyz", "/healthz", "/metrics"):  # /metrics: 404 here, metrics are off
        reply = httpx.get(f"{traced_mesh.gateway_url}{probe}", timeout=10)
        assert reply.status_code in (200, 404) and "traceparent" not in reply.headers, probe
    found = _wait(spans, lambda f: any(s.name == "chat echo" for s in f))
    _one(found, SpanKind.SERVER, "/llmesh.v1.OrchestratorService/Chat")
    # a traced request after them: once its span has ended, theirs would have too
    assert "traceparent" in httpx.get(f"{traced_mesh.gateway_url}/v1/models", timeout=10).headers
    deadline = time.monotonic() + 10
    while "GET /v1/models" not in (names := {s.name for s in spans.get_finished_spans()}):
        assert time.monotonic() < deadline, names
        time.sleep(0.02)
    assert not [n for n in names if "grpc.health" in n], names
    assert not [n for n in names if n.startswith("GET /") and n != "GET /v1/models"], names


def test_an_embeddings_call_has_an_embeddings_attempt_span(
    traced_mesh: Mesh, spans: MemorySpans
) -> None:
    reply = httpx.post(
        f"{traced_mesh.gateway_url}/v1/embeddings",
        json={"model": "openai/text-embedding-3-small", "input": ["a", "b"], "dimensions": 8},
        headers={"traceparent": TRACEPARENT},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    found = _wait(spans, lambda f: any(s.name.startswith("POST") for s in f))
    (attempt,) = [s for s in found if s.name == "embeddings text-embedding-3-small"]
    assert attempt.kind is SpanKind.CLIENT
    server = _one(found, SpanKind.SERVER, "/llmesh.v1.OrchestratorService/Embed")
    assert _parent(attempt) == _id(server)
    assert (server.attributes or {})["llmesh.model"] == "openai/text-embedding-3-small"
    attrs = dict(attempt.attributes or {})
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.embeddings.dimension.count"] == 8
    assert attrs["gen_ai.usage.input_tokens"] > 0
    assert attrs["llmesh.attempt.winner"] is True
    (seen,) = _received(traced_mesh)
    assert seen["path"] == "/v1/embeddings"
    assert seen["traceparent"].split("-")[2] == _id(attempt)


def test_a_hedge_is_its_own_span_and_the_loser_is_no_winner(
    traced_mesh: Mesh, spans: MemorySpans
) -> None:
    traced_mesh.set_fault("slow-start", "stall", after=0, stall_ms=5000)
    reply = _chat(traced_mesh, "hedged")
    assert reply.status_code == 200, reply.text
    found = _wait(spans, lambda f: len(_attempts(f)) >= 2)
    slow, hedge = _attempts(found)
    assert slow.name == "chat slow-start" and hedge.name == "chat echo"
    assert (hedge.attributes or {})["llmesh.attempt.hedged"] is True
    assert (hedge.attributes or {})["llmesh.attempt.winner"] is True
    assert (slow.attributes or {})["llmesh.attempt.outcome"] == "cancelled"
    assert (slow.attributes or {})["llmesh.attempt.winner"] is False
    assert slow.status.status_code is not StatusCode.ERROR
    assert _parent(slow) == _parent(hedge)


def test_council_branches_each_get_a_call_span_with_their_attempts(
    traced_mesh: Mesh, spans: MemorySpans
) -> None:
    request = {
        "input": {"messages": [{"role": "ROLE_USER", "content": "pick a number"}]},
        "members": [{"name": "a", "model": "emulator/echo"}, {"name": "b", "model": "fast"}],
    }
    reply = httpx.post(
        f"{traced_mesh.gateway_url}/api/v1/council/stream",
        json=request,
        headers={"traceparent": TRACEPARENT},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    found = _wait(spans, lambda f: any(s.name.startswith("POST") for s in f))
    server = _one(found, SpanKind.SERVER, "/llmesh.v1.OrchestratorService/StreamCouncil")
    branches = [s for s in found if s.kind is SpanKind.INTERNAL and s.name.startswith("call ")]
    assert sorted(s.name for s in branches) == ["call emulator/echo", "call fast"]
    request_ids = set()
    for branch in branches:
        assert _parent(branch) == _id(server)
        (attempt,) = [s for s in _attempts(found) if _parent(s) == _id(branch)]
        assert (attempt.attributes or {})["llmesh.attempt.winner"] is True
        request_ids.add((branch.attributes or {})["llmesh.request_id"])
    assert len(request_ids) == 2  # each branch's own facts


def _ledger_trace_id(mesh: Mesh, request_id: str) -> str:
    """The trace id the ledger keeps for `request_id`, once its record is written."""
    deadline = time.monotonic() + 10
    while True:
        r = httpx.get(f"{mesh.gateway_url}/api/v1/calls", params={"request_id": request_id})
        assert r.status_code == 200, r.text
        calls = r.json().get("calls", [])
        if calls or time.monotonic() > deadline:
            assert calls, f"{request_id} never reached the ledger"
            trace_id: str = calls[0].get("traceId", "")
            return trace_id
        time.sleep(0.05)


def test_the_ledger_keeps_each_calls_trace_id(traced_mesh: Mesh) -> None:
    # the caller's trace, continued
    reply = _chat(traced_mesh, "openai/gpt-4o-mini")
    assert reply.status_code == 200, reply.text
    assert _ledger_trace_id(traced_mesh, reply.headers["x-request-id"]) == CALLER_TRACE
    # no traceparent: the trace the gateway started, the one its reply names
    reply = httpx.post(
        f"{traced_mesh.gateway_url}/v1/chat/completions",
        json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    started = reply.headers["traceparent"].split("-")[1]
    assert started != CALLER_TRACE
    assert _ledger_trace_id(traced_mesh, reply.headers["x-request-id"]) == started
