"""The contract cases on the gateway's OpenAI Responses API (``/v1/responses``).

`responses_body` rewrites a case's `ChatInput` as a Responses request (messages as items,
llmesh's own fields as extra body fields); `run_responses` sends it, unary or streamed, and
turns what comes back into the runner's `Outcome` (a `ChatResponse`, or the stream's
semantic events mapped to `StreamChatResponse` events), so `runner.check` holds this surface
to the same contract. What the Responses API has no place for is left out of the check
(`responses_expectations`): the provider's own finish reason, the start event's provider,
mid-stream switches, the usage's estimate flag, and llmesh's own event sequence (this
module checks the Responses event grammar instead). A case whose request the API cannot
express (stop sequences, audio input, a malformed message, a block order that leaves a block
out) does not run on this surface (`expressible`); the other surfaces still hold it. An
assistant turn with a block order is written as items in that order.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from google.protobuf import json_format

from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason
from llmesh.v1 import chat_pb2, orchestrator_pb2

RESPONSES_SURFACES = ("responses-unary", "responses-stream")


class Inexpressible(Exception):
    """A case's request has no Responses API equivalent (the message says what)."""


def expressible(case: dict[str, Any]) -> bool:
    """Whether a chat case's request can be written as a Responses request."""
    try:
        responses_body(case["request"])
    except Inexpressible:
        return False
    return True


_OWN_FIELDS = (
    "fallbacks",
    "mid_stream_policy",
    "first_token_timeout",
    "stall_timeout",
    "hedge",
    "cache",
    "max_cost_usd",
    "thinking_budget_tokens",
)
_EFFORTS = {
    chat_pb2.REASONING_EFFORT_LOW: "low",
    chat_pb2.REASONING_EFFORT_MEDIUM: "medium",
    chat_pb2.REASONING_EFFORT_HIGH: "high",
}
_FORMATS = {
    chat_pb2.RESPONSE_FORMAT_TYPE_TEXT: "text",
    chat_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT: "json_object",
    chat_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA: "json_schema",
}
_ROLES = {chat_pb2.ROLE_SYSTEM: "system", chat_pb2.ROLE_USER: "user"}
_MODES = {
    chat_pb2.TOOL_CHOICE_MODE_AUTO: "auto",
    chat_pb2.TOOL_CHOICE_MODE_NONE: "none",
    chat_pb2.TOOL_CHOICE_MODE_REQUIRED: "required",
}


def _data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def _part(part: chat_pb2.ContentPart) -> dict[str, Any]:
    kind = part.WhichOneof("kind")
    if kind == "text":
        return {"type": "input_text", "text": part.text}
    if kind == "image":
        image = part.image
        url = image.url or _data_url(image.media_type, image.data)
        return {"type": "input_image", "image_url": url, "detail": image.detail or "auto"}
    if kind == "document":
        doc = part.document
        out: dict[str, Any] = {"type": "input_file", "filename": doc.title or "document"}
        if doc.url:
            out["file_url"] = doc.url
        else:
            out["file_data"] = _data_url(doc.media_type, doc.data)
        return out
    raise Inexpressible(f"the Responses API has no {kind} input part")


def _reasoning(block: chat_pb2.ThinkingBlock) -> dict[str, Any]:
    item = {"type": "reasoning", "summary": [{"type": "summary_text", "text": block.thinking}]}
    return item | ({"encrypted_content": block.signature} if block.signature else {})


def _said(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text}],
    }


def _call(call: chat_pb2.ToolCall) -> dict[str, Any]:
    return {
        "type": "function_call",
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
    }


def _ordered(message: chat_pb2.Message) -> list[dict[str, Any]]:
    """An assistant turn's items in its block order: one per block, text runs cut from the
    content. An order that does not place every block once has no item form."""
    refs = message.block_order
    placed = sorted((r.kind, r.index) for r in refs if r.kind != chat_pb2.BLOCK_KIND_TEXT)
    every = sorted(
        [(chat_pb2.BLOCK_KIND_THINKING, k) for k in range(len(message.thinking))]
        + [(chat_pb2.BLOCK_KIND_TOOL_CALL, k) for k in range(len(message.tool_calls))]
    )
    lengths = [r.text_length for r in refs if r.kind == chat_pb2.BLOCK_KIND_TEXT]
    if lengths == [0]:
        lengths = [len(message.content)]
    if message.parts or placed != every or sum(lengths) != len(message.content):
        raise Inexpressible("items place every block of a turn once")
    items: list[dict[str, Any]] = []
    at = 0
    for ref in refs:
        if ref.kind == chat_pb2.BLOCK_KIND_THINKING:
            items.append(_reasoning(message.thinking[ref.index]))
        elif ref.kind == chat_pb2.BLOCK_KIND_TOOL_CALL:
            items.append(_call(message.tool_calls[ref.index]))
        else:
            length = lengths.pop(0)
            items.append(_said(message.content[at : at + length]))
            at += length
    return items


def _items(message: chat_pb2.Message) -> list[dict[str, Any]]:
    if message.block_order:
        return _ordered(message)
    if message.role == chat_pb2.ROLE_ASSISTANT:
        items = [_reasoning(b) for b in message.thinking]
        if message.content:
            items.append(_said(message.content))
        items.extend(_call(c) for c in message.tool_calls)
        return items
    if message.role == chat_pb2.ROLE_TOOL:
        if not message.tool_call_id:
            raise Inexpressible("a function_call_output item always names its call")
        output = {"type": "function_call_output", "call_id": message.tool_call_id}
        return [output | {"output": message.content}]
    if message.role not in _ROLES:
        raise Inexpressible("a Responses message item always has a role")
    if message.parts and message.content:
        raise Inexpressible("a Responses message item has one content")
    content: Any = [_part(p) for p in message.parts] if message.parts else message.content
    return [{"type": "message", "role": _ROLES[message.role], "content": content}]


def responses_body(request: dict[str, Any]) -> dict[str, Any]:
    """A case's `ChatInput` (protobuf JSON) as a ``POST /v1/responses`` body."""
    chat = json_format.ParseDict(request, chat_pb2.ChatInput())
    if chat.stop or chat.HasField("seed"):
        raise Inexpressible("the Responses API has no stop sequences or seed")
    sampling = ("presence_penalty", "frequency_penalty", "top_logprobs")
    if any(chat.HasField(f) for f in sampling) or chat.logit_bias or chat.logprobs:
        raise Inexpressible("the Responses surface does not carry penalties, bias or logprobs")
    if chat.service_tier:
        raise Inexpressible("the Responses surface takes no service tier but the default")
    body: dict[str, Any] = {
        "model": chat.model,
        "input": [item for m in chat.messages for item in _items(m)],
    }
    if chat.tools:
        body["tools"] = [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": json_format.MessageToDict(t.parameters),
            }
            for t in chat.tools
        ]
    if chat.HasField("tool_choice"):
        mode = chat.tool_choice.mode
        body["tool_choice"] = (
            {"type": "function", "name": chat.tool_choice.name}
            if mode == chat_pb2.TOOL_CHOICE_MODE_TOOL
            else _MODES[mode]
        )
    if chat.HasField("parallel_tool_calls"):
        body["parallel_tool_calls"] = chat.parallel_tool_calls
    for key in ("temperature", "top_p"):
        if chat.HasField(key):
            body[key] = getattr(chat, key)
    if chat.HasField("max_tokens"):
        body["max_output_tokens"] = chat.max_tokens
    if chat.metadata:
        body["metadata"] = dict(chat.metadata)
    if chat.reasoning_effort:
        body["reasoning"] = {"effort": _EFFORTS[chat.reasoning_effort]}
    fmt = chat.response_format
    if fmt.type:
        spec: dict[str, Any] = {"type": _FORMATS[fmt.type]}
        if fmt.type == chat_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA:
            spec |= {
                "name": fmt.name,
                "schema": json.loads(fmt.schema or "null"),
                "strict": fmt.strict,
            }
        body["text"] = {"format": spec}
    if fmt.schema_repair_attempts:
        body["schema_repair_attempts"] = fmt.schema_repair_attempts
    own = json_format.MessageToDict(chat, preserving_proto_field_name=True)
    body.update({k: own[k] for k in _OWN_FIELDS if k in own})
    return body


def responses_expectations(case: dict[str, Any]) -> dict[str, Any]:
    """The case's expectations without what the Responses API does not carry."""
    expect = {k: v for k, v in case["expect"].items() if k not in ("sequence", "start", "switch")}
    if "finish" in expect:
        expect["finish"] = {k: v for k, v in expect["finish"].items() if k != "provider_reason"}
    if "usage" in expect:
        expect["usage"] = {k: v for k, v in expect["usage"].items() if k != "estimated"}
    if "error" in expect and str(expect["error"].get("field", "")).startswith("input.messages"):
        # the item's own path (input[i]...) names it here, not the ChatInput's message path
        expect["error"] = {k: v for k, v in expect["error"].items() if k != "field"}
    return {**case, "expect": expect}


def _usage(usage: dict[str, Any]) -> chat_pb2.Usage:
    details = usage.get("input_tokens_details") or {}
    cached, written = details.get("cached_tokens", 0), details.get("cache_write_tokens", 0)
    return chat_pb2.Usage(
        input_tokens=usage["input_tokens"] - cached - written,
        output_tokens=usage["output_tokens"],
        cache_read_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=(usage.get("output_tokens_details") or {}).get("reasoning_tokens", 0),
    )


def _finish(response: dict[str, Any]) -> int:
    reason = (response.get("incomplete_details") or {}).get("reason")
    if reason == "max_output_tokens":
        return chat_pb2.FINISH_REASON_LENGTH
    if reason == "content_filter":
        return chat_pb2.FINISH_REASON_CONTENT_FILTER
    if any(o["type"] == "function_call" for o in response["output"]):
        return chat_pb2.FINISH_REASON_TOOL_CALLS
    return chat_pb2.FINISH_REASON_STOP


def _reply(response: dict[str, Any]) -> orchestrator_pb2.ChatResponse:
    message = chat_pb2.Message(role=chat_pb2.ROLE_ASSISTANT)
    for item in response["output"]:
        if item["type"] == "reasoning":
            text = "".join(s["text"] for s in item["summary"])
            message.thinking.add(thinking=text, signature=item.get("encrypted_content") or "")
        elif item["type"] == "message":
            message.content += "".join(c["text"] for c in item["content"])
        elif item["type"] == "function_call":
            message.tool_calls.add(
                id=item["call_id"], name=item["name"], arguments=item["arguments"]
            )
    return orchestrator_pb2.ChatResponse(
        message=message,
        finish_reason=_finish(response),  # type: ignore[arg-type]
        usage=_usage(response["usage"]),
        model=response["model"],
    )


def _error(body: dict[str, Any], retry_after: str | None = None) -> LlmeshError:
    err = body.get("error", body)
    code = str(err.get("code") or "internal").upper()
    reason = Reason[code] if code in Reason.__members__ else Reason.INVALID_REQUEST
    param = err.get("param")
    violations = (FieldViolation(param, err["message"]),) if param else ()
    delay = float(retry_after) if retry_after is not None else None
    return LlmeshError(reason, err["message"], delay, violations)


def _events(events: list[dict[str, Any]], out: Any) -> None:
    """Map the semantic events onto llmesh's stream events, checking their grammar."""
    S = orchestrator_pb2.StreamChatResponse
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    out.events.append(S(start=orchestrator_pb2.StartEvent()))
    final = {o["id"] for o in (events[-1].get("response") or {}).get("output", [])}
    restart = S(switch=orchestrator_pb2.SwitchEvent(policy=chat_pb2.MID_STREAM_POLICY_RESTART))
    calls: dict[str, int] = {}
    kinds: dict[int, str] = {}
    for e in events[2:]:
        kind = e["type"]
        if kind == "response.output_item.added":
            kinds[e["output_index"]] = e["item"]["type"]
            if e["item"]["type"] == "function_call":
                calls[e["item"]["id"]] = len(calls)
                delta = orchestrator_pb2.ToolCallDelta(
                    index=calls[e["item"]["id"]], id=e["item"]["call_id"], name=e["item"]["name"]
                )
                out.events.append(S(tool_call_delta=delta))
        elif kind == "response.output_text.delta":
            out.events.append(S(text_delta=orchestrator_pb2.TextDelta(text=e["delta"])))
        elif kind == "response.reasoning_summary_text.delta":
            delta = orchestrator_pb2.ReasoningDelta(text=e["delta"], index=e["output_index"])
            out.events.append(S(reasoning_delta=delta))
        elif kind == "response.output_item.done" and e["item"]["id"] not in final:
            if out.events[-1] != restart:  # left out of the final output: a restart
                out.events.append(restart)
        elif kind == "response.output_item.done" and e["item"]["type"] == "reasoning":
            signature = e["item"].get("encrypted_content") or ""
            if signature:
                delta = orchestrator_pb2.ReasoningDelta(
                    signature=signature, index=e["output_index"]
                )
                out.events.append(S(reasoning_delta=delta))
        elif kind == "response.function_call_arguments.delta":
            delta = orchestrator_pb2.ToolCallDelta(
                index=calls[e["item_id"]], arguments_delta=e["delta"]
            )
            out.events.append(S(tool_call_delta=delta))
        elif kind == "error":
            out.error = _error(e)
        elif kind in ("response.completed", "response.incomplete"):
            assert e is events[-1], "the terminal event is the last"
            response = e["response"]
            finish = orchestrator_pb2.FinishEvent(
                reason=_finish(response), usage=_usage(response["usage"])
            )  # type: ignore[arg-type]
            out.events.append(S(finish=finish))
        elif kind == "response.failed":
            assert e is events[-1] and out.error is not None, "an error event, then failed"
    assert set(kinds.values()) <= {"reasoning", "message", "function_call"}


async def run_responses(url: str, case: dict[str, Any], stream: bool, out: Any) -> Any:
    """Run a chat case on ``/v1/responses``, filling the runner's `Outcome` `out`."""
    body = responses_body(case["request"]) | {"stream": stream, "store": False}
    headers = {"x-llmesh-timeout": str(case.get("deadline_ms", 30_000) / 1000)}
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        r = await client.post("/v1/responses", json=body, headers=headers)
    if r.status_code != 200:
        out.http_status = r.status_code
        out.error = _error(r.json(), r.headers.get("retry-after"))
        return out
    if not stream:
        out.reply = _reply(r.json())
        return out
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    _events(events, out)
    return out
