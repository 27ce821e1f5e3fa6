"""`ChatInput.response_format` mapped to the domain, with its validation."""

from __future__ import annotations

import json

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import ResponseFormat, ResponseFormatType
from llmesh.services.orchestrator.convert import chat_call_from_proto
from llmesh.v1 import chat_pb2

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def _input(**fmt: object) -> chat_pb2.ChatInput:
    inp = chat_pb2.ChatInput(model="p/m")
    inp.messages.add(role=chat_pb2.ROLE_USER, content="hi")
    if fmt:
        inp.response_format.CopyFrom(chat_pb2.ResponseFormat(**fmt))  # type: ignore[arg-type]
    return inp


def test_a_json_schema_format_maps_to_the_request() -> None:
    inp = _input(
        type=chat_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
        name="count",
        schema=json.dumps(SCHEMA),
        strict=True,
        schema_repair_attempts=2,
    )
    request = chat_call_from_proto(inp, True).request
    assert request.response_format == ResponseFormat(
        ResponseFormatType.JSON_SCHEMA, "count", SCHEMA, True, repair_attempts=2
    )


def test_absent_or_unspecified_is_plain_text() -> None:
    assert chat_call_from_proto(_input(), True).request.response_format is None
    unspecified = _input(schema_repair_attempts=1)
    assert chat_call_from_proto(unspecified, True).request.response_format is None
    obj = _input(type=chat_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT)
    fmt = chat_call_from_proto(obj, True).request.response_format
    assert fmt is not None and fmt.type is ResponseFormatType.JSON_OBJECT


@pytest.mark.parametrize(
    ("fmt", "field"),
    [
        ({"schema": json.dumps(SCHEMA)}, "input.response_format.name"),
        ({"name": "s", "schema": "[1]"}, "input.response_format.schema"),
        ({"name": "s", "schema": "{"}, "input.response_format.schema"),
        ({"name": "s", "schema": '{"type": 5}'}, "input.response_format.schema"),
        (
            {"name": "s", "schema": "{}", "schema_repair_attempts": 9},
            "input.response_format.schema_repair_attempts",
        ),
    ],
)
def test_a_bad_format_names_its_field(fmt: dict[str, object], field: str) -> None:
    with pytest.raises(LlmeshError) as raised:
        chat_call_from_proto(_input(type=chat_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, **fmt), True)
    assert raised.value.reason is Reason.INVALID_REQUEST
    assert [v.field for v in raised.value.violations] == [field]
