"""The Messages API's edges against the fake upstream: the key forwarded, beta headers,
streamed tool calls, usage, errors before and after the stream started, and pings."""

from __future__ import annotations

import importlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import pytest

from llmesh.gateway import RunningGateway
from llmesh.services.common.errors import LlmeshError, Reason
from tests.gateway import fakes
from tests.gateway.fakes import FakeMesh

HI: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=gateway.url, api_key="sk-llmesh-1", max_retries=0, timeout=10
    ) as c:
        yield c


def _events(text: str) -> list[tuple[str, dict[str, Any]]]:
    out, name = [], ""
    for line in text.splitlines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            out.append((name, json.loads(line[6:])))
    return out


async def _stream(http: httpx.AsyncClient, model: str) -> tuple[int, str]:
    body = {"model": model, "max_tokens": 64, "messages": HI, "stream": True}
    async with http.stream("POST", "/v1/messages", json=body) as r:
        return r.status_code, (await r.aread()).decode()


async def test_x_api_key_is_forwarded_as_the_bearer_key(
    client: anthropic.AsyncAnthropic, fake_mesh: FakeMesh
) -> None:
    reply = await client.messages.create(model="fake/text", max_tokens=64, messages=HI)
    assert reply.content[0].text == "Hello, world"  # type: ignore[union-attr]
    assert reply.id == "msg_req-text" and reply._request_id == "req-text"
    seen = fake_mesh.orchestrator.calls[-1]
    assert seen.metadata["authorization"] == "Bearer sk-llmesh-1"
    assert seen.input.max_tokens == 64
    assert reply.usage.model_dump(include={"input_tokens", "output_tokens"}) == {
        "input_tokens": 10,
        "output_tokens": 5,
    }
    assert reply.usage.cache_read_input_tokens == 3
    assert reply.usage.cache_creation_input_tokens == 2


async def test_a_bearer_header_wins(http: httpx.AsyncClient, fake_mesh: FakeMesh) -> None:
    body = {"model": "fake/text", "max_tokens": 64, "messages": HI}
    headers = {"authorization": "Bearer sk-own", "x-api-key": "sk-other"}
    r = await http.post("/v1/messages", json=body, headers=headers)
    assert r.status_code == 200
    assert fake_mesh.orchestrator.calls[-1].metadata["authorization"] == "Bearer sk-own"


async def test_beta_headers_are_sent_on_as_beta_features(
    client: anthropic.AsyncAnthropic, fake_mesh: FakeMesh
) -> None:
    await client.messages.create(
        model="fake/text",
        max_tokens=64,
        messages=HI,
        extra_headers={"anthropic-beta": "context-1m-2025-08-07, interleaved-thinking-2025-05-14"},
    )
    assert list(fake_mesh.orchestrator.calls[-1].input.anthropic_beta) == [
        "context-1m-2025-08-07",
        "interleaved-thinking-2025-05-14",
    ]


async def test_streamed_tool_calls_become_tool_use_blocks(
    client: anthropic.AsyncAnthropic,
) -> None:
    async with client.messages.stream(model="fake/tools", max_tokens=64, messages=HI) as s:
        final = await s.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [(b.type, b.id, b.name, b.input) for b in final.content] == [  # type: ignore[union-attr]
        ("tool_use", "call_0", "get_weather", {"city": "Paris"}),
        ("tool_use", "call_1", "get_time", {"tz": "CET"}),
    ]


async def test_an_error_before_the_stream_is_an_http_error(
    client: anthropic.AsyncAnthropic,
) -> None:
    with pytest.raises(anthropic.RateLimitError) as info:
        async with client.messages.stream(
            model="fake/rate-limited", max_tokens=64, messages=HI
        ) as s:
            await s.get_final_message()
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


@pytest.mark.parametrize("model", ["fake/cut", "fake/no-finish"])
async def test_a_cut_stream_ends_with_an_error_event(http: httpx.AsyncClient, model: str) -> None:
    status, text = await _stream(http, model)
    events = _events(text)
    assert status == 200
    assert [n for n, _ in events][-1] == "error"
    assert "message_stop" not in [n for n, _ in events]
    assert events[-1][1] == {
        "type": "error",
        "error": {"type": "api_error", "message": events[-1][1]["error"]["message"]},
    }


async def test_errors_on_unknown_fields_and_routes_are_anthropic_shaped(
    http: httpx.AsyncClient,
) -> None:
    r = await http.post("/v1/messages", json={"model": "fake/text", "max_tokens": 5, "x": 1})
    assert r.status_code == 400
    assert r.json() == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "x: is not a supported field of this request",
        },
    }
    r = await http.get("/v1/messages")
    assert r.status_code == 405 and r.json()["type"] == "error"
    r = await http.post("/v1/messages", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


async def test_message_start_counts_the_input_when_no_usage_comes_first(
    http: httpx.AsyncClient, fake_mesh: FakeMesh
) -> None:
    body = {"model": "fake/text", "max_tokens": 64, "messages": HI, "stream": True}
    key = {"x-api-key": "sk-llmesh-1"}
    async with http.stream("POST", "/v1/messages", json=body, headers=key) as r:
        text = (await r.aread()).decode()  # the fake's usage arrives after its text
    (start,) = [d for n, d in _events(text) if n == "message_start"]
    (delta,) = [d for n, d in _events(text) if n == "message_delta"]
    assert start["message"]["usage"]["input_tokens"] == 4  # "hi" and 3 framing: the processor's
    assert delta["usage"]["input_tokens"] == 10  # the final usage, as the target reported it
    model, metadata = fake_mesh.processor.counted[-1]
    assert model == "fake/fake/text"  # the start event's target: provider/model
    assert metadata["authorization"] == "Bearer sk-llmesh-1"  # the caller's key


async def test_count_tokens_asks_the_processor(client: anthropic.AsyncAnthropic) -> None:
    counted = await client.messages.count_tokens(
        model="fake/text", messages=[{"role": "user", "content": "one two three"}]
    )
    assert counted.input_tokens == 6  # the fake processor's: three words and three framing


async def test_count_tokens_takes_the_targets_count_else_estimates(
    client: anthropic.AsyncAnthropic,
) -> None:
    messages: Any = [{"role": "user", "content": "one two three"}]
    exact = await client.messages.count_tokens(model="fake/count-exact", messages=messages)
    down = await client.messages.count_tokens(model="fake/count-down", messages=messages)
    assert (exact.input_tokens, down.input_tokens) == (42, 6)  # an outage: the estimate
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.count_tokens(model="fake/count-refused", messages=messages)


async def test_models_in_anthropic_shape(client: anthropic.AsyncAnthropic) -> None:
    page = await client.models.list()
    assert page.data and page.first_id == page.data[0].id and page.last_id == page.data[-1].id
    assert page.has_more is False
    with pytest.raises(anthropic.NotFoundError):
        await client.models.retrieve("nothing/here")


async def test_a_quiet_upstream_gets_pings(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    routes = importlib.import_module("llmesh.gateway.anthropic.routes")
    monkeypatch.setattr(routes, "PING_INTERVAL", 0.05)
    names: list[str] = []
    body = {"model": "fake/slow", "max_tokens": 64, "messages": HI, "stream": True}
    async with http.stream("POST", "/v1/messages", json=body) as r:
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                names.append(line[7:])
            if names.count("ping") == 3:
                break  # the upstream stays silent for a minute: two pings besides the first
    assert names[:2] == ["message_start", "ping"]
    assert names[2:5] == ["content_block_start", "content_block_delta", "ping"]


async def test_no_ping_after_the_finish(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    routes = importlib.import_module("llmesh.gateway.anthropic.routes")
    monkeypatch.setattr(routes, "PING_INTERVAL", 0.01)
    _, text = await _stream(http, "fake/linger")  # its stream ends 0.3 s after its finish
    assert [n for n, _ in _events(text)][-2:] == ["message_delta", "message_stop"]


@pytest.mark.parametrize(
    ("reason", "status", "kind", "exception"),
    [
        (Reason.INVALID_REQUEST, 400, "invalid_request_error", anthropic.BadRequestError),
        (Reason.UNAUTHENTICATED, 401, "authentication_error", anthropic.AuthenticationError),
        (Reason.PERMISSION_DENIED, 403, "permission_error", anthropic.PermissionDeniedError),
        (Reason.MODEL_NOT_FOUND, 404, "not_found_error", anthropic.NotFoundError),
        (Reason.BUDGET_EXCEEDED, 429, "rate_limit_error", anthropic.RateLimitError),
        (Reason.INTERNAL, 500, "api_error", anthropic.InternalServerError),
        (Reason.UPSTREAM_UNAVAILABLE, 502, "api_error", anthropic.InternalServerError),
        (Reason.UPSTREAM_TIMEOUT, 504, "timeout_error", anthropic.InternalServerError),
        (Reason.OVERLOADED, 529, "overloaded_error", anthropic.OverloadedError),
    ],
)
async def test_reasons_map_to_anthropic_statuses_types_and_sdk_classes(
    client: anthropic.AsyncAnthropic,
    monkeypatch: pytest.MonkeyPatch,
    reason: Reason,
    status: int,
    kind: str,
    exception: type[anthropic.APIStatusError],
) -> None:
    monkeypatch.setitem(fakes.SCRIPTS, "fake/failing", [LlmeshError(reason, "it failed")])
    with pytest.raises(exception) as info:
        await client.messages.create(model="fake/failing", max_tokens=64, messages=HI)
    assert info.value.status_code == status
    assert info.value.body == {"type": "error", "error": {"type": kind, "message": "it failed"}}


async def test_an_overload_after_the_start_is_an_overloaded_error_event(
    client: anthropic.AsyncAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = [
        fakes.start_event("fake/overloaded-later"),
        fakes.text("partial"),
        LlmeshError(Reason.OVERLOADED, "upstream overloaded"),
    ]
    monkeypatch.setitem(fakes.SCRIPTS, "fake/overloaded-later", script)
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        async with client.messages.stream(
            model="fake/overloaded-later", max_tokens=64, messages=HI
        ) as stream:
            async for text in stream.text_stream:
                seen.append(text)
    assert seen == ["partial"]
    assert info.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "upstream overloaded"},
    }
