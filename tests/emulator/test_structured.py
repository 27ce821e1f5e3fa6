"""Structured output in the emulator: ``response_format`` on the OpenAI API, a forced tool on
the Anthropic API, and tool arguments valid against each tool's schema."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import jsonschema
import openai
import pytest

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer", "minimum": 1},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "where": {
            "type": "object",
            "properties": {"lat": {"type": "number"}},
            "required": ["lat"],
        },
    },
    "required": ["city", "days", "unit", "tags", "where"],
    "additionalProperties": False,
}
USER = [{"role": "user", "content": "Weather in Oslo"}]


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_json_schema_reply_is_valid(oai: openai.AsyncOpenAI, stream: bool) -> None:
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "forecast", "schema": SCHEMA}}
    if stream:
        chunks = await oai.chat.completions.create(
            model="gpt-4o-mini", messages=USER, response_format=fmt, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    else:
        reply = await oai.chat.completions.create(
            model="gpt-4o-mini", messages=USER, response_format=fmt
        )
        text = reply.choices[0].message.content or ""
        assert reply.choices[0].finish_reason == "stop"
    value = json.loads(text)
    jsonschema.validate(value, SCHEMA)
    assert value["city"] == "Weather in Oslo"


async def test_openai_json_object_reply_is_an_object(oai: openai.AsyncOpenAI) -> None:
    reply = await oai.chat.completions.create(
        model="gpt-4o-mini", messages=USER, response_format={"type": "json_object"}
    )
    assert json.loads(reply.choices[0].message.content or "") == {"text": "Weather in Oslo"}


async def test_openai_refuses_an_unknown_response_format(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        await oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=USER,
            response_format={"type": "xml"},  # type: ignore[arg-type,typeddict-item]
        )
    assert raised.value.param == "response_format.type"


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_forced_tool_input_is_valid(
    ant: anthropic.AsyncAnthropic, stream: bool
) -> None:
    tools: Any = [{"name": "json_response", "input_schema": SCHEMA}]
    choice: Any = {"type": "tool", "name": "json_response"}
    if stream:
        async with ant.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=200,
            messages=USER,  # type: ignore[arg-type]
            tools=tools,
            tool_choice=choice,
        ) as events:
            message = await events.get_final_message()
    else:
        message = await ant.messages.create(
            model="claude-haiku-4-5",
            max_tokens=200,
            messages=USER,  # type: ignore[arg-type]
            tools=tools,
            tool_choice=choice,
        )
    block = message.content[0]
    assert block.type == "tool_use" and message.stop_reason == "tool_use"
    jsonschema.validate(block.input, SCHEMA)


async def test_openai_tool_arguments_are_valid_against_the_parameters(
    oai: openai.AsyncOpenAI,
) -> None:
    params = {
        "type": "object",
        "properties": {"count": {"type": "integer"}, "flag": {"type": "boolean"}},
        "required": ["count", "flag"],
    }
    tools: Any = [
        {"type": "function", "function": {"name": "set_count", "parameters": params}},
        {"type": "function", "function": {"name": "ping"}},
    ]
    reply = await oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "set_count then ping"}],
        tools=tools,
    )
    calls = reply.choices[0].message.tool_calls or []
    args = {c.function.name: json.loads(c.function.arguments) for c in calls}  # type: ignore[union-attr]
    assert args == {"set_count": {"count": 0, "flag": False}, "ping": {}}
    jsonschema.validate(args["set_count"], params)


NATIVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "where": {"$ref": "#/$defs/where"},
    },
    "required": ["city", "unit", "tags", "where"],
    "additionalProperties": False,
    "$defs": {
        "where": {
            "type": "object",
            "properties": {"lat": {"type": "number"}},
            "required": ["lat"],
            "additionalProperties": False,
        }
    },
}


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_output_config_reply_is_json_text_of_the_schema(
    ant: anthropic.AsyncAnthropic, stream: bool
) -> None:
    config: Any = {"format": {"type": "json_schema", "schema": NATIVE_SCHEMA}}
    if stream:
        async with ant.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=200,
            messages=USER,  # type: ignore[arg-type]
            output_config=config,
        ) as events:
            deltas = [e.delta.text async for e in events if e.type == "content_block_delta"]  # type: ignore[union-attr]
            message = await events.get_final_message()
        assert len(deltas) > 1 and "".join(deltas) == message.content[0].text  # type: ignore[union-attr]
    else:
        message = await ant.messages.create(
            model="claude-haiku-4-5",
            max_tokens=200,
            messages=USER,  # type: ignore[arg-type]
            output_config=config,
        )
    (block,) = message.content
    assert block.type == "text" and message.stop_reason == "end_turn"
    value = json.loads(block.text)
    jsonschema.validate(value, NATIVE_SCHEMA)
    assert value["city"] == "Weather in Oslo"


async def test_anthropic_output_config_on_a_model_without_it_is_refused(
    ant: anthropic.AsyncAnthropic,
) -> None:
    config: Any = {"format": {"type": "json_schema", "schema": NATIVE_SCHEMA}}
    with pytest.raises(anthropic.BadRequestError) as raised:
        await ant.messages.create(
            model="claude-3-haiku-20240307",
            max_tokens=200,
            messages=USER,  # type: ignore[arg-type]
            output_config=config,
        )
    assert raised.value.type == "invalid_request_error"  # type: ignore[attr-defined]
    assert raised.value.api_message == (  # type: ignore[attr-defined]
        "'claude-3-haiku-20240307' does not support output_config.format."
    )


def _closed(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "additionalProperties": False}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (
            {"type": "object", "properties": {"a": {"type": "string"}}},
            "For 'object' type, 'additionalProperties' must be explicitly set to false",
        ),
        (
            _closed(n=_closed(deep={"type": "object", "additionalProperties": True})),
            "For 'object' type, 'additionalProperties' must be explicitly set to false",
        ),
        (
            _closed(n={"type": "integer", "minimum": 1}),
            "For 'integer' type, property 'minimum' is not supported",
        ),
        (
            _closed(n={"type": "number", "minimum": 0, "maximum": 1}),
            "For 'number' type, properties maximum, minimum are not supported",
        ),
        (
            _closed(n={"type": "array", "items": {"type": "string"}, "minItems": 2}),
            "For 'array' type, 'minItems' values other than 0 or 1 are not supported",
        ),
        (
            _closed(n={"type": "array", "items": {"type": "string", "maxLength": 3}}),
            "For 'string' type, property 'maxLength' is not supported",
        ),
    ],
)
async def test_anthropic_output_config_refuses_unsupported_schema_features(
    ant: anthropic.AsyncAnthropic, schema: dict[str, Any], message: str
) -> None:
    config: Any = {"format": {"type": "json_schema", "schema": schema}}
    with pytest.raises(anthropic.BadRequestError) as raised:
        await ant.messages.create(
            model="claude-opus-4-6",
            max_tokens=200,
            messages=USER,  # type: ignore[arg-type]
            output_config=config,
        )
    assert raised.value.api_message == f"output_config.format.schema: {message}"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"format": {"type": "json_object"}}, "output_config.format: Input tag does not match"),
        ({"format": {"type": "json_schema"}}, "output_config.format.schema: Field required"),
        ({"verbosity": "low"}, "output_config.verbosity: Extra inputs are not permitted"),
    ],
)
async def test_anthropic_output_config_shape_is_checked(
    ant: anthropic.AsyncAnthropic, config: Any, message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        await ant.messages.create(
            model="claude-opus-4-6",
            max_tokens=200,
            messages=USER,  # type: ignore[arg-type]
            output_config=config,
        )
    assert raised.value.api_message.startswith(message)  # type: ignore[attr-defined]
