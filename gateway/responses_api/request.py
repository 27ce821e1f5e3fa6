"""``POST /v1/responses`` bodies -> a validated `ResponsesRequest` (pure functions).

The conversation is kept as Responses API items (`items`), so a stored response can be
continued with ``previous_response_id``: `ResponsesRequest.chat_input` turns the earlier
items plus this request's into the `ChatInput` sent to the orchestrator. ``instructions``
apply to this request only (as at OpenAI, they are not carried over).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from llmesh.gateway.inputs import named, parse_message
from llmesh.gateway.openai_fields import EXTENSIONS
from llmesh.gateway.responses_api.fields import INCLUDABLE, check_fields, check_keys, refused
from llmesh.gateway.responses_api.items import add_items, normalize_input
from llmesh.services.common.errors import invalid
from llmesh.v1 import chat_pb2

__all__ = ["ResponsesRequest", "parse_request"]

_INT32_MAX = 2**31 - 1
_EFFORTS = {
    "low": chat_pb2.REASONING_EFFORT_LOW,
    "medium": chat_pb2.REASONING_EFFORT_MEDIUM,
    "high": chat_pb2.REASONING_EFFORT_HIGH,
}
_MODES = {
    "auto": chat_pb2.TOOL_CHOICE_MODE_AUTO,
    "none": chat_pb2.TOOL_CHOICE_MODE_NONE,
    "required": chat_pb2.TOOL_CHOICE_MODE_REQUIRED,
}
_FORMATS = {
    "text": chat_pb2.RESPONSE_FORMAT_TYPE_TEXT,
    "json_object": chat_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT,
    "json_schema": chat_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
}
_TOOL_KEYS = frozenset({"type", "name", "description", "parameters", "strict"})
_FORMAT_KEYS = frozenset({"type", "name", "schema", "strict", "description"})


@dataclass(frozen=True)
class ResponsesRequest:
    """A validated ``POST /v1/responses`` body."""

    template: chat_pb2.ChatInput
    """Everything of the call but its messages."""
    instructions: str | None
    items: list[Any]
    """This request's input items (a string input as one user message item)."""
    echo: dict[str, Any]
    """The request's settings as the response object repeats them."""
    stream: bool = False
    store: bool | None = None
    """``store`` as sent (None: absent)."""
    previous_response_id: str | None = None

    def chat_input(self, history: list[Any]) -> chat_pb2.ChatInput:
        """The `ChatInput`: instructions, then the `history` items, then this request's."""
        chat = chat_pb2.ChatInput()
        chat.CopyFrom(self.template)
        if self.instructions:
            chat.messages.add(role=chat_pb2.ROLE_SYSTEM, content=self.instructions)
        start = len(history)
        add_items(
            [*history, *self.items],
            chat,
            lambda i: f"input[{i - start}]" if i >= start else "previous_response_id",
        )
        return chat


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise invalid(path, "must be a string")
    return value


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid(path, "must be a number")
    return float(value)


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise invalid(path, "must be a boolean")
    return value


def _dict(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(path, "must be an object")
    return value


def _add_tool(raw: Any, path: str, chat: chat_pb2.ChatInput) -> None:
    raw = _dict(raw, path)
    if raw.get("type") != "function":
        raise invalid(f"{path}.type", 'only "function" tools are supported')
    check_keys(raw, _TOOL_KEYS, path)
    if raw.get("strict") is not None:
        _bool(raw["strict"], f"{path}.strict")
    tool = chat.tools.add(
        name=_str(raw.get("name"), f"{path}.name"),
        description=_str(raw.get("description") or "", f"{path}.description"),
    )
    if raw.get("parameters") is not None:
        tool.parameters.update(_dict(raw["parameters"], f"{path}.parameters"))


def _tool_choice(value: Any) -> chat_pb2.ToolChoice:
    if isinstance(value, str) and value in _MODES:
        return chat_pb2.ToolChoice(mode=_MODES[value])
    if isinstance(value, dict) and value.get("type") == "function":
        name = _str(value.get("name"), "tool_choice.name")
        return chat_pb2.ToolChoice(mode=chat_pb2.TOOL_CHOICE_MODE_TOOL, name=name)
    raise invalid(
        "tool_choice", 'must be "auto", "none", "required" or {"type": "function", "name": ...}'
    )


def _text_format(text: dict[str, Any]) -> chat_pb2.ResponseFormat | None:
    check_keys(text, frozenset({"format", "verbosity"}), "text")
    if text.get("verbosity") not in (None, "medium"):
        raise refused(
            invalid("text.verbosity", 'is not supported; only "medium"'), "unsupported_parameter"
        )
    if text.get("format") is None:
        return None
    fmt = _dict(text["format"], "text.format")
    kind = named(_FORMATS, fmt.get("type"))
    if kind is None:
        raise invalid("text.format.type", 'must be "text", "json_object" or "json_schema"')
    check_keys(fmt, _FORMAT_KEYS, "text.format")
    out = chat_pb2.ResponseFormat(type=kind)
    if fmt["type"] == "json_schema":
        out.name = _str(fmt.get("name"), "text.format.name")
        out.schema = json.dumps(_dict(fmt.get("schema"), "text.format.schema"))
        if fmt.get("strict") is not None:
            out.strict = _bool(fmt["strict"], "text.format.strict")
    return out


def _reasoning(value: Any, chat: chat_pb2.ChatInput) -> None:
    reasoning = _dict(value, "reasoning")
    check_keys(reasoning, frozenset({"effort", "summary", "generate_summary"}), "reasoning")
    effort = reasoning.get("effort")
    if effort is not None:
        level = named(_EFFORTS, effort)
        if level is None:
            raise invalid("reasoning.effort", 'must be "low", "medium" or "high"')
        chat.reasoning_effort = level
    for key in ("summary", "generate_summary"):
        if reasoning.get(key) not in (None, "auto", "concise", "detailed"):
            raise invalid(f"reasoning.{key}", 'must be "auto", "concise" or "detailed"')


def _settings(body: dict[str, Any], chat: chat_pb2.ChatInput) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid("tools", "must be an array")
        for i, t in enumerate(tools):
            _add_tool(t, f"tools[{i}]", chat)
    if body.get("tool_choice") is not None:
        chat.tool_choice.CopyFrom(_tool_choice(body["tool_choice"]))
    if body.get("parallel_tool_calls") is not None:
        parallel = _bool(body["parallel_tool_calls"], "parallel_tool_calls")
        if chat.tools:
            chat.parallel_tool_calls = parallel
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            setattr(chat, key, _number(body[key], key))
    limit = body.get("max_output_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= _INT32_MAX:
            raise invalid("max_output_tokens", f"must be an integer from 1 to {_INT32_MAX}")
        chat.max_tokens = limit
    for key, value in _dict(body.get("metadata") or {}, "metadata").items():
        chat.metadata[key] = _str(value, f"metadata.{key}")
    for key in ("user", "safety_identifier"):
        if body.get(key) is not None:
            chat.metadata[key] = _str(body[key], key)
    if body.get("text") is not None:
        fmt = _text_format(_dict(body["text"], "text"))
        if fmt is not None:
            chat.response_format.CopyFrom(fmt)
    if body.get("reasoning") is not None:
        _reasoning(body["reasoning"], chat)
    if body.get("schema_repair_attempts") is not None:
        attempts = body["schema_repair_attempts"]
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not 0 <= attempts <= 5:
            raise invalid("schema_repair_attempts", "must be an integer from 0 to 5")
        chat.response_format.schema_repair_attempts = attempts
    fallbacks = body.get("fallbacks")
    if fallbacks is not None:
        if not isinstance(fallbacks, list):
            raise invalid("fallbacks", "must be an array of model names")
        chat.fallbacks.extend(_str(f, f"fallbacks[{i}]") for i, f in enumerate(fallbacks))
    for key in EXTENSIONS:
        if body.get(key) is not None:
            chat.MergeFrom(parse_message({key: body[key]}, chat_pb2.ChatInput(), key))


def _include(value: Any) -> None:
    if not isinstance(value, list):
        raise invalid("include", "must be an array")
    for i, v in enumerate(value):
        if not isinstance(v, str) or v not in INCLUDABLE:
            raise refused(
                invalid(f"include[{i}]", f"{v!r} is not supported; only {', '.join(INCLUDABLE)}"),
                "unsupported_parameter",
            )


def _echo(body: dict[str, Any]) -> dict[str, Any]:
    text = body.get("text") or {}
    return {
        "instructions": body.get("instructions"),
        "metadata": body.get("metadata") or {},
        "model": body["model"],
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "text": {"format": text.get("format") or {"type": "text"}},
        "reasoning": body.get("reasoning"),
        "max_output_tokens": body.get("max_output_tokens"),
        "user": body.get("user"),
        "safety_identifier": body.get("safety_identifier"),
        "background": False,
        "truncation": "disabled",
    }


def parse_request(body: dict[str, Any]) -> ResponsesRequest:
    """Validate a ``POST /v1/responses`` body."""
    check_fields(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "must be a non-empty string")
    items = normalize_input(body.get("input"))
    instructions = body.get("instructions")
    if instructions is not None:
        _str(instructions, "instructions")
    chat = chat_pb2.ChatInput(model=model)
    _settings(body, chat)
    if body.get("include") is not None:
        _include(body["include"])
    options = body.get("stream_options")
    if options is not None:
        check_keys(
            _dict(options, "stream_options"), frozenset({"include_obfuscation"}), "stream_options"
        )
    previous = body.get("previous_response_id")
    request = ResponsesRequest(
        template=chat,
        instructions=instructions,
        items=items,
        echo=_echo(body),
        stream=body.get("stream") is not None and _bool(body["stream"], "stream"),
        store=None if body.get("store") is None else _bool(body["store"], "store"),
        previous_response_id=None if previous is None else _str(previous, "previous_response_id"),
    )
    request.chat_input([])  # validate the items now, naming any bad one
    return request
