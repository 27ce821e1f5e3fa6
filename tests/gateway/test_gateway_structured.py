"""Structured output through the whole path: the official openai SDK, the gateway, the
orchestrator and the emulator (its OpenAI API natively; its Anthropic API natively for a
model and schema that allow it, else by a forced tool: `SCHEMA`'s bounds take the tool)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pydantic
import pytest

from tests.support.mesh import Mesh

MODELS = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "days": {"type": "integer", "minimum": 1},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "hours": {"type": "array", "items": {"type": "number"}, "minItems": 2},
        "where": {
            "type": "object",
            "properties": {"lat": {"type": "number"}, "exact": {"type": "boolean"}},
            "required": ["lat", "exact"],
            "additionalProperties": False,
        },
    },
    "required": ["city", "days", "unit", "hours", "where"],
    "additionalProperties": False,
}


class Forecast(pydantic.BaseModel):
    city: str
    days: int
    warm: bool


def _client(mesh: Mesh) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{mesh.gateway_url}/v1", api_key="unused", max_retries=0)


def _format(schema: dict[str, Any]) -> Any:
    return {"type": "json_schema", "json_schema": {"name": "forecast", "schema": schema}}


@pytest.mark.parametrize("model", MODELS)
async def test_json_schema_reply_is_valid_json_of_the_schema(mesh: Mesh, model: str) -> None:
    messages: Any = [{"role": "user", "content": "Weather in Oslo"}]
    async with _client(mesh) as client:
        whole = await client.chat.completions.create(
            model=model, messages=messages, response_format=_format(SCHEMA)
        )
        stream = await client.chat.completions.create(
            model=model, messages=messages, response_format=_format(SCHEMA), stream=True
        )
        chunks = [c async for c in stream]
    choice = whole.choices[0]
    assert choice.finish_reason == "stop" and not choice.message.tool_calls
    jsonschema.validate(json.loads(choice.message.content or ""), SCHEMA)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == json.loads(choice.message.content or "")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)


@pytest.mark.parametrize("model", MODELS)
async def test_json_object_reply_is_an_object(mesh: Mesh, model: str) -> None:
    async with _client(mesh) as client:
        reply = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "answer in JSON"}],
            response_format={"type": "json_object"},
        )
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


@pytest.mark.parametrize("model", MODELS)
async def test_sdk_parse_returns_the_parsed_model(mesh: Mesh, model: str) -> None:
    async with _client(mesh) as client:
        completion = await client.chat.completions.parse(
            model=model,
            messages=[{"role": "user", "content": "Forecast for Oslo"}],
            response_format=Forecast,
        )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Forecast)
    assert parsed.city == "Forecast for Oslo" and parsed.days == 0 and parsed.warm is False


async def test_reply_failing_the_schema_is_a_422_in_openai_shape(mesh: Mesh) -> None:
    # the emulator does not generate patterns: its "model" cannot satisfy this schema
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^[0-9]{3}$"}},
        "required": ["code"],
    }
    async with _client(mesh) as client:
        with pytest.raises(openai.UnprocessableEntityError) as raised:
            await client.chat.completions.create(
                model="openai/gpt-4o-mini",
                messages=[{"role": "user", "content": "a code"}],
                response_format=_format(schema),
                extra_body={"schema_repair_attempts": 1},
            )
    error = raised.value.body
    assert isinstance(error, dict)
    assert error["code"] == "schema_validation_failed"
    assert error["type"] == "invalid_request_error"
    assert "does not match" in error["message"]


async def test_streamed_reply_failing_the_schema_ends_with_an_error(mesh: Mesh) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "string", "pattern": "^x$"}}}
    async with _client(mesh) as client:
        stream = await client.chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "a code"}],
            response_format=_format(schema),
            stream=True,
        )
        seen: list[str] = []
        with pytest.raises(openai.APIError) as raised:
            async for chunk in stream:
                if chunk.choices:
                    seen.append(chunk.choices[0].delta.content or "")
                    assert chunk.choices[0].finish_reason is None
    assert "".join(seen) == '{"n":"a code"}'  # streamed as it came, then refused
    assert "schema" in str(raised.value).lower() or "format" in str(raised.value).lower()


NATIVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "hours": {"type": "array", "items": {"type": "number"}},
        "where": {"type": "object", "properties": {"lat": {"type": "number"}}},
    },
    "required": ["city", "hours", "where"],
}


@pytest.mark.parametrize(
    ("model", "native"),
    [("anthropic/claude-haiku-4-5", True), ("anthropic/claude-3-haiku-20240307", False)],
)
async def test_anthropic_native_or_tool_path_by_model(mesh: Mesh, model: str, native: bool) -> None:
    messages: Any = [{"role": "user", "content": f"Weather native={native}"}]
    async with _client(mesh) as client:
        reply = await client.chat.completions.create(
            model=model, messages=messages, response_format=_format(NATIVE_SCHEMA)
        )
        stream = await client.chat.completions.create(
            model=model,
            messages=messages,
            response_format=_format(NATIVE_SCHEMA),
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
        plain = await client.chat.completions.create(model=model, messages=messages)
    choice = reply.choices[0]
    assert choice.finish_reason == "stop" and not choice.message.tool_calls
    value = json.loads(choice.message.content or "")
    jsonschema.validate(value, NATIVE_SCHEMA)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == value
    assert reply.usage is not None and plain.usage is not None
    streamed = [c.usage for c in chunks if c.usage is not None]
    assert [u.prompt_tokens for u in streamed] == [reply.usage.prompt_tokens]
    # output_config adds nothing to the prompt; the forced tool's definition does
    if native:
        assert reply.usage.prompt_tokens == plain.usage.prompt_tokens
    else:
        assert reply.usage.prompt_tokens > plain.usage.prompt_tokens
