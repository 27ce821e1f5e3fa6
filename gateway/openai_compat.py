"""OpenAI Chat Completions requests -> llmesh's `ChatInput` (pure functions).

Requests are validated field by field; a bad field raises `LlmeshError` (INVALID_REQUEST)
naming it, which the routes turn into an OpenAI-shaped 400 with ``param`` set. A field that is
neither mapped nor harmless is refused, never ignored (`llmesh.gateway.openai_fields`). The other
direction is in `llmesh.gateway.openai_responses`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from llmesh.gateway.inputs import named, parse_message
from llmesh.gateway.openai_fields import EXTENSIONS, check_fields, check_message_fields
from llmesh.gateway.openai_parts import has_media, to_parts
from llmesh.gateway.openai_sampling import add_sampling
from llmesh.services.common.errors import invalid
from llmesh.v1 import chat_pb2

_ROLES = {
    "system": chat_pb2.ROLE_SYSTEM,
    "developer": chat_pb2.ROLE_SYSTEM,
    "user": chat_pb2.ROLE_USER,
    "assistant": chat_pb2.ROLE_ASSISTANT,
    "tool": chat_pb2.ROLE_TOOL,
}
_TOOL_CHOICE_MODES = {
    "auto": chat_pb2.TOOL_CHOICE_MODE_AUTO,
    "none": chat_pb2.TOOL_CHOICE_MODE_NONE,
    "required": chat_pb2.TOOL_CHOICE_MODE_REQUIRED,
}
_INT32_MAX = 2**31 - 1
_EFFORTS = {
    "low": chat_pb2.REASONING_EFFORT_LOW,
    "medium": chat_pb2.REASONING_EFFORT_MEDIUM,
    "high": chat_pb2.REASONING_EFFORT_HIGH,
}
_INT64_MAX = 2**63 - 1
MAX_CHOICES = 128
"""The most choices (``n``) OpenAI returns for one request."""


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """A validated ``POST /v1/chat/completions`` body."""

    input: chat_pb2.ChatInput
    model: str
    """The model name as the client wrote it; echoed in the response."""
    stream: bool
    include_usage: bool
    """``stream_options.include_usage``: send a final usage chunk."""
    n: int = 1
    """How many choices to generate (``n``); each is a call of its own."""
    dropped: tuple[str, ...] = ()
    """Fields of the body accepted and not used, as the deployment's ``drop_params`` (or its
    ``unknown_fields: drop``) allows; a message field as ``messages[i].key``, once, for the
    first message that carries it."""


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise invalid(path, "must be a string")
    return value


def _opt_str(body: dict[str, Any], key: str, path: str) -> str:
    value = body.get(key)
    return "" if value is None else _str(value, path)


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid(path, "must be a number")
    return float(value)


def _int(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(path, "must be an integer")
    if not low <= value <= high:
        raise invalid(path, f"must be between {low} and {high}")
    return value


def _content(value: Any, path: str) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    if not isinstance(value, list):
        raise invalid(path, "must be a string or an array of content parts")
    texts = []
    for j, part in enumerate(value):
        if not isinstance(part, dict):
            raise invalid(f"{path}[{j}]", "must be an object")
        if part.get("type") != "text":
            raise invalid(
                f"{path}[{j}].type",
                f"unsupported content part {part.get('type')!r}; use text, image_url, file "
                "or input_audio",
            )
        texts.append(_str(part.get("text"), f"{path}[{j}].text"))
    return "\n".join(texts)


def _add_tool_calls(value: Any, path: str, message: chat_pb2.Message) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise invalid(path, "must be an array")
    for j, raw in enumerate(value):
        p = f"{path}[{j}]"
        if not isinstance(raw, dict):
            raise invalid(p, "must be an object")
        if raw.get("type", "function") != "function":
            raise invalid(f"{p}.type", 'must be "function"')
        fn = raw.get("function")
        if not isinstance(fn, dict):
            raise invalid(f"{p}.function", "must be an object")
        message.tool_calls.add(
            id=_str(raw.get("id"), f"{p}.id"),
            name=_str(fn.get("name"), f"{p}.function.name"),
            arguments=_opt_str(fn, "arguments", f"{p}.function.arguments"),
        )


def _add_message(raw: Any, path: str, chat: chat_pb2.ChatInput, drop_unknown: bool) -> list[str]:
    """Add one message; returns its unknown fields dropped (with `drop_unknown`)."""
    # Messages and tools are built in place: `extend` would copy each one.
    if not isinstance(raw, dict):
        raise invalid(path, "must be an object")
    role = named(_ROLES, raw.get("role"))
    if role is None:
        raise invalid(f"{path}.role", f"must be one of {', '.join(_ROLES)}")
    dropped = check_message_fields(raw, path, drop_unknown=drop_unknown)
    content = raw.get("content")
    if content is None and role != chat_pb2.ROLE_ASSISTANT:
        raise invalid(f"{path}.content", "is required")
    media = isinstance(content, list) and has_media(content)
    message = chat.messages.add(
        role=role,
        content="" if media else _content(content, f"{path}.content"),
        name=_opt_str(raw, "name", f"{path}.name"),
    )
    if media and isinstance(content, list):
        message.parts.extend(to_parts(content, f"{path}.content"))
    if role == chat_pb2.ROLE_ASSISTANT:
        _add_tool_calls(raw.get("tool_calls"), f"{path}.tool_calls", message)
    elif raw.get("tool_calls"):
        raise invalid(f"{path}.tool_calls", "only assistant messages carry tool calls")
    if role == chat_pb2.ROLE_TOOL:
        message.tool_call_id = _str(raw.get("tool_call_id"), f"{path}.tool_call_id")
    return dropped


def _add_tool(raw: Any, path: str, chat: chat_pb2.ChatInput) -> None:
    if not isinstance(raw, dict) or raw.get("type") != "function":
        raise invalid(path, 'must be {"type": "function", "function": {...}}')
    fn = raw.get("function")
    if not isinstance(fn, dict):
        raise invalid(f"{path}.function", "must be an object")
    if fn.get("strict") not in (None, False):
        raise invalid(f"{path}.function.strict", "is not supported yet; only false is accepted")
    tool = chat.tools.add(
        name=_str(fn.get("name"), f"{path}.function.name"),
        description=_opt_str(fn, "description", f"{path}.function.description"),
    )
    params = fn.get("parameters")
    if params is not None:
        if not isinstance(params, dict):
            raise invalid(f"{path}.function.parameters", "must be a JSON Schema object")
        tool.parameters.update(params)


def _tool_choice(value: Any) -> chat_pb2.ToolChoice:
    if isinstance(value, str) and value in _TOOL_CHOICE_MODES:
        return chat_pb2.ToolChoice(mode=_TOOL_CHOICE_MODES[value])
    if isinstance(value, dict) and value.get("type") == "function":
        fn = value.get("function")
        if isinstance(fn, dict):
            name = _str(fn.get("name"), "tool_choice.function.name")
            return chat_pb2.ToolChoice(mode=chat_pb2.TOOL_CHOICE_MODE_TOOL, name=name)
    raise invalid(
        "tool_choice",
        'must be "auto", "none", "required" or {"type": "function", "function": {"name": ...}}',
    )


_FORMAT_TYPES = {
    "text": chat_pb2.RESPONSE_FORMAT_TYPE_TEXT,
    "json_object": chat_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT,
    "json_schema": chat_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
}


def _response_format(value: Any) -> chat_pb2.ResponseFormat:
    """OpenAI's ``response_format``: text, json_object, or json_schema{name, schema, strict}."""
    kind = named(_FORMAT_TYPES, value.get("type")) if isinstance(value, dict) else None
    if kind is None:
        raise invalid("response_format.type", 'must be "text", "json_object" or "json_schema"')
    out = chat_pb2.ResponseFormat(type=kind)
    if value["type"] != "json_schema":
        return out
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        raise invalid("response_format.json_schema", "must be an object")
    out.name = _str(spec.get("name"), "response_format.json_schema.name")
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise invalid("response_format.json_schema.schema", "must be a JSON Schema object")
    out.schema = json.dumps(schema)
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise invalid("response_format.json_schema.strict", "must be a boolean")
    out.strict = bool(strict)
    return out


def _string_list(value: Any, path: str) -> list[str]:
    if not isinstance(value, list):
        raise invalid(path, "must be an array of strings")
    return [_str(v, f"{path}[{i}]") for i, v in enumerate(value)]


def parse_completion_request(
    body: dict[str, Any], drop: frozenset[str] = frozenset(), *, drop_unknown: bool = False
) -> CompletionRequest:
    """Validate an OpenAI Chat Completions body and translate it into a `ChatInput`; the
    top-level fields named in `drop`, and with `drop_unknown` unknown fields at the top level
    and in messages, are dropped instead of refused (see `check_fields`)."""
    dropped = list(check_fields(body, drop, drop_unknown=drop_unknown))
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "must be a non-empty string")
    messages = body.get("messages")
    templated = body.get("template") is not None  # its rendered messages come first
    if templated and messages is None:
        messages = []
    if not isinstance(messages, list) or not (messages or templated):
        raise invalid("messages", "must be a non-empty array (or the body names a template)")
    chat = chat_pb2.ChatInput(model=model)
    seen: set[str] = set()  # each unknown message field is named once, where it first appears
    for i, m in enumerate(messages):
        for name in _add_message(m, f"messages[{i}]", chat, drop_unknown):
            key = name.partition("].")[2]
            if key not in seen:
                seen.add(key)
                dropped.append(name)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid("tools", "must be an array")
        for i, t in enumerate(tools):
            _add_tool(t, f"tools[{i}]", chat)
    if body.get("tool_choice") is not None:
        chat.tool_choice.CopyFrom(_tool_choice(body["tool_choice"]))
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool):
            raise invalid("parallel_tool_calls", "must be a boolean")
        if chat.tools:  # OpenAI refuses it without tools; without tools it changes nothing
            chat.parallel_tool_calls = parallel
    if body.get("temperature") is not None:
        chat.temperature = _number(body["temperature"], "temperature")
    if body.get("top_p") is not None:
        chat.top_p = _number(body["top_p"], "top_p")
    for key in ("max_completion_tokens", "max_tokens"):
        if body.get(key) is not None:
            chat.max_tokens = _int(body[key], key, 1, _INT32_MAX)
            break
    stop = body.get("stop")
    if isinstance(stop, str):
        chat.stop.append(stop)
    elif stop is not None:
        chat.stop.extend(_string_list(stop, "stop"))
    if body.get("seed") is not None:
        chat.seed = _int(body["seed"], "seed", -_INT64_MAX - 1, _INT64_MAX)
    add_sampling(body, chat)
    n = 1 if body.get("n") is None else _int(body["n"], "n", 1, MAX_CHOICES)
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise invalid("metadata", "must be an object of strings")
        for key, value in metadata.items():
            chat.metadata[key] = _str(value, f"metadata.{key}")
    for key in ("user", "safety_identifier"):
        if body.get(key) is not None:
            chat.metadata[key] = _str(body[key], key)
    if body.get("prompt_cache_key") is not None:  # a hint to OpenAI's cache: checked, not used
        _str(body["prompt_cache_key"], "prompt_cache_key")
    if body.get("response_format") is not None:
        chat.response_format.CopyFrom(_response_format(body["response_format"]))
    if body.get("schema_repair_attempts") is not None:
        attempts = _int(body["schema_repair_attempts"], "schema_repair_attempts", 0, 5)
        chat.response_format.schema_repair_attempts = attempts
    if body.get("fallbacks") is not None:
        chat.fallbacks.extend(_string_list(body["fallbacks"], "fallbacks"))
    effort = body.get("reasoning_effort")
    if effort is not None:
        level = named(_EFFORTS, effort)
        if level is None:
            raise invalid("reasoning_effort", 'must be "low", "medium" or "high"')
        chat.reasoning_effort = level
    for key in EXTENSIONS:
        if body.get(key) is not None:
            chat.MergeFrom(parse_message({key: body[key]}, chat_pb2.ChatInput(), key))
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid("stream", "must be a boolean")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise invalid("stream_options", "must be an object")
        include_usage = options.get("include_usage") is True
    return CompletionRequest(chat, model, bool(stream), include_usage, n, tuple(dropped))
