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
