"""Structured output: checking a reply against the requested JSON shape, and asking again.

Pure functions over the domain types; the `Structured` layer
(`llmesh.services.orchestrator.layers.structured`) applies them to the call's stream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from jsonschema import exceptions as schema_exceptions
from jsonschema.validators import validator_for

from llmesh.services.common.errors import Violation
from llmesh.services.core.chat import (
    ChatRequest,
    Message,
    ResponseFormat,
    ResponseFormatType,
    Role,
)
from llmesh.v1 import chat_pb2

__all__ = [
    "MAX_REPAIR_ATTEMPTS",
    "OUTPUT_LIMIT",
    "repair_request",
    "reply_error",
    "response_format_from_proto",
    "schema_error",
]

OUTPUT_LIMIT = 2000
"""The most characters of an invalid reply carried in the error's metadata."""


def schema_error(schema: Mapping[str, Any]) -> str | None:
    """Why `schema` is not a valid JSON Schema (for the draft it names), or None."""
    try:
        validator_for(schema).check_schema(schema)
    except schema_exceptions.SchemaError as exc:
        return _short(exc.message)
    return None


def reply_error(text: str, fmt: ResponseFormat) -> str | None:
    """Why the reply `text` does not have the shape `fmt` asks for, or None when it does."""
    if not fmt.structured:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"the reply is not valid JSON: {exc}"
    if fmt.type is ResponseFormatType.JSON_OBJECT:
        return None if isinstance(value, dict) else "the reply is not a JSON object"
    validator = validator_for(fmt.schema)(fmt.schema)
    error = schema_exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return _short(f"at /{where}: {error.message}" if where else error.message)


def repair_request(request: ChatRequest, reply: str, error: str) -> ChatRequest:
    """`request` with the invalid reply and the validation error appended, asking again."""
    ask = (
        f"Your reply did not follow the required format: {error}. "
        "Answer again with only the corrected JSON."
    )
    return replace(
        request,
        messages=(*request.messages, Message(Role.ASSISTANT, reply), Message(Role.USER, ask)),
    )


def _short(message: str, limit: int = 500) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


_FORMATS = {
    chat_pb2.RESPONSE_FORMAT_TYPE_TEXT: ResponseFormatType.TEXT,
    chat_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT: ResponseFormatType.JSON_OBJECT,
    chat_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA: ResponseFormatType.JSON_SCHEMA,
}

MAX_REPAIR_ATTEMPTS = 5
"""The most schema repair attempts a call may ask for."""


def response_format_from_proto(
    inp: chat_pb2.ChatInput, violation: Violation
) -> ResponseFormat | None:
    """The requested reply shape; None when absent or unspecified (plain text)."""
    if not inp.HasField("response_format"):
        return None
    rf = inp.response_format
    if rf.type == chat_pb2.RESPONSE_FORMAT_TYPE_UNSPECIFIED:
        return None
    kind = _FORMATS.get(rf.type)
    if kind is None:
        violation("response_format.type", "unknown type")
        return None
    if rf.schema_repair_attempts > MAX_REPAIR_ATTEMPTS:
        violation("response_format.schema_repair_attempts", f"at most {MAX_REPAIR_ATTEMPTS}")
    schema: dict[str, Any] = {}
    if kind is ResponseFormatType.JSON_SCHEMA:
        if not rf.name:
            violation("response_format.name", "is required for JSON_SCHEMA")
        try:
            parsed = json.loads(rf.schema) if rf.schema else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            violation("response_format.schema", "must be a JSON object (a JSON Schema)")
        else:
            schema = parsed
            problem = schema_error(schema)
            if problem:
                violation("response_format.schema", f"is not a valid JSON Schema: {problem}")
    return ResponseFormat(
        kind, rf.name, schema, rf.strict, repair_attempts=rf.schema_repair_attempts
    )
