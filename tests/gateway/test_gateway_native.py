"""The JSON mirror of the gRPC API: bodies, Server-Sent Events, errors, deadlines, health."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from llmesh.v1 import chat_pb2
from tests.gateway.fakes import FakeMesh

USER_HI = [{"role": "ROLE_USER", "content": "hi"}]


def chat_body(model: str, **extra: Any) -> dict[str, Any]:
    return {"input": {"model": model, "messages": USER_HI, **extra}}


def parse_sse(raw: str) -> list[tuple[str | None, Any]]:
    """(event name, decoded data) pairs of a Server-Sent Events body."""
    events = []
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = []
        for line in block.split("\n"):
            key, _, value = line.partition(": ")
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
        events.append((name, orjson.loads("\n".join(data))))
    return events


async def test_unary_chat_mirrors_the_reply(http: httpx.AsyncClient, fake_mesh: FakeMesh) -> None:
    r = await http.post("/api/v1/chat", json=chat_body("fake/text", max_tokens=7))
    assert r.status_code == 200
    body = r.json()
    assert body["requestId"] == "req-text"
    assert body["message"] == {"role": "ROLE_ASSISTANT", "content": "Hello, world"}
    assert body["finishReason"] == "FINISH_REASON_STOP"
    assert body["usage"]["inputTokens"] == "10"  # int64 is a string in protobuf JSON
    assert body["usage"]["cacheReadTokens"] == "3"
    assert fake_mesh.orchestrator.calls[-1].input.max_tokens == 7


async def test_camel_and_snake_case_input_are_both_accepted(
    http: httpx.AsyncClient, fake_mesh: FakeMesh
) -> None:
    camel = chat_body(
        "fake/text", maxTokens=3, topP=0.5, toolChoice={"mode": "TOOL_CHOICE_MODE_NONE"}
    )
    snake = chat_body("fake/text", max_tokens=3, top_p=0.5, tool_choice={"mode": 2})
    for body in (camel, snake):
        r = await http.post("/api/v1/chat", json=body)
        assert r.status_code == 200, r.text
        seen = fake_mesh.orchestrator.calls[-1].input
        assert (seen.max_tokens, seen.top_p) == (3, 0.5)
        assert seen.tool_choice.mode == chat_pb2.TOOL_CHOICE_MODE_NONE


async def test_stream_sends_every_event_in_order(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/chat/stream", json=chat_body("fake/text"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-request-id"] == "req-text"
    events = parse_sse(r.text)
    assert all(name is None for name, _ in events)
    kinds = [next(iter(data)) for _, data in events]
    assert kinds == ["start", "textDelta", "textDelta", "usage", "finish"]
    assert events[1][1] == {"textDelta": {"text": "Hello"}}
    assert events[-1][1]["finish"]["reason"] == "FINISH_REASON_STOP"


async def test_tool_call_events_are_mirrored(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/chat/stream", json=chat_body("fake/tools"))
    deltas = [d["toolCallDelta"] for _, d in parse_sse(r.text) if "toolCallDelta" in d]
    assert deltas[0] == {"id": "call_0", "name": "get_weather"}  # index 0 is a default value
    assert deltas[1] == {"argumentsDelta": '{"city":'}


@pytest.mark.parametrize("path", ["/api/v1/chat", "/api/v1/chat/stream"])
async def test_error_before_any_event_is_an_http_error(http: httpx.AsyncClient, path: str) -> None:
    r = await http.post(path, json=chat_body("fake/rate-limited"))
    assert r.status_code == 429
    assert r.headers["retry-after"] == "2"
    assert r.headers["x-should-retry"] == "true"
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "reason": "RATE_LIMITED",
            "message": "slow down",
            "retryAfter": 1.5,
            "metadata": {},
        }
    }


async def test_field_violations_and_not_found(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/chat", json=chat_body("fake/invalid"))
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["fieldViolations"] == [
        {"field": "input.messages[0].content", "description": "must not be empty"}
    ]
    assert "retry-after" not in r.headers
    r = await http.post("/api/v1/chat", json=chat_body("fake/nope"))
    assert r.status_code == 404
    assert r.json()["error"]["reason"] == "MODEL_NOT_FOUND"


async def test_error_mid_stream_is_an_error_event_without_finish(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/chat/stream", json=chat_body("fake/cut"))
    assert r.status_code == 200
    events = parse_sse(r.text)
    assert [next(iter(d)) for _, d in events[:-1]] == ["start", "textDelta"]
    name, data = events[-1]
    assert name == "error"
    assert data["error"]["reason"] == "STREAM_INTERRUPTED"
    assert data["error"]["code"] == 502
    assert not any("finish" in d for _, d in events)


async def test_stream_without_finish_is_passed_through_as_is(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/chat/stream", json=chat_body("fake/no-finish"))
    kinds = [next(iter(d)) for _, d in parse_sse(r.text)]
    assert kinds == ["start", "textDelta"]  # the gateway never invents a finish


async def test_models(http: httpx.AsyncClient) -> None:
    r = await http.get("/api/v1/models")
    assert r.status_code == 200
    models = r.json()["models"]
    assert {"name": "fake/text", "provider": "fake", "providerModel": "text"} in models


async def test_processor_endpoints(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/tokens/count", json={"model": "fake/x", "text": "one two three"})
    assert r.status_code == 200
    assert r.json() == {"tokens": "3", "tokenizer": "words", "exact": True}
    messages = [
        {"role": "ROLE_SYSTEM", "content": "be brief"},
        {"role": "ROLE_USER", "content": "a b c d e f"},
        {"role": "ROLE_USER", "content": "last"},
    ]
    r = await http.post(
        "/api/v1/context/fit", json={"model": "fake/x", "messages": messages, "maxTokens": 5}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["messages"] == [{"role": "ROLE_USER", "content": "last"}]
    assert body["droppedIndices"] == [0, 1]
    r = await http.post("/api/v1/tokens/count", json={"model": "fake/missing"})
    assert r.status_code == 404


async def test_timeout_header_becomes_the_grpc_deadline(
    http: httpx.AsyncClient, fake_mesh: FakeMesh
) -> None:
    r = await http.post(
        "/api/v1/chat", json=chat_body("fake/text"), headers={"x-llmesh-timeout": "5"}
    )
    assert r.status_code == 200
    remaining = fake_mesh.orchestrator.calls[-1].time_remaining
    # grpc rounds the wire timeout (grpc-timeout) up, so the server may see a little over 5 s.
    assert remaining is not None and 3 < remaining <= 5.1
    r = await http.post("/api/v1/chat", json=chat_body("fake/text"))
    assert fake_mesh.orchestrator.calls[-1].time_remaining is None


@pytest.mark.parametrize("path", ["/api/v1/chat", "/api/v1/chat/stream"])
async def test_an_expired_deadline_is_a_504(http: httpx.AsyncClient, path: str) -> None:
    r = await http.post(
        path, json=chat_body("fake/slow-start"), headers={"x-llmesh-timeout": "0.2"}
    )
    assert r.status_code == 504
    assert r.json()["error"]["reason"] == "DEADLINE_EXCEEDED"


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "inf"])
async def test_a_bad_timeout_header_is_rejected(http: httpx.AsyncClient, value: str) -> None:
    r = await http.post(
        "/api/v1/chat", json=chat_body("fake/text"), headers={"x-llmesh-timeout": value}
    )
    assert r.status_code == 400
    assert r.json()["error"]["fieldViolations"][0]["field"] == "x-llmesh-timeout"


async def test_authorization_is_forwarded_as_metadata(
    http: httpx.AsyncClient, fake_mesh: FakeMesh
) -> None:
    await http.post(
        "/api/v1/chat/stream",
        json=chat_body("fake/text"),
        headers={"authorization": "Bearer key-1"},
    )
    assert fake_mesh.orchestrator.calls[-1].metadata["authorization"] == "Bearer key-1"


async def test_healthz_follows_the_orchestrator_health(
    http: httpx.AsyncClient, fake_mesh: FakeMesh
) -> None:
    r = await http.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "SERVING"})
    await fake_mesh.set_orchestrator_serving(False)
    r = await http.get("/healthz")
    assert (r.status_code, r.json()) == (503, {"status": "NOT_SERVING"})
