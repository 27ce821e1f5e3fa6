"""Structured output to Anthropic: native ``output_config.format`` where the model and the
schema allow it, else the forced ``json_response`` tool; both transports against a
recording emulator."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import jsonschema
import orjson
import pytest
from aiohttp import web

from llmesh.services.common.config import ConfigError, ProviderConfig, ResolvedProvider, load_config
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import (
    ChatRequest,
    FinishReason,
    Message,
    ResponseFormat,
    ResponseFormatType,
    Role,
)
from llmesh.services.core.events import Finish, ProviderEvent, TextDelta, ToolCallDelta
from llmesh.services.emulator.app import create_app
from llmesh.services.emulator.settings import EmulatorSettings
from llmesh.services.orchestrator.providers import anthropic_sdk, lean
from llmesh.services.orchestrator.providers.anthropic_structured import (
    STRUCTURED_TOOL,
    OutputPath,
    native_schema,
    output_path,
)
from llmesh.services.orchestrator.providers.anthropic_wire import to_provider_request
from llmesh.services.orchestrator.providers.base import Provider

NATIVE = "claude-haiku-4-5"
OLD = "claude-3-haiku-20240307"  # no native structured output

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "where"},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "days": {"type": "array", "items": {"$ref": "#/$defs/day"}, "minItems": 1},
        "note": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
    },
    "required": ["city", "unit", "days"],
    "$defs": {
        "day": {
            "type": "object",
            "properties": {"high": {"type": "number"}, "rain": {"type": "boolean"}},
            "required": ["high", "rain"],
        }
    },
}
CLOSED: dict[str, Any] = {
    **SCHEMA,
    "additionalProperties": False,
    "$defs": {"day": {**SCHEMA["$defs"]["day"], "additionalProperties": False}},
}


def _request(schema: dict[str, Any] | None = SCHEMA, *more: Message) -> ChatRequest:
    fmt = (
        ResponseFormat(ResponseFormatType.JSON_SCHEMA, "forecast", schema)
        if schema is not None
        else ResponseFormat(ResponseFormatType.JSON_OBJECT)
    )
    return ChatRequest((Message(Role.USER, "Weather in Oslo"), *more), response_format=fmt)


# ---------------------------------------------------------------------------------------
# Which path, and what is sent


def test_a_supported_schema_is_sent_closed_and_otherwise_unchanged() -> None:
    assert native_schema(SCHEMA) == CLOSED
    assert native_schema(CLOSED) == CLOSED
    annotated = {**CLOSED, "$schema": "https://json-schema.org/draft/2020-12/schema"}
    assert native_schema(annotated) == CLOSED


def _with(**prop: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"p": prop}}


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "array", "items": {"type": "string"}},  # the root must be an object
        _with(type="integer", minimum=1),
        _with(type="string", maxLength=3),
        _with(type="array", items={"type": "string"}, minItems=2),
        _with(type="array", items={"type": "string"}, maxItems=2),
        _with(type="string", format="color"),
        _with(type="string", pattern=r"^(?!x)"),
        _with(oneOf=[{"type": "string"}, {"type": "integer"}]),
        _with(type="object", additionalProperties=True),
        _with(type="object", additionalProperties={"type": "string"}),
        _with(enum=[{"a": 1}]),
        _with(),  # constrains nothing
        _with(**{"$ref": "https://example.com/schema.json"}),
        {
            "type": "object",
            "properties": {"tree": {"$ref": "#/$defs/node"}},
            "$defs": {
                "node": {
                    "type": "object",
                    "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                }
            },
        },
        {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(25)}},
    ],
)
def test_schemas_outside_the_native_subset_take_the_tool(schema: dict[str, Any]) -> None:
    assert native_schema(schema) is None
    assert output_path("auto", NATIVE, _request(schema)) is OutputPath.TOOL


def test_the_path_follows_the_setting_the_model_and_the_format() -> None:
    assert output_path("auto", NATIVE, _request()) is OutputPath.NATIVE
    assert output_path("auto", "claude-opus-4-6-20260101", _request()) is OutputPath.NATIVE
    assert output_path("auto", OLD, _request()) is OutputPath.TOOL
    assert output_path("native", OLD, _request()) is OutputPath.NATIVE
    assert output_path("tool", NATIVE, _request()) is OutputPath.TOOL
    assert output_path("auto", NATIVE, _request(None)) is OutputPath.TOOL  # json_object
    prefill = Message(Role.ASSISTANT, '{"city": ')
    assert output_path("native", NATIVE, _request(SCHEMA, prefill)) is OutputPath.TOOL
    assert output_path("auto", NATIVE, ChatRequest((Message(Role.USER, "hi"),))) is None


def test_the_native_body_carries_output_config_and_no_tool() -> None:
    body = to_provider_request(NATIVE, _request(), structured_output="auto")
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": CLOSED}}
    assert "tools" not in body and "tool_choice" not in body
    body = to_provider_request(OLD, _request(), structured_output="auto")
    assert "output_config" not in body
    assert [t["name"] for t in body["tools"]] == [STRUCTURED_TOOL]
    assert body["tools"][0]["input_schema"] == SCHEMA  # the tool takes the schema as it is


def test_structured_output_setting_is_checked_at_load(tmp_path: Any) -> None:
    path = tmp_path / "llmesh.yaml"
    path.write_text("providers:\n  anthropic:\n    structured_output: tool\n")
    assert load_config(str(path), env={}).providers["anthropic"].structured_output == "tool"
    assert ProviderConfig("a", "anthropic").structured_output == "auto"
    path.write_text("providers:\n  anthropic:\n    structured_output: json\n")
    with pytest.raises(ConfigError, match=r"providers\.anthropic\.structured_output: 'json'"):
        load_config(str(path), env={})


# ---------------------------------------------------------------------------------------
# Both transports against the emulator


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """The emulator, keeping the JSON body of each ``/v1/messages`` request."""
    seen: list[dict[str, Any]] = []

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == "/v1/messages":
            seen.append(orjson.loads(await request.read()))
        return await handler(request)

    app = create_app(EmulatorSettings(host="127.0.0.1", port=0))
    app.middlewares.append(record)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def _provider(url: str, transport: str, mode: str = "auto") -> Provider:
    cfg = ProviderConfig("anthropic", "anthropic", timeout=10.0, structured_output=mode)
    resolved = ResolvedProvider(cfg, url, "sk-ant-test", True)
    return (
        lean.anthropic_factory(resolved) if transport == "lean" else anthropic_sdk.factory(resolved)
    )


async def _events(provider: Provider, model: str, request: ChatRequest) -> list[ProviderEvent]:
    events: list[ProviderEvent] = []
    try:
        async with contextlib.aclosing(provider.stream(model, request, timeout=10)) as stream:
            async for event in stream:
                events.append(event)
    finally:
        await provider.aclose()
    return events


def _reply(events: list[ProviderEvent]) -> tuple[Any, Finish]:
    assert not any(isinstance(e, ToolCallDelta) for e in events)
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason is FinishReason.STOP
    value = json.loads("".join(e.text for e in events if isinstance(e, TextDelta)))
    jsonschema.validate(value, SCHEMA)
    return value, finish


@pytest.mark.parametrize("transport", ["lean", "sdk"])
async def test_a_supporting_model_gets_output_config_and_streams_json_text(
    upstream: tuple[str, list[dict[str, Any]]], transport: str
) -> None:
    url, seen = upstream
    events = await _events(_provider(url, transport), NATIVE, _request())
    (body,) = seen
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": CLOSED}}
    assert "tools" not in body and "tool_choice" not in body
    value, finish = _reply(events)
    assert finish.provider_reason == "end_turn"  # a text reply, no tool call to unwrap
    assert value["city"] == "Weather in Oslo"


@pytest.mark.parametrize("transport", ["lean", "sdk"])
async def test_other_models_and_the_tool_setting_get_the_forced_tool(
    upstream: tuple[str, list[dict[str, Any]]], transport: str
) -> None:
    url, seen = upstream
    old = await _events(_provider(url, transport), OLD, _request())
    forced = await _events(_provider(url, transport, "tool"), NATIVE, _request())
    for body, events in zip(seen, (old, forced), strict=True):
        assert "output_config" not in body
        assert body["tool_choice"] == {"type": "tool", "name": STRUCTURED_TOOL}
        _, finish = _reply(events)
        assert finish.provider_reason == "tool_use"


@pytest.mark.parametrize("transport", ["lean", "sdk"])
async def test_native_setting_on_a_model_without_it_is_the_upstream_refusal(
    upstream: tuple[str, list[dict[str, Any]]], transport: str
) -> None:
    url, seen = upstream
    with pytest.raises(LlmeshError) as info:
        await _events(_provider(url, transport, "native"), OLD, _request())
    assert "output_config" in seen[0]
    assert info.value.reason is Reason.UPSTREAM_INVALID_REQUEST
    assert f"'{OLD}' does not support output_config.format" in info.value.message


async def test_both_transports_send_the_same_native_body(
    upstream: tuple[str, list[dict[str, Any]]],
) -> None:
    url, seen = upstream
    lean_events = await _events(_provider(url, "lean"), NATIVE, _request())
    sdk_events = await _events(_provider(url, "sdk"), NATIVE, _request())
    lean_body, sdk_body = seen
    assert lean_body.pop("stream") is sdk_body.pop("stream") is True
    assert lean_body == sdk_body
    assert _reply(lean_events) == _reply(sdk_events)
