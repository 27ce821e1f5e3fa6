"""Protobuf -> domain mapping for the processor, with request validation.

Validation collects every bad field into one INVALID_REQUEST error carrying a
`google.rpc.BadRequest` field violation per field, so a caller fixes all at once.

A CountTokens request with neither text nor messages is valid and counts 0 tokens: it is
the count of an empty text, and callers counting whatever text they hold need no special
case. A FitContext request must carry messages: there is nothing to trim otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf import json_format

from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason
from llmesh.services.common.media_settings import PartLimits
from llmesh.services.common.parts_proto import parts_from_proto
from llmesh.services.core.chat import Message, Role, Tool, ToolCall
from llmesh.v1 import chat_pb2, processor_pb2

_ROLES = {
    chat_pb2.ROLE_SYSTEM: Role.SYSTEM,
    chat_pb2.ROLE_USER: Role.USER,
    chat_pb2.ROLE_ASSISTANT: Role.ASSISTANT,
    chat_pb2.ROLE_TOOL: Role.TOOL,
}


_DEFAULT_LIMITS = PartLimits()


@dataclass(frozen=True, slots=True)
class CountRequest:
    """What to count, for which model."""

    model: str
    text: str
    messages: tuple[Message, ...]
    """When not empty, counted as a conversation and `text` is ignored."""
    tools: tuple[Tool, ...] = ()
    """Tool definitions offered with it, counted on top (see `tool_tokens`)."""


@dataclass(frozen=True, slots=True)
class FitRequest:
    """A conversation to trim to `max_tokens` for a model."""

    model: str
    messages: tuple[Message, ...]
    max_tokens: int


def count_request_from_proto(
    request: processor_pb2.CountTokensRequest, limits: PartLimits = _DEFAULT_LIMITS
) -> CountRequest:
    """Validate a `CountTokensRequest` (its parts' sizes against `limits`); raises
    INVALID_REQUEST."""
    bad: list[FieldViolation] = []
    _check_model(request.model, bad)
    messages = _messages(request.messages, bad, limits)
    tools = _tools(request.tools, bad)
    if bad:
        raise _invalid(bad)
    return CountRequest(request.model.strip(), request.text, messages, tools)


def fit_request_from_proto(
    request: processor_pb2.FitContextRequest, limits: PartLimits = _DEFAULT_LIMITS
) -> FitRequest:
    """Validate a `FitContextRequest` (its parts' sizes against `limits`); raises
    INVALID_REQUEST."""
    bad: list[FieldViolation] = []
    _check_model(request.model, bad)
    if not request.messages:
        bad.append(FieldViolation("messages", "must contain at least one message"))
    messages = _messages(request.messages, bad, limits)
    if request.max_tokens <= 0:
        bad.append(FieldViolation("max_tokens", "must be positive"))
    if bad:
        raise _invalid(bad)
    return FitRequest(request.model.strip(), messages, request.max_tokens)


def messages_from_proto(
    messages: Sequence[chat_pb2.Message], limits: PartLimits = _DEFAULT_LIMITS
) -> tuple[Message, ...]:
    """Validate a conversation (roles, parts); raises INVALID_REQUEST."""
    bad: list[FieldViolation] = []
    out = _messages(messages, bad, limits)
    if bad:
        raise _invalid(bad)
    return out


def _check_model(model: str, bad: list[FieldViolation]) -> None:
    if not model.strip():
        bad.append(FieldViolation("model", "must name a model, e.g. openai/gpt-4o-mini"))


def _messages(
    messages: Sequence[chat_pb2.Message], bad: list[FieldViolation], limits: PartLimits
) -> tuple[Message, ...]:
    out: list[Message] = []
    for i, m in enumerate(messages):
        role = _ROLES.get(m.role)
        if role is None:
            bad.append(
                FieldViolation(f"messages[{i}].role", "must be SYSTEM, USER, ASSISTANT or TOOL")
            )
            continue
        calls = tuple(ToolCall(c.id, c.name, c.arguments) for c in m.tool_calls)
        parts = parts_from_proto(
            m.parts,
            f"messages[{i}].parts",
            lambda path, what: bad.append(FieldViolation(path, what)),
            limits,
        )
        out.append(Message(role, m.content, calls, m.tool_call_id, m.name, parts=parts))
    return tuple(out)


def _tools(tools: Sequence[chat_pb2.Tool], bad: list[FieldViolation]) -> tuple[Tool, ...]:
    out: list[Tool] = []
    for i, t in enumerate(tools):
        if not t.name:
            bad.append(FieldViolation(f"tools[{i}].name", "is required"))
        params = json_format.MessageToDict(t.parameters) if t.HasField("parameters") else {}
        out.append(Tool(t.name, t.description, params))
    return tuple(out)


def _invalid(bad: list[FieldViolation]) -> LlmeshError:
    summary = "; ".join(f"{v.field}: {v.description}" for v in bad)
    return LlmeshError(Reason.INVALID_REQUEST, f"invalid request: {summary}", violations=tuple(bad))
