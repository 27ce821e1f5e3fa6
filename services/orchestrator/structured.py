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

from llmesh.services.core.chat import (
    ChatRequest,
    Message,
    ResponseFormat,
    ResponseFormatType,
    Role,
)

__all__ = ["OUTPUT_LIMIT", "repair_request", "reply_error", "schema_error"]

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
