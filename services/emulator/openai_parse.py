"""OpenAI Chat Completions requests: validation and parsing into a neutral `ChatCall`.

Validation answers like the real API: HTTP 400 ``invalid_request_error`` with the offending
``param`` and a ``code`` (``missing_required_parameter``, ``invalid_type``, ``invalid_value``,
``empty_array``, ``integer_below_min_value``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llmesh.services.emulator import media
from llmesh.services.emulator.errors import ApiError
from llmesh.services.emulator.generation import INVALID_JSON, ChatCall
from llmesh.services.emulator.replies import (
    Block,
    BlockKind,
    Conversation,
    ToolChoice,
    ToolDef,
    Turn,
)
from llmesh.services.emulator.sampling import openai_logprobs, openai_sampling, served_tier

ROLES = ("system", "assistant", "user", "function", "tool", "developer")

_TYPE_NAMES = {
    type(None): "null",
    bool: "a boolean",
    int: "an integer",
    float: "a decimal",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def _tname(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), "an object")


def _missing(param: str) -> ApiError:
    return ApiError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def _bad_type(param: str, expected: str, value: Any) -> ApiError:
    return ApiError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {_tname(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _bad_value(param: str, value: Any, allowed: tuple[str, ...]) -> ApiError:
    listed = ", ".join(f"'{a}'" for a in allowed[:-1]) + f", and '{allowed[-1]}'"
    return ApiError(
        400,
        f"Invalid value: '{value}'. Supported values are: {listed}.",
        param=param,
        code="invalid_value",
    )


def _int_at_least(body: Mapping[str, Any], name: str, low: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_type(name, "an integer", value)
    if value < low:
        raise ApiError(
            400,
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, "
            f"but got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    return value


def parse_chat(body: Any) -> ChatCall:
    """Validate and parse a ``POST /v1/chat/completions`` body."""
    if body is INVALID_JSON or not isinstance(body, dict):
        raise ApiError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON. If you have trouble figuring out how to fix "
            "this, please visit https://platform.openai.com/docs/guides/error-codes/api-errors.)",
        )
    if "model" not in body:
        raise _missing("model")
    model = body["model"]
    if not isinstance(model, str):
        raise _bad_type("model", "a string", model)
    if "messages" not in body:
        raise _missing("messages")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _bad_type("messages", "an array", messages)
    if not messages:
        raise ApiError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    turns = tuple(_turn(m, i) for i, m in enumerate(messages))
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad_type("stream", "a boolean", stream)
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise ApiError(
                400,
                "Invalid value for 'stream_options': Stream options can only be defined when "
                "`stream=True`.",
                param="stream_options",
            )
        if not isinstance(options, dict):
            raise _bad_type("stream_options", "an object", options)
        include_usage = bool(options.get("include_usage"))
    max_tokens = _int_at_least(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = _int_at_least(body, "max_tokens", 1)
    n = _int_at_least(body, "n", 1) or 1
    tools = _tools(body.get("tools"))
    kind, schema = _response_format(body.get("response_format"))
    params = openai_sampling(body)
    return ChatCall(
        conv=Conversation(
            model=model,
            turns=turns,
            tools=tools,
            tool_choice=_tool_choice(body, tools),
            max_tokens=max_tokens,
            stop=_stop(body.get("stop")),
            response_format=kind,
            response_schema=schema,
        ),
        stream=bool(stream),
        include_usage=include_usage,
        n=n,
        params=params,
        service_tier=served_tier(body),
        logprobs=openai_logprobs(body),
    )


def _turn(message: Any, i: int) -> Turn:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise _bad_type(where, "an object", message)
    if "role" not in message:
        raise _missing(f"{where}.role")
    role = message["role"]
    if role not in ROLES:
        raise _bad_value(f"{where}.role", role, ROLES)
    content = message.get("content")
    blocks: list[Block] = []
    if role == "assistant":
        if content is not None:
            blocks.extend(_content(content, f"{where}.content", BlockKind.TEXT))
        for call in message.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict):
                raise _missing(f"{where}.tool_calls[0].function")
            text = f"{fn.get('name', '')} {fn.get('arguments', '')}"
            blocks.append(Block(BlockKind.TOOL_USE, text))
        return Turn("assistant", tuple(blocks))
    if "content" not in message or content is None:
        raise _missing(f"{where}.content")
    if role in ("tool", "function"):
        if role == "tool" and "tool_call_id" not in message:
            raise _missing(f"{where}.tool_call_id")
        texts = _content(content, f"{where}.content", BlockKind.TEXT)
        result = "\n".join(b.text for b in texts)
        return Turn("tool", (Block(BlockKind.TOOL_RESULT, result),))
    kind_role = "system" if role in ("system", "developer") else "user"
    return Turn(kind_role, tuple(_content(content, f"{where}.content", BlockKind.TEXT)))


def _content(content: Any, where: str, kind: BlockKind) -> list[Block]:
    if isinstance(content, str):
        return [Block(kind, content)]
    if not isinstance(content, list):
        raise _bad_type(where, "one of a string or array of objects", content)
    blocks = []
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            raise _bad_type(f"{where}[{j}]", "an object", part)
        if part.get("type") in ("text", "refusal"):
            text = part.get(part["type"])
            if not isinstance(text, str):
                raise _missing(f"{where}[{j}].{part['type']}")
            blocks.append(Block(kind, text))
        elif part.get("type") in _MEDIA_PARTS:
            blocks.append(_media(part, f"{where}[{j}]"))
        else:
            blocks.append(Block(BlockKind.OTHER, orjson.dumps(part).decode()))
    return blocks


_MEDIA_PARTS = ("image_url", "file", "input_audio")
_AUDIO_FORMATS = ("wav", "mp3")


def _media(part: Mapping[str, Any], where: str) -> Block:
    """An ``image_url``, ``file`` or ``input_audio`` content part, checked as OpenAI does."""
    kind = part["type"]
    inner = part.get(kind)
    if not isinstance(inner, dict):
        raise _missing(f"{where}.{kind}")
    if kind == "image_url":
        url = inner.get("url")
        if not isinstance(url, str):
            raise _missing(f"{where}.image_url.url")
        if "detail" in inner and inner["detail"] not in ("auto", "low", "high"):
            raise _bad_value(f"{where}.image_url.detail", inner["detail"], ("auto", "low", "high"))
        if url.startswith(("http://", "https://")):
            return media.image_url_block(url)
        parsed = media.parse_data_url(url)
        if parsed is None:
            raise ApiError(
                400,
                "Invalid 'image_url'. Expected a base64-encoded data URL with an image MIME "
                "type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got "
                "an invalid value.",
                param=f"{where}.image_url.url",
                code="invalid_value",
            )
        media_type, data = parsed
        if media_type not in media.IMAGE_TYPES:
            raise ApiError(
                400,
                "You uploaded an unsupported image. Please make sure your image has of one "
                "the following formats: ['png', 'jpeg', 'gif', 'webp'].",
                code="invalid_image_format",
            )
        return media.image_block(media_type, data)
    if kind == "file":
        file_data = inner.get("file_data")
        if not isinstance(file_data, str):
            raise _missing(f"{where}.file.file_data")
        parsed = media.parse_data_url(file_data)
        if parsed is None or parsed[0] != "application/pdf":
            raise ApiError(
                400,
                "Invalid file data: 'file_data'. Expected a base64-encoded data URL with "
                "MIME type 'application/pdf', but got an invalid value.",
                param=f"{where}.file.file_data",
                code="invalid_value",
            )
        return media.document_block(*parsed)
    data_text = inner.get("data")
    if not isinstance(data_text, str):
        raise _missing(f"{where}.input_audio.data")
    fmt = inner.get("format")
    if fmt not in _AUDIO_FORMATS:
        raise _bad_value(f"{where}.input_audio.format", fmt, _AUDIO_FORMATS)
    audio = media.decode_base64(data_text)
    if audio is None:
        raise ApiError(
            400,
            "Invalid value for 'input_audio.data': expected base64-encoded audio.",
            param=f"{where}.input_audio.data",
            code="invalid_value",
        )
    return media.audio_block(fmt, audio)


def _response_format(raw: Any) -> tuple[str, str]:
    """(type, schema as JSON text) of ``response_format``."""
    if raw is None:
        return "text", ""
    if not isinstance(raw, dict):
        raise _bad_type("response_format", "an object", raw)
    kind = raw.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise _bad_value("response_format.type", kind, ("text", "json_object", "json_schema"))
    if kind != "json_schema":
        return str(kind), ""
    spec = raw.get("json_schema")
    if not isinstance(spec, dict):
        raise _missing("response_format.json_schema")
    if not isinstance(spec.get("name"), str):
        raise _missing("response_format.json_schema.name")
    schema = spec.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise _bad_type("response_format.json_schema.schema", "an object", schema)
    return "json_schema", orjson.dumps(schema or {}).decode()


def _tools(raw: Any) -> tuple[ToolDef, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _bad_type("tools", "an array", raw)
    out = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict):
            raise _bad_type(f"tools[{i}]", "an object", tool)
        if tool.get("type") != "function":
            raise _bad_value(f"tools[{i}].type", tool.get("type"), ("function", "custom"))
        fn = tool.get("function")
        if not isinstance(fn, dict):
            raise _missing(f"tools[{i}].function")
        name = fn.get("name")
        if not isinstance(name, str):
            raise _missing(f"tools[{i}].function.name")
        schema = fn.get("parameters")
        parameters = orjson.dumps(schema).decode() if isinstance(schema, dict) else ""
        canonical = orjson.dumps(tool, option=orjson.OPT_SORT_KEYS).decode()
        out.append(ToolDef(name, canonical, parameters=parameters))
    return tuple(out)


def _tool_choice(body: Mapping[str, Any], tools: tuple[ToolDef, ...]) -> ToolChoice:
    raw = body.get("tool_choice")
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise _bad_type("parallel_tool_calls", "a boolean", parallel)
    parallel = parallel is not False
    if raw is None:
        return ToolChoice("auto", parallel=parallel)
    if not tools:
        raise ApiError(
            400,
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified.",
            param="tool_choice",
        )
    if isinstance(raw, str):
        if raw not in ("none", "auto", "required"):
            raise _bad_value("tool_choice", raw, ("none", "auto", "required"))
        return ToolChoice(raw, parallel=parallel)
    fn = raw.get("function") if isinstance(raw, dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(name, str):
        raise _missing("tool_choice.function.name")
    if name not in {t.name for t in tools}:
        raise ApiError(
            400,
            f"Invalid value for 'tool_choice': function '{name}' not found in 'tools'.",
            param="tool_choice",
            code="invalid_value",
        )
    return ToolChoice("tool", name, parallel)


def _stop(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise _bad_type("stop", "one of a string or array of strings", raw)
    if len(raw) > 4:
        raise ApiError(
            400,
            f"Invalid 'stop': array too long. Expected an array with maximum length 4, but got "
            f"an array with length {len(raw)} instead.",
            param="stop",
            code="array_above_max_length",
        )
    return tuple(raw)
