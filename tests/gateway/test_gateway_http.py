"""The HTTP edge: malformed input, limits, routing errors, and clients that go away."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from llmesh.gateway import RunningGateway
from tests.gateway.fakes import FakeMesh

NATIVE_POSTS = [
    "/api/v1/chat",
    "/api/v1/chat/stream",
    "/api/v1/tokens/count",
    "/api/v1/context/fit",
]
ALL_POSTS = [*NATIVE_POSTS, "/v1/chat/completions"]


async def assert_still_serving(http: httpx.AsyncClient) -> None:
    r = await http.get("/api/v1/models")
    assert r.status_code == 200


def error_of(r: httpx.Response, path: str) -> dict[str, Any]:
    """The error object, checked against the shape the path's API uses."""
    assert r.headers["content-type"] == "application/json"
    error: dict[str, Any] = r.json()["error"]
    if path.startswith("/v1/"):
        assert set(error) == {"message", "type", "param", "code"}
    else:
        assert error["code"] == r.status_code
        assert {"status", "reason", "message", "metadata"} <= set(error)
    return error


@pytest.mark.parametrize("path", ALL_POSTS)
@pytest.mark.parametrize(
    "body", [b"{", b"not json", b"", b"\xff\xfe", b"[1, 2]", b'"text"', b"null"]
)
async def test_malformed_json_is_a_400(http: httpx.AsyncClient, path: str, body: bytes) -> None:
    r = await http.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    error = error_of(r, path)
    assert error.get("reason", error.get("code")).upper() == "INVALID_REQUEST"
    await assert_still_serving(http)


@pytest.mark.parametrize(
    "body",
    [
        {"input": {"model": 5}},
        {"input": {"messages": "hello"}},
        {"input": {"messages": [{"role": "ROLE_KING"}]}},
        {"input": {"maxTokens": "many"}},
        {"input": {"maxTokens": 2**40}},
        {"input": {"temperature": {"x": 1}}},
        {"input": {"unknownField": 1}},
        {"input": 5},
        {"nope": 1},
    ],
)
async def test_wrong_types_are_a_400(http: httpx.AsyncClient, body: Any) -> None:
    for path in ("/api/v1/chat", "/api/v1/chat/stream"):
        r = await http.post(path, json=body)
        assert r.status_code == 400, r.text
        error = error_of(r, path)
        assert error["reason"] == "INVALID_REQUEST"
        assert error["fieldViolations"]
    await assert_still_serving(http)


@pytest.mark.parametrize("path", ALL_POSTS)
async def test_an_oversized_body_is_a_413(http: httpx.AsyncClient, path: str) -> None:
    big = orjson.dumps({"model": "fake/text", "text": "x" * 70_000})
    r = await http.post(path, content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    error_of(r, path)

    async def chunked() -> AsyncIterator[bytes]:  # no content-length: counted while read
        for _ in range(10):
            yield b" " * 10_000

    r = await http.post(path, content=chunked())
    assert r.status_code == 413
    error_of(r, path)
    await assert_still_serving(http)


async def test_routing_errors_are_json(http: httpx.AsyncClient) -> None:
    r = await http.get("/api/v1/nothing")
    assert r.status_code == 404
    assert error_of(r, "/api")["status"] == "NOT_FOUND"
    r = await http.get("/api/v1/chat")
    assert r.status_code == 405
    assert error_of(r, "/api")["status"] == "UNIMPLEMENTED"
    assert r.headers["allow"] == "POST"
    r = await http.post("/v1/audio/speech", json={})
    assert r.status_code == 404
    assert error_of(r, "/v1/")["type"] == "not_found_error"
    r = await http.delete("/v1/chat/completions")
    assert r.status_code == 405
    error_of(r, "/v1/")
    await assert_still_serving(http)


async def test_a_non_ascii_authorization_header_is_rejected(http: httpx.AsyncClient) -> None:
    body = {"input": {"model": "fake/text", "messages": [{"role": 2, "content": "hi"}]}}
    r = await http.post("/api/v1/chat", json=body, headers={"authorization": b"Bearer \xe9"})
    assert r.status_code == 400
    assert r.json()["error"]["fieldViolations"][0]["field"] == "authorization"


# --- clients that disconnect ----------------------------------------------------------

STREAM_BODY = {"input": {"model": "fake/slow", "messages": [{"role": 2, "content": "hi"}]}}


async def test_closing_an_sse_stream_cancels_the_grpc_call(
    http: httpx.AsyncClient, fake_mesh: FakeMesh
) -> None:
    async with http.stream("POST", "/api/v1/chat/stream", json=STREAM_BODY) as r:
        async for line in r.aiter_lines():
            if "tick" in line:
                break
    await asyncio.wait_for(fake_mesh.orchestrator.cancelled.wait(), 5.0)
    await assert_still_serving(http)


async def test_closing_an_openai_stream_cancels_the_grpc_call(
    http: httpx.AsyncClient, fake_mesh: FakeMesh
) -> None:
    body = {"model": "fake/slow", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with http.stream("POST", "/v1/chat/completions", json=body) as r:
        async for line in r.aiter_lines():
            if "tick" in line:
                break
    await asyncio.wait_for(fake_mesh.orchestrator.cancelled.wait(), 5.0)


async def _send_and_hang_up(
    gateway: RunningGateway, fake_mesh: FakeMesh, path: str, body: Any
) -> None:
    """Send a request, wait until it reached the upstream, then drop the connection."""
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    payload = orjson.dumps(body)
    writer.write(
        f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    await writer.drain()
    await asyncio.wait_for(fake_mesh.orchestrator.called.wait(), 5.0)
    writer.close()
    await writer.wait_closed()
    await asyncio.wait_for(fake_mesh.orchestrator.cancelled.wait(), 5.0)
    assert await reader.read() == b""  # nothing was answered


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/chat/stream", {"input": {"model": "fake/slow-start"}}),
        ("/api/v1/chat", {"input": {"model": "fake/slow-start"}}),
        (
            "/v1/chat/completions",
            {"model": "fake/slow-start", "messages": [{"role": "user", "content": "x"}]},
        ),
        (
            "/v1/chat/completions",
            {
                "model": "fake/slow-start",
                "messages": [{"role": "user", "content": "x"}],
                "stream": True,
            },
        ),
    ],
)
async def test_hanging_up_before_the_first_event_cancels_the_grpc_call(
    gateway: RunningGateway, fake_mesh: FakeMesh, path: str, body: Any
) -> None:
    await _send_and_hang_up(gateway, fake_mesh, path, body)


@pytest.mark.parametrize("path", ["/api/v1/chat", "/v1/chat/completions"])
async def test_deeply_nested_json_is_a_400(http: httpx.AsyncClient, path: str) -> None:
    # A JSON Schema this deep would exceed protobuf's nesting limit as a Struct upstream.
    schema = '{"x":' * 40 + "{}" + "}" * 40
    if path.startswith("/v1/"):
        body = (
            '{"model": "fake/text", "messages": [{"role": "user", "content": "x"}], "tools": '
            '[{"type": "function", "function": {"name": "f", "parameters": ' + schema + "}}]}"
        )
    else:
        body = (
            '{"input": {"model": "fake/text", "tools": [{"name": "f", "parameters": '
            + schema
            + "}]}}"
        )
    r = await http.post(path, content=body.encode())
    assert r.status_code == 400
    assert "nested deeper" in r.text
    await assert_still_serving(http)


async def test_random_bodies_never_cause_a_500(http: httpx.AsyncClient) -> None:
    rnd = random.Random(7)
    atoms: list[Any] = [None, True, 0, -1, 1.5, "", "x", [], {}, 2**63 - 1, "user", "text"]
    keys = [
        "model", "messages", "role", "content", "tools", "tool_choice", "type", "function",
        "name", "parameters", "stop", "stream", "stream_options", "include_usage", "tool_calls",
        "max_tokens", "n", "seed", "metadata", "input", "maxTokens", "toolChoice", "mode", "text",
    ]  # fmt: skip

    def value(depth: int) -> Any:
        if depth > 4 or rnd.random() < 0.3:
            return rnd.choice(atoms)
        if rnd.random() < 0.5:
            return [value(depth + 1) for _ in range(rnd.randint(0, 3))]
        return {rnd.choice(keys): value(depth + 1) for _ in range(rnd.randint(0, 4))}

    statuses = set()
    for _ in range(120):
        body = value(0)
        if isinstance(body, dict) and rnd.random() < 0.5:
            body.update(model="fake/text", messages=[{"role": "user", "content": "x"}])
        for path in ("/v1/chat/completions", "/api/v1/chat", "/api/v1/context/fit"):
            r = await http.post(path, content=orjson.dumps(body))
            assert r.status_code < 500, (path, body, r.text)
            statuses.add(r.status_code)
    assert {200, 400} <= statuses
