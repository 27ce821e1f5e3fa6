"""Anthropic Messages requests: validation and parsing into a neutral `ChatCall`.

Validation answers like the real API: HTTP 400 ``invalid_request_error`` with a message
naming the field (``max_tokens: Field required``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llmesh.services.emulator import media
from llmesh.services.emulator.anthropic_output import output_schema
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
from llmesh.services.emulator.sampling import anthropic_sampling
from llmesh.services.emulator.thinking import MIN_BUDGET, verify

TOOL_CHOICES = ("auto", "any", "tool", "none")


def _invalid(message: str) -> ApiError:
    return ApiError(400, message)


def _required(field: str) -> ApiError:
    return _invalid(f"{field}: Field required")


def parse_messages(body: Any, *, count_only: bool = False) -> ChatCall:
    """Validate and parse a ``POST /v1/messages`` (or ``count_tokens``) body."""
    if body is INVALID_JSON or not isinstance(body, dict):
        raise _invalid("There was an error parsing the body of your request: invalid JSON")
    if "model" not in body:
        raise _required("model")
    model = body["model"]
    if not isinstance(model, str):
        raise _invalid("model: Input should be a valid string")
    max_tokens: int | None = None
    if not count_only:
        if "max_tokens" not in body:
            raise _required("max_tokens")
        max_tokens = body["max_tokens"]
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise _invalid("max_tokens: Input should be a valid integer")
        if max_tokens < 1:
            raise _invalid("max_tokens: Input should be greater than or equal to 1")
    if "messages" not in body:
        raise _required("messages")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _invalid("messages: Input should be a valid list")
    if not messages:
        raise _invalid("messages: at least one message is required")
    turns = [_turn(m, i) for i, m in enumerate(messages)]
    system = body.get("system")
    if system is not None:
        blocks = _blocks(system, "system", allowed=("text",))
        if blocks:
            turns.insert(0, Turn("system", tuple(blocks)))
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _invalid("stream: Input should be a valid boolean")
    tools = _tools(body.get("tools"))
    budget = _thinking(body, max_tokens)
    schema = output_schema(body.get("output_config"), model)
    params = anthropic_sampling(body)
    return ChatCall(
        conv=Conversation(
            model=model,
            turns=tuple(turns),
            tools=tools,
            tool_choice=_tool_choice(body.get("tool_choice"), tools),
            max_tokens=max_tokens,
            stop=_stop(body.get("stop_sequences")),
            response_format="text" if schema is None else "json_schema",
            response_schema=schema or "",
        ),
        stream=bool(stream),
        thinking_budget=budget,
        params=params,
    )


def _thinking(body: dict[str, Any], max_tokens: int | None) -> int | None:
    """The thinking budget of an enabled ``thinking`` config, checked as Anthropic does."""
    raw = body.get("thinking")
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("type") not in ("enabled", "disabled"):
        raise _invalid(
            "thinking: Input tag does not match any of the expected tags: 'enabled', 'disabled'"
        )
    if raw["type"] == "disabled":
        return None
    budget = raw.get("budget_tokens")
    if budget is None:
        raise _required("thinking.enabled.budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise _invalid("thinking.enabled.budget_tokens: Input should be a valid integer")
    if budget < MIN_BUDGET:
        raise _invalid(
            f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_BUDGET}"
        )
    if max_tokens is not None and max_tokens <= budget:
        raise _invalid("`max_tokens` must be greater than `thinking.budget_tokens`")
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise _invalid(
            "`temperature` may only be set to 1 when thinking is enabled or in interleaved "
            "thinking mode"
        )
    return budget


def _turn(message: Any, i: int) -> Turn:
    where = f"messages.{i}"
    if not isinstance(message, dict):
        raise _invalid(f"{where}: Input should be a valid dictionary")
    if "role" not in message:
        raise _required(f"{where}.role")
    role = message["role"]
    if role not in ("user", "assistant"):
        raise _invalid(f"{where}.role: Input should be 'user' or 'assistant'")
    if "content" not in message:
        raise _required(f"{where}.content")
    return Turn(role, tuple(_blocks(message["content"], f"{where}.content")))


def _cache_ttl(block: Mapping[str, Any], where: str) -> str | None:
    control = block.get("cache_control")
    if control is None:
        return None
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        raise _invalid(f"{where}.cache_control.type: Input should be 'ephemeral'")
    ttl = control.get("ttl", "5m")
    if ttl not in ("5m", "1h"):
        raise _invalid(f"{where}.cache_control.ttl: Input should be '5m' or '1h'")
    return str(ttl)


def _blocks(content: Any, where: str, allowed: tuple[str, ...] | None = None) -> list[Block]:
    if isinstance(content, str):
        return [Block(BlockKind.TEXT, content)]
    if not isinstance(content, list):
        raise _invalid(f"{where}: Input should be a valid list")
    out = []
    for j, block in enumerate(content):
        at = f"{where}.{j}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _invalid(f"{at}: Input should be a valid dictionary or object")
        kind = block["type"]
        if allowed is not None and kind not in allowed:
            raise _invalid(f"{at}.type: Input should be {' or '.join(repr(a) for a in allowed)}")
        ttl = _cache_ttl(block, at)
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise _required(f"{at}.text")
            out.append(Block(BlockKind.TEXT, block["text"], ttl))
        elif kind == "tool_use":
            for field in ("id", "name", "input"):
                if field not in block:
                    raise _required(f"{at}.{field}")
            text = f"{block['name']} {orjson.dumps(block['input']).decode()}"
            out.append(Block(BlockKind.TOOL_USE, text, ttl))
        elif kind == "thinking":
            for field in ("thinking", "signature"):
                if not isinstance(block.get(field), str):
                    raise _required(f"{at}.{field}")
            before = ",".join(str(b["type"]) for b in content[:j])
            if not verify(block["thinking"], block["signature"], before):
                raise _invalid(f"{at}: Invalid `signature` in `thinking` block")
            out.append(Block(BlockKind.OTHER, block["thinking"], ttl))
        elif kind == "redacted_thinking":
            if not isinstance(block.get("data"), str):
                raise _required(f"{at}.data")
            out.append(Block(BlockKind.OTHER, block["data"], ttl))
        elif kind == "tool_result":
            if "tool_use_id" not in block:
                raise _required(f"{at}.tool_use_id")
            result = block.get("content", "")
            parts = _blocks(result, f"{at}.content") if result != "" else []
            text = "\n".join(p.text for p in parts if p.kind is BlockKind.TEXT)
            out.append(Block(BlockKind.TOOL_RESULT, text, ttl))
        elif kind in ("image", "document"):
            out.append(_media(block, kind, at, ttl))
        else:
            shown = {k: v for k, v in block.items() if k != "cache_control"}
            out.append(Block(BlockKind.OTHER, orjson.dumps(shown).decode(), ttl))
    return out


_DOCUMENT_TYPES = ("application/pdf",)


def _media(block: Mapping[str, Any], kind: str, at: str, ttl: str | None) -> Block:
    """An ``image`` or ``document`` block, checked as Anthropic does."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise _required(f"{at}.source")
    stype = source.get("type")
    if stype == "url":
        if not isinstance(source.get("url"), str):
            raise _required(f"{at}.source.url.url")
        if kind == "document":
            return media.document_url_block(source["url"], ttl)
        return media.image_url_block(source["url"], ttl)
    if stype != "base64":
        raise _invalid(f"{at}.{kind}.source: Input tag {stype!r} found using 'type' does not match")
    allowed = media.IMAGE_TYPES if kind == "image" else _DOCUMENT_TYPES
    media_type = source.get("media_type")
    if not isinstance(media_type, str) or media_type not in allowed:
        listed = ", ".join(repr(a) for a in allowed)
        raise _invalid(f"{at}.{kind}.source.base64.media_type: Input should be {listed}")
    if not isinstance(source.get("data"), str):
        raise _required(f"{at}.{kind}.source.base64.data")
    data = media.decode_base64(source["data"])
    if data is None:
        raise _invalid(f"{at}.{kind}.source.base64.data: invalid base64 data")
    if kind == "image":
        return media.image_block(media_type, data, ttl)
    return media.document_block(media_type, data, ttl)


def _tools(raw: Any) -> tuple[ToolDef, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _invalid("tools: Input should be a valid list")
    out = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict):
            raise _invalid(f"tools.{i}: Input should be a valid dictionary")
        if not isinstance(tool.get("name"), str):
            raise _required(f"tools.{i}.name")
        if "type" not in tool and "input_schema" not in tool:
            raise _required(f"tools.{i}.input_schema")
        shown = {k: v for k, v in tool.items() if k != "cache_control"}
        json = orjson.dumps(shown, option=orjson.OPT_SORT_KEYS).decode()
        schema = tool.get("input_schema")
        parameters = orjson.dumps(schema).decode() if isinstance(schema, dict) else ""
        out.append(ToolDef(tool["name"], json, _cache_ttl(tool, f"tools.{i}"), parameters))
    return tuple(out)


def _tool_choice(raw: Any, tools: tuple[ToolDef, ...]) -> ToolChoice:
    if raw is None:
        return ToolChoice("auto")
    if not isinstance(raw, dict) or raw.get("type") not in TOOL_CHOICES:
        raise _invalid(
            "tool_choice: Input tag does not match any of the expected tags: "
            "'auto', 'any', 'tool', 'none'"
        )
    parallel = not raw.get("disable_parallel_tool_use", False)
    kind = raw["type"]
    if kind == "tool":
        name = raw.get("name")
        if not isinstance(name, str):
            raise _required("tool_choice.tool.name")
        if name not in {t.name for t in tools}:
            raise _invalid(f"Tool '{name}' not found in provided tools")
        return ToolChoice("tool", name, parallel)
    return ToolChoice("required" if kind == "any" else str(kind), parallel=parallel)


def _stop(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise _invalid("stop_sequences: Input should be a valid list of strings")
    return tuple(raw)
