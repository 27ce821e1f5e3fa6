"""OpenAI Chat Completions replies, as pure functions: bodies, chunk streams, error bodies.

Streams are bare ``data: {json}`` lines ending with ``data: [DONE]``; the bytes around each
token are built once per request. Errors are ``{"error": {"message", "type", "param",
"code"}}``; `fault_error` holds what OpenAI answers for each injected fault.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmesh.services.emulator.errors import ApiError
from llmesh.services.emulator.generation import ChatCall
from llmesh.services.emulator.replies import Finish, Reply, fragments
from llmesh.services.emulator.sampling import logprobs_object
from llmesh.services.emulator.settings import FaultSpec
from llmesh.services.emulator.streaming import StreamPlan
from llmesh.services.emulator.thinking import pieces

FINISH = {
    Finish.END: "stop",
    Finish.STOP_SEQUENCE: "stop",
    Finish.LENGTH: "length",
    Finish.TOOL_CALLS: "tool_calls",
}
"""OpenAI's name for each way a reply ends."""

FINGERPRINT = "fp_emulator"
CONTEXT_WINDOW = 128000


def usage(prompt: int, completion: int, cached: int, reasoning: int = 0) -> dict[str, Any]:
    """A ``usage`` object; `completion` includes the `reasoning` tokens."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion_body(
    cid: str,
    created: int,
    call: ChatCall,
    reply: Reply,
    call_ids: list[str],
    use: dict[str, Any],
    thought: str | None = None,
) -> bytes:
    """A non-streamed ``chat.completion``; a visible `thought` as ``reasoning_content``."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if thought:
        message["reasoning_content"] = thought
    if reply.tool_calls:
        message["content"] = None
        message["tool_calls"] = [
            {"id": cid_, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c, cid_ in zip(reply.tool_calls, call_ids, strict=True)
        ]
    message["annotations"] = []
    finish = FINISH[reply.finish]
    logprobs = None
    if call.logprobs is not None and not reply.tool_calls:
        logprobs = logprobs_object(reply.pieces, call.logprobs)
    return orjson.dumps(
        {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": call.conv.model,
            "choices": [
                {"index": i, "message": message, "logprobs": logprobs, "finish_reason": finish}
                for i in range(call.n)
            ],
            "usage": use,
            "service_tier": call.service_tier,
            "system_fingerprint": FINGERPRINT,
        }
    )


def stream_plan(
    cid: str,
    created: int,
    call: ChatCall,
    reply: Reply,
    call_ids: list[str],
    use: dict[str, Any],
    thought: str | None = None,
) -> StreamPlan:
    """A ``chat.completion.chunk`` stream: role chunk, one chunk per piece, finish, usage.

    A visible `thought` streams first, as ``reasoning_content`` deltas (vLLM, DeepSeek).
    """
    start = b'data: {"id":"%s","object":"chat.completion.chunk","created":%d,"model":%s,' % (
        cid.encode(),
        created,
        orjson.dumps(call.conv.model),
    )
    start += b'"service_tier":"%s","system_fingerprint":"' % call.service_tier.encode()
    start += FINGERPRINT.encode()
    start += b'","choices":['
    end = b'],"usage":null}\n\n'
    n = call.n

    def chunk(delta: bytes, finish: bytes = b"null", logprobs: bytes = b"null") -> bytes:
        return b"".join(
            start
            + b'{"index":%d,"delta":%s,"logprobs":%s,"finish_reason":%s}'
            % (i, delta, logprobs, finish)
            + end
            for i in range(n)
        )

    if reply.tool_calls:
        head = chunk(b'{"role":"assistant","content":null,"refusal":null}')
        frames: list[bytes] = []
        for c, call_id in zip(reply.tool_calls, call_ids, strict=True):
            first: dict[str, Any] = {"index": c.index, "id": call_id, "type": "function"}
            first["function"] = {"name": c.name, "arguments": ""}
            frames.append(chunk(b'{"tool_calls":[%s]}' % orjson.dumps(first)))
            pre = b'{"tool_calls":[{"index":%d,"function":{"arguments":' % c.index
            frames.extend(chunk(pre + orjson.dumps(f) + b"}}]}") for f in fragments(c.arguments))
    else:
        head = chunk(b'{"role":"assistant","content":"","refusal":null}')
        if call.logprobs is not None:
            frames = [
                chunk(
                    b'{"content":%s}' % orjson.dumps(p),
                    logprobs=orjson.dumps(logprobs_object([p], call.logprobs)),
                )
                for p in reply.pieces
            ]
        elif n == 1:
            pre = start + b'{"index":0,"delta":{"content":'
            post = b'},"logprobs":null,"finish_reason":null}' + end
            frames = [pre + orjson.dumps(p) + post for p in reply.pieces]
        else:
            frames = [chunk(b'{"content":%s}' % orjson.dumps(p)) for p in reply.pieces]
    if thought:
        thinking = [chunk(b'{"reasoning_content":%s}' % orjson.dumps(p)) for p in pieces(thought)]
        frames = thinking + frames
    tail = chunk(b"{}", b'"%s"' % FINISH[reply.finish].encode())
    if call.include_usage:
        tail += start + b'],"usage":' + orjson.dumps(use) + b"}\n\n"
    tail += b"data: [DONE]\n\n"
    return StreamPlan(
        head=head,
        pieces=frames,
        tail=tail,
        error_frame=b"data: " + error_body(SERVER_ERROR) + b"\n\n",
        malformed_frame=b"data: {not json\n\n",
    )


def error_body(err: ApiError) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}``."""
    return orjson.dumps(
        {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}}
    )


SERVER_ERROR = ApiError(
    500,
    "The server had an error while processing your request. Sorry about that!",
    "server_error",
)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def context_error(window: int, tokens: int, completion: int | None = None) -> ApiError:
    """OpenAI's answer to a prompt of `tokens` (plus the `completion` tokens asked for, when
    the request sets max_tokens) over a `window`-token context."""
    if completion is not None:
        return ApiError(
            400,
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{tokens + completion} tokens ({tokens} in the messages, {completion} in the "
            "completion). Please reduce the length of the messages or completion.",
            param="messages",
            code="context_length_exceeded",
        )
    return ApiError(
        400,
        f"This model's maximum context length is {window} tokens. However, your "
        f"messages resulted in {tokens} tokens. Please reduce the length of the messages.",
        param="messages",
        code="context_length_exceeded",
    )


def fault_error(fault: FaultSpec, model: str, prompt_tokens: int, api_key: str) -> ApiError:
    """The error OpenAI answers for a status fault."""
    name = fault.fault
    if name == "rate_limit":
        wait = _seconds(fault.retry_after)
        return ApiError(
            429,
            f"Rate limit reached for {model} in organization org-emulator on requests per min "
            f"(RPM): Limit 500, Used 500, Requested 1. Please try again in {wait}s. Visit "
            "https://platform.openai.com/account/rate-limits to learn more.",
            "requests",
            code="rate_limit_exceeded",
            headers={
                "retry-after": wait,
                "retry-after-ms": str(int(fault.retry_after * 1000)),
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{wait}s",
            },
        )
    if name == "quota":
        return ApiError(
            429,
            "You exceeded your current quota, please check your plan and billing details. For "
            "more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors.",
            "insufficient_quota",
            code="insufficient_quota",
        )
    if name in ("server_error", "stream_error"):
        return SERVER_ERROR
    if name == "unavailable":
        return ApiError(503, "The server is overloaded or not ready yet.", "server_error")
    if name == "overloaded":
        return ApiError(
            503,
            "That model is currently overloaded with other requests. You can retry your "
            "request, or contact us through our help center at help.openai.com if the error "
            "persists.",
            "server_error",
        )
    if name == "auth":
        hidden = "*" * max(0, len(api_key) - 7)
        shown = api_key[:3] + hidden + api_key[-4:] if len(api_key) > 8 else "*" * len(api_key)
        return ApiError(
            401,
            f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )
    if name == "not_found":
        return ApiError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )
    if name == "context_length":
        return context_error(CONTEXT_WINDOW, CONTEXT_WINDOW + prompt_tokens)
    return ApiError(
        400, "Invalid request: rejected by the emulator's bad_request fault.", param=None
    )
