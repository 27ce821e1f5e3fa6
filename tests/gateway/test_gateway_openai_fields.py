"""Every top-level /v1 field is mapped, inert, accepted only as its no-op default, or refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmesh.gateway.openai_compat import parse_completion_request
from llmesh.gateway.openai_fields import DEFAULT_ONLY, INERT, MAPPED
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.v1 import chat_pb2

HI = [{"role": "user", "content": "hi"}]


def parse(**body: Any) -> None:
    parse_completion_request({"model": "m/x", "messages": HI, **body})


def test_the_classes_do_not_overlap() -> None:
    assert not MAPPED & INERT
    assert not (MAPPED | INERT) & DEFAULT_ONLY.keys()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("logprobs", False),
        ("top_logprobs", None),
        ("presence_penalty", 0),
        ("frequency_penalty", 0.0),
        ("logit_bias", {}),
        ("response_format", {"type": "text"}),
        ("modalities", ["text"]),
        ("service_tier", "auto"),
        ("store", False),
        ("functions", []),
        ("prompt_cache_key", "k"),
        ("n", 1),
    ],
)
def test_unsupported_fields_sent_with_their_no_op_value_are_accepted(
    field: str, value: Any
) -> None:
    parse(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("verbosity", "low"),
        ("modalities", ["text", "audio"]),
        ("audio", {"voice": "alloy", "format": "wav"}),
        ("prediction", {"type": "content", "content": "x"}),
        ("web_search_options", {}),
        ("store", True),
        ("functions", [{"name": "f"}]),
        ("function_call", "auto"),
    ],
)
def test_fields_that_would_change_the_answer_are_refused_by_name(field: str, value: Any) -> None:
    with pytest.raises(LlmeshError) as raised:
        parse(**{field: value})
    assert raised.value.reason is Reason.INVALID_REQUEST
    assert raised.value.violations[0].field == field
    assert "not supported yet" in raised.value.message


def test_reasoning_effort_and_the_thinking_budget_are_mapped() -> None:
    body = {"model": "m/x", "messages": HI, "reasoning_effort": "high"}
    chat = parse_completion_request({**body, "thinking_budget_tokens": 2048}).input
    assert chat.reasoning_effort == chat_pb2.REASONING_EFFORT_HIGH
    assert chat.thinking_budget_tokens == 2048
    with pytest.raises(LlmeshError) as raised:
        parse(reasoning_effort="extreme")
    assert raised.value.violations[0].field == "reasoning_effort"


@pytest.mark.parametrize("field", ["temprature", "echo", "best_of", "max_cost"])
def test_unknown_fields_are_refused_by_name(field: str) -> None:
    with pytest.raises(LlmeshError) as raised:
        parse(**{field: 1})
    assert raised.value.violations[0].field == field
    assert "not supported" in raised.value.message


def test_messages_echoed_back_by_an_sdk_are_accepted() -> None:
    echoed = {
        "role": "assistant",
        "content": "hi",
        "refusal": None,
        "annotations": [{"type": "url_citation"}],
        "audio": None,
        "function_call": None,
        "tool_calls": None,
    }
    parse(messages=[*HI, echoed, *HI])


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"role": "assistant", "content": None, "refusal": "I can't"}, "messages[0].refusal"),
        ({"role": "assistant", "content": "x", "audio": {"id": "a1"}}, "messages[0].audio"),
        (
            {"role": "assistant", "content": None, "function_call": {"name": "f"}},
            "messages[0].function_call",
        ),
        ({"role": "user", "content": "x", "weight": 2}, "messages[0].weight"),
        (
            {"role": "user", "content": "x", "tool_calls": [{"id": "c"}]},
            "messages[0].tool_calls",
        ),
    ],
)
def test_message_fields_llmesh_would_ignore_are_refused(
    message: dict[str, Any], param: str
) -> None:
    with pytest.raises(LlmeshError) as raised:
        parse(messages=[message])
    assert raised.value.violations[0].field == param
    assert "not supported" in raised.value.message or "only assistant" in raised.value.message


def test_every_refused_field_is_named() -> None:
    with pytest.raises(LlmeshError) as raised:
        parse(top_k=3, store=True, presence_penalty=0, repetition_penalty=1.1)
    assert [v.field for v in raised.value.violations] == [
        "top_k",
        "store",
        "repetition_penalty",
    ]
    assert "top_k" in raised.value.message and "repetition_penalty" in raised.value.message


def test_response_format_maps_to_the_chat_input() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "count", "schema": schema, "strict": True},
        },
        "schema_repair_attempts": 2,
    }
    fmt = parse_completion_request(body).input.response_format
    assert fmt.type == chat_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA
    assert (fmt.name, json.loads(fmt.schema), fmt.strict) == ("count", schema, True)
    assert fmt.schema_repair_attempts == 2
    body["response_format"] = {"type": "json_object"}
    fmt = parse_completion_request(body).input.response_format
    assert fmt.type == chat_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ({"type": "xml"}, "response_format.type"),
        ({"type": "json_schema"}, "response_format.json_schema"),
        (
            {"type": "json_schema", "json_schema": {"schema": {}}},
            "response_format.json_schema.name",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "s", "schema": []}},
            "response_format.json_schema.schema",
        ),
    ],
)
def test_a_bad_response_format_is_refused_by_name(value: Any, param: str) -> None:
    with pytest.raises(LlmeshError) as raised:
        parse(response_format=value)
    assert raised.value.violations[0].field == param


def test_parallel_tool_calls_is_mapped_with_tools() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    body = {"model": "m/x", "messages": HI, "tools": [tool], "parallel_tool_calls": False}
    chat = parse_completion_request(body).input
    assert chat.HasField("parallel_tool_calls") and chat.parallel_tool_calls is False
    without = parse_completion_request(
        {"model": "m/x", "messages": HI, "parallel_tool_calls": False}
    )
    assert not without.input.HasField("parallel_tool_calls")  # no tools: it changes nothing
    with pytest.raises(LlmeshError) as raised:
        parse(parallel_tool_calls="no")
    assert raised.value.violations[0].field == "parallel_tool_calls"
