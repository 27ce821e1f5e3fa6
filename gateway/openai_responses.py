"""llmesh replies -> OpenAI Chat Completions objects and stream chunks (pure functions).

Reasoning follows the convention of OpenAI-compatible servers (vLLM, DeepSeek): streamed as
``reasoning_content`` deltas, never mixed into ``content``, and in a whole reply as the
message's ``reasoning_content`` (the text of its thinking blocks joined; absent when the
model showed none). Signatures are not part of the /v1 shape: a caller that must send
Anthropic thinking blocks back uses the gRPC or native API.

This is the gateway's hot path, so objects are built from the proto fields directly (no
`MessageToDict`) and encoded with orjson; stream chunks reuse a pre-rendered common prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.v1 import chat_pb2, orchestrator_pb2

_FINISH_REASONS: dict[int, str] = {
    chat_pb2.FINISH_REASON_STOP: "stop",
    chat_pb2.FINISH_REASON_LENGTH: "length",
    chat_pb2.FINISH_REASON_TOOL_CALLS: "tool_calls",
    chat_pb2.FINISH_REASON_CONTENT_FILTER: "content_filter",
}


def finish_reason(value: int) -> str:
    """OpenAI's ``finish_reason`` for a `FinishReason` (unknown -> ``stop``)."""
    return _FINISH_REASONS.get(value, "stop")


def usage_dict(usage: chat_pb2.Usage) -> dict[str, Any]:
    """OpenAI's usage object; prompt tokens include cache reads and writes."""
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def completion(reply: orchestrator_pb2.ChatResponse, model: str, created: int) -> dict[str, Any]:
    """A ``chat.completion`` object for a whole reply."""
    tool_calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in reply.message.tool_calls
    ]
    content = reply.message.content
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if tool_calls and not content else content,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    reasoning = "".join(b.thinking for b in reply.message.thinking)
    if reasoning:
        message["reasoning_content"] = reasoning
    return {
        "id": f"chatcmpl-{reply.request_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(reply.finish_reason),
                "logprobs": logprobs_object(reply.logprobs) if reply.logprobs else None,
            }
        ],
        "usage": usage_dict(reply.usage),
    }


def _top(t: chat_pb2.TokenLogprob | chat_pb2.TopLogprob) -> dict[str, Any]:
    return {"token": t.token, "logprob": t.logprob, "bytes": list(t.bytes)}


def logprobs_object(logprobs: Sequence[chat_pb2.TokenLogprob]) -> dict[str, Any]:
    """A choice's ``logprobs``: ``{"content": [{token, logprob, bytes, top_logprobs}],
    "refusal": null}``."""
    return {
        "content": [
            {**_top(lp), "top_logprobs": [_top(t) for t in lp.top_logprobs]} for lp in logprobs
        ],
        "refusal": None,
    }


def model_object(info: orchestrator_pb2.ModelInfo) -> dict[str, Any]:
    """One entry of ``GET /v1/models``."""
    return {"id": info.name, "object": "model", "created": 0, "owned_by": info.provider}


DONE = b"data: [DONE]\n\n"
"""The line that ends a successful OpenAI stream, and only a successful one."""


def error_line(body: dict[str, Any]) -> bytes:
    """A mid-stream error as OpenAI sends it: a bare ``data:`` line with an error object."""
    return b"data: " + orjson.dumps(body) + b"\n\n"


class ChunkEncoder:
    """Turns `StreamChatResponse` events into ``chat.completion.chunk`` SSE lines.

    Every chunk shares the id (``chatcmpl-<request_id>`` from the start event), ``created``
    and ``model``; their common JSON is rendered once, so each event costs one small
    `orjson.dumps`. `finished` becomes true at the finish event, which emits the finish
    chunk, the usage chunk (with ``include_usage``) and ``[DONE]``.
    """

    def __init__(
        self,
        model: str,
        created: int,
        include_usage: bool,
        fallback_id: str,
        *,
        index: int = 0,
        shared_id: bool = False,
        last: bool = True,
    ) -> None:
        """`index` is the choice's; `shared_id` keeps `fallback_id` as the chunks' id (the
        choices of one reply share it) instead of the start event's; without `last`, the
        finish emits only the finish chunk (the caller sends the usage chunk and ``[DONE]``
        once every choice finished)."""
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self.request_id = fallback_id
        self.finished = False
        self._usage: chat_pb2.Usage | None = None
        self._index = b"%d" % index
        self._shared_id = shared_id
        self._last = last
        self.final_usage = chat_pb2.Usage()
        """The choice's usage once it finished."""
        self._head = b""
        self._tail = b"}]" + (b',"usage":null' if include_usage else b"") + b"}\n\n"

    def _open(self, request_id: str) -> bytes:
        self.request_id = self.request_id if self._shared_id else request_id
        request_id = self.request_id
        head = orjson.dumps(
            {
                "id": f"chatcmpl-{request_id}",
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
            }
        )[:-1]
        self._head = b"data: " + head
        return self._chunk(b'{"role":"assistant","content":""}')

    def _chunk(self, delta: bytes, finish: bytes = b"null", logprobs: bytes = b"null") -> bytes:
        return (
            self._head
            + b',"choices":[{"index":'
            + self._index
            + b',"delta":'
            + delta
            + b',"logprobs":'
            + logprobs
            + b',"finish_reason":'
            + finish
            + self._tail
        )

    def encode(self, event: orchestrator_pb2.StreamChatResponse) -> bytes:
        """The SSE bytes for one event (possibly empty)."""
        if self.finished:
            return b""
        kind = event.WhichOneof("event")
        opening = b""
        if not self._head:
            if kind == "start":
                return self._open(event.start.request_id or self.request_id)
            opening = self._open(self.request_id)
        if kind == "text_delta":
            if not event.text_delta.text:
                return opening
            content = b'{"content":' + orjson.dumps(event.text_delta.text) + b"}"
            if event.text_delta.logprobs:
                logprobs = orjson.dumps(logprobs_object(event.text_delta.logprobs))
                return opening + self._chunk(content, logprobs=logprobs)
            return opening + self._chunk(content)
        if kind == "reasoning_delta":
            if not event.reasoning_delta.text:  # a signature: not part of the /v1 shape
                return opening
            return opening + self._chunk(
                b'{"reasoning_content":' + orjson.dumps(event.reasoning_delta.text) + b"}"
            )
        if kind == "tool_call_delta":
            return opening + self._chunk(_tool_call_delta(event.tool_call_delta))
        if kind == "usage":
            self._usage = event.usage
            return opening
        if kind == "finish":
            return opening + self._finish(event.finish)
        if kind == "switch" and event.switch.policy == chat_pb2.MID_STREAM_POLICY_RESTART:
            # The new target starts the reply again; chunks already sent cannot be taken back.
            raise LlmeshError(
                Reason.STREAM_INTERRUPTED,
                "the call restarted on another target after part of the reply was sent, which "
                "a Chat Completions stream cannot show; use mid_stream_policy continue, or the "
                "gRPC or /api/v1 stream, which carry the switch",
            )
        return opening

    def _finish(self, finish: orchestrator_pb2.FinishEvent) -> bytes:
        self.finished = True
        reason = finish_reason(finish.reason).encode()
        out = self._chunk(b"{}", b'"' + reason + b'"')
        self.final_usage = (finish.usage if finish.HasField("usage") else self._usage) or (
            chat_pb2.Usage()
        )
        if not self._last:
            return out
        if self.include_usage:
            out += self.usage_chunk(self.final_usage)
        return out + DONE

    def usage_chunk(self, usage: chat_pb2.Usage) -> bytes:
        """The final chunk carrying `usage` (``choices: []``)."""
        return self._head + b',"choices":[],"usage":' + orjson.dumps(usage_dict(usage)) + b"}\n\n"


def _tool_call_delta(delta: orchestrator_pb2.ToolCallDelta) -> bytes:
    call: dict[str, Any] = {"index": delta.index}
    if delta.id:
        call["id"] = delta.id
        call["type"] = "function"
    function: dict[str, str] = {"arguments": delta.arguments_delta}
    if delta.name:
        function["name"] = delta.name
    call["function"] = function
    return b'{"tool_calls":[' + orjson.dumps(call) + b"]}"
