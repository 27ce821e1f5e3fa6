"""The contract cases on the gateway's Anthropic Messages API (``/v1/messages``).

A case's `ChatInput` is written as a Messages body (the cases whose request uses only what
that API can say: no llmesh-only options, no content parts, no block order); the reply,
whole or streamed, is read back into a `ChatResponse`, so the runner's summary checks text,
tool calls, finish, usage and reasoning as on the other surfaces. The stream must follow Anthropic's
event grammar. Errors are checked in Anthropic's terms: the HTTP status and error ``type``
the reason maps to (several reasons share one type, so the reason itself is not visible).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from google.protobuf import json_format

from llmesh.gateway.anthropic.errors import error_type, status_of
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.v1 import chat_pb2, orchestrator_pb2

SURFACES = ("messages-unary", "messages-stream")
HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "unused"}
_FINISH = {
    "end_turn": chat_pb2.FINISH_REASON_STOP,
    "stop_sequence": chat_pb2.FINISH_REASON_STOP,
    "max_tokens": chat_pb2.FINISH_REASON_LENGTH,
    "tool_use": chat_pb2.FINISH_REASON_TOOL_CALLS,
    "refusal": chat_pb2.FINISH_REASON_CONTENT_FILTER,
}
_BLOCK = r" content_block_start( content_block_delta| ping)*"
_GRAMMAR = re.compile(
    rf"error|message_start ping( ping|{_BLOCK} content_block_stop)*"
    rf"(({_BLOCK})? error| message_delta message_stop)"
)
_SAYABLE = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "thinking_budget_tokens",
        "parallel_tool_calls",
    }
)


def applies(case: dict[str, Any]) -> bool:
    """True for a chat case the Messages API can express."""
    if case.get("call") == "embed":
        return False
    chat = json_format.ParseDict(case["request"], chat_pb2.ChatInput())
    used = {f.name for f, _ in chat.ListFields()}
    if not used <= _SAYABLE:
        return False
    for i, m in enumerate(chat.messages):
        if m.parts or m.name or m.block_order or (m.role == chat_pb2.ROLE_SYSTEM and i > 0):
            return False
    return True


def _blocks(m: chat_pb2.Message) -> list[dict[str, Any]]:
    if m.role == chat_pb2.ROLE_TOOL:
        return [{"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}]
    blocks: list[dict[str, Any]] = []
    for b in m.thinking:
        if b.redacted_data:
            blocks.append({"type": "redacted_thinking", "data": b.redacted_data})
        else:
            blocks.append({"type": "thinking", "thinking": b.thinking, "signature": b.signature})
    if m.content:
        blocks.append({"type": "text", "text": m.content})
    for c in m.tool_calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": c.id,
                "name": c.name,
                "input": json.loads(c.arguments or "{}"),
            }
        )
    return blocks


_ROLES = {
    chat_pb2.ROLE_USER: "user",
    chat_pb2.ROLE_TOOL: "user",
    chat_pb2.ROLE_ASSISTANT: "assistant",
}
_CHOICES = {
    chat_pb2.TOOL_CHOICE_MODE_AUTO: "auto",
    chat_pb2.TOOL_CHOICE_MODE_REQUIRED: "any",
    chat_pb2.TOOL_CHOICE_MODE_NONE: "none",
    chat_pb2.TOOL_CHOICE_MODE_TOOL: "tool",
}


def messages_body(case: dict[str, Any]) -> dict[str, Any]:
    """A case's request as a Messages body."""
    chat = json_format.ParseDict(case["request"], chat_pb2.ChatInput())
    body: dict[str, Any] = {"model": chat.model, "max_tokens": 4096, "messages": []}
    for m in chat.messages:
        if m.role == chat_pb2.ROLE_SYSTEM:
            body["system"] = m.content
            continue
        role = _ROLES.get(m.role)  # a missing role stays missing: the gateway refuses it
        body["messages"].append({"role": role, "content": _blocks(m)})
    if chat.tools:
        body["tools"] = [
            {
                "name": t.name,
                "description": t.description,
                "input_schema": json_format.MessageToDict(t.parameters) or {"type": "object"},
            }
            for t in chat.tools
        ]
    if chat.tool_choice.mode in _CHOICES:
        body["tool_choice"] = {"type": _CHOICES[chat.tool_choice.mode]}
        if chat.tool_choice.name:
            body["tool_choice"]["name"] = chat.tool_choice.name
    if chat.HasField("parallel_tool_calls") and not chat.parallel_tool_calls:
        body.setdefault("tool_choice", {"type": "auto"})["disable_parallel_tool_use"] = True
    for name, key in (("temperature", "temperature"), ("top_p", "top_p")):
        if chat.HasField(name):
            body[key] = getattr(chat, name)
    if chat.HasField("max_tokens"):
        body["max_tokens"] = chat.max_tokens
    if chat.stop:
        body["stop_sequences"] = list(chat.stop)
    if chat.HasField("thinking_budget_tokens"):
        body["thinking"] = {"type": "enabled", "budget_tokens": chat.thinking_budget_tokens}
    return body


def _reply(message: dict[str, Any]) -> orchestrator_pb2.ChatResponse:
    """A Messages ``message`` object as the `ChatResponse` it stands for."""
    reply = orchestrator_pb2.ChatResponse(request_id=message["id"].removeprefix("msg_"))
    for block in message["content"]:
        if block["type"] == "text":
            reply.message.content += block["text"]
        elif block["type"] == "tool_use":
            reply.message.tool_calls.add(
                id=block["id"], name=block["name"], arguments=json.dumps(block["input"])
            )
        elif block["type"] == "thinking":
            reply.message.thinking.add(thinking=block["thinking"], signature=block["signature"])
        elif block["type"] == "redacted_thinking":
            reply.message.thinking.add(redacted_data=block["data"])
    reason = message["stop_reason"]
    reply.finish_reason = _FINISH.get(reason, chat_pb2.FINISH_REASON_UNSPECIFIED)
    reply.provider_finish_reason = reason
    usage = message["usage"]
    reply.usage.input_tokens = usage["input_tokens"]
    reply.usage.output_tokens = usage["output_tokens"]
    reply.usage.cache_read_tokens = usage["cache_read_input_tokens"]
    reply.usage.cache_write_tokens = usage["cache_creation_input_tokens"]
    return reply


def _accumulate(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The message a stream's events build, as the anthropic SDK builds it."""
    message: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for name, data in events:
        if name == "message_start":
            message = data["message"]
        elif name == "content_block_start":
            message["content"].append(dict(data["content_block"]))
        elif name == "content_block_delta":
            block, delta = message["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] += delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
        elif name == "content_block_stop" and data["index"] in partial:
            message["content"][data["index"]]["input"] = json.loads(partial[data["index"]])
        elif name == "message_delta":
            message.update(data["delta"])
            message["usage"] = data["usage"]
    return message


def _error(status: int, body: dict[str, Any], out: Any) -> None:
    out.http_status = status
    assert body["type"] == "error", body
    out.error = LlmeshError(Reason.INTERNAL, body["error"]["message"])
    out.messages_error_type = body["error"]["type"]


async def run(url: str, case: dict[str, Any], surface: str, out: Any) -> Any:
    """Run `case` on a Messages surface, filling the runner's `out` (an `Outcome`)."""
    body = messages_body(case)
    headers = {**HEADERS, "x-llmesh-timeout": str(case.get("deadline_ms", 30_000) / 1000)}
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        if surface == "messages-unary":
            r = await client.post("/v1/messages", json=body, headers=headers)
            if r.status_code != 200:
                _error(r.status_code, r.json(), out)
            else:
                out.reply = _reply(r.json())
            return out
        body["stream"] = True
        async with client.stream("POST", "/v1/messages", json=body, headers=headers) as r:
            if r.status_code != 200:
                _error(r.status_code, json.loads(await r.aread()), out)
                return out
            events: list[tuple[str, dict[str, Any]]] = []
            name = ""
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    assert data["type"] == name, f"event {name} carries type {data['type']}"
                    events.append((name, data))
    names = " ".join(n for n, _ in events)
    assert _GRAMMAR.fullmatch(names), f"Anthropic event grammar broken: {names}"
    if events[-1][0] == "error":
        out.error = LlmeshError(Reason.INTERNAL, events[-1][1]["error"]["message"])
        out.messages_error_type = events[-1][1]["error"]["type"]
        return out
    out.reply = _reply(_accumulate(events))
    return out


def check(case: dict[str, Any], out: Any, summary: Any, subset: Any) -> None:
    """Assert that a Messages outcome honours the case (see the module docstring)."""
    expect = case["expect"]
    if "error" in expect:
        assert out.error is not None, f"expected {expect['error']['reason']}, got a reply"
        reason = Reason[expect["error"]["reason"]]
        status = status_of(LlmeshError(reason, ""))
        if out.http_status is not None:
            assert out.http_status == status, f"status {out.http_status}, {out.error.message}"
        assert out.messages_error_type == error_type(status), out.error.message
        return
    assert out.error is None, f"unexpected error {out.error.message}"
    got = summary(out)
    if "text" in expect:
        assert got["text"] == expect["text"], f"text {got['text']!r}"
    if "tool_calls" in expect:
        assert [c["name"] for c in got["tool_calls"]] == [c["name"] for c in expect["tool_calls"]]
        for g, e in zip(got["tool_calls"], expect["tool_calls"], strict=True):
            assert json.loads(g["arguments"]) == json.loads(e["arguments"])
    if "finish" in expect:
        finish = dict(expect["finish"])
        if finish.get("provider_reason") not in _FINISH:
            finish.pop("provider_reason", None)  # not an Anthropic word: not shown
        subset(finish, got["finish"], "finish")
    if "usage" in expect:
        usage = {k: v for k, v in expect["usage"].items() if k != "estimated"}
        subset(usage, got["usage"], "usage")
    if "reasoning" in expect:
        subset(expect["reasoning"], got["reasoning"], "reasoning")
