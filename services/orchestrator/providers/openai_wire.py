"""The OpenAI Chat Completions wire format, as pure functions.

Shared by the `openai`, `openai-compatible` and `emulator` adapters (and by any leaner
transport carrying the same bytes): building the request body, turning each streamed
``chat.completion.chunk`` (as a dict) into provider events, and classifying errors by the
``type`` / ``code`` in OpenAI's error body.

Reasoning: ``reasoning_effort`` is sent when the request sets one. OpenAI itself keeps its
reasoning hidden and reports only its size (``completion_tokens_details.reasoning_tokens``,
part of ``completion_tokens``); OpenAI-compatible servers (vLLM, DeepSeek) stream the text as
``reasoning_content`` (or ``reasoning``) beside ``content`` in each delta, which becomes
`ReasoningDelta`s of block 0. Such text carries no signature and is not sent back: these
servers reject or ignore it in input messages. Thinking blocks of an earlier turn (an
Anthropic model's) are left out likewise; a redacted block, whose content only Anthropic can
read, cannot be translated and is INVALID_REQUEST naming it.

Penalties, logit bias, the service tier and ``logprobs`` / ``top_logprobs`` are sent as set
(`OPTIONS`: this API honours every optional feature a `ChatRequest` can ask for); each
choice's ``logprobs.content`` rides on the `TextDelta` of the same chunk.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from llmesh.services.common.errors import LlmeshError, Reason, invalid
from llmesh.services.core.chat import (
    ChatRequest,
    ContentPart,
    DocumentPart,
    FinishReason,
    ImagePart,
    Message,
    ResponseFormat,
    ResponseFormatType,
    Role,
    ServiceTier,
    TextPart,
    ToolChoiceMode,
)
from llmesh.services.core.events import (
    Finish,
    ProviderEvent,
    ReasoningDelta,
    TextDelta,
    TokenLogprob,
    ToolCallDelta,
    TopLogprob,
    UsageUpdate,
)
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.providers.errors import retry_after_from_headers

OPTIONS = frozenset(
    {
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        *(f"service_tier:{t.value}" for t in ServiceTier if t is not ServiceTier.UNSPECIFIED),
    }
)
"""The optional features (`ChatRequest.options`) the Chat Completions API honours."""

_FINISH = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
}


def data_url(media_type: str, data: bytes) -> str:
    """A ``data:`` URL carrying `data` in base64."""
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def content_part(part: ContentPart) -> dict[str, Any]:
    """One content part in OpenAI's chat completions shape."""
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        image: dict[str, Any] = {"url": part.url or data_url(part.media_type, part.data)}
        if part.detail:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    if isinstance(part, DocumentPart):
        if part.url:  # the engine fetches it first (`llmesh.services.orchestrator.media`)
            raise LlmeshError(
                Reason.INVALID_REQUEST, "OpenAI-style providers take documents only as bytes"
            )
        file: dict[str, Any] = {"file_data": data_url(part.media_type, part.data)}
        if part.title:
            file["filename"] = part.title
        return {"type": "file", "file": file}
    audio = {"data": base64.b64encode(part.data).decode("ascii"), "format": part.format}
    return {"type": "input_audio", "input_audio": audio}


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role.value}
    if m.parts:
        out["content"] = [content_part(p) for p in m.parts]
        if m.role is Role.ASSISTANT and m.tool_calls:
            out["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in m.tool_calls
            ]
    elif m.role is Role.ASSISTANT and m.tool_calls:
        out["content"] = m.content or None
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    else:
        out["content"] = m.content
    if m.role is Role.TOOL:
        out["tool_call_id"] = m.tool_call_id
    if m.name:
        out["name"] = m.name
    return out


def _tool_choice(req: ChatRequest) -> Any:
    mode = req.tool_choice
    if mode is ToolChoiceMode.TOOL:
        return {"type": "function", "function": {"name": req.tool_choice_name}}
    if mode is ToolChoiceMode.UNSPECIFIED:
        return None
    return mode.value


def response_format_body(fmt: ResponseFormat) -> dict[str, Any]:
    """OpenAI's ``response_format`` object for a requested reply shape."""
    if fmt.type is ResponseFormatType.JSON_SCHEMA:
        spec: dict[str, Any] = {"name": fmt.name, "schema": dict(fmt.schema)}
        if fmt.strict:
            spec["strict"] = True
        return {"type": "json_schema", "json_schema": spec}
    return {"type": fmt.type.value}


def to_provider_request(
    model: str, req: ChatRequest, *, max_tokens_field: str = "max_tokens"
) -> dict[str, Any]:
    """The JSON body (without ``stream``) for ``POST /chat/completions``, for `model`, the
    provider's own model id.

    `max_tokens_field` is ``max_completion_tokens`` for OpenAI itself (its reasoning models
    reject ``max_tokens``) and ``max_tokens`` for compatible servers, which mostly know only that.
    """
    for i, m in enumerate(req.messages):
        for k, block in enumerate(m.thinking):
            if block.redacted_data:
                raise invalid(
                    f"messages[{i}].thinking[{k}].redacted_data",
                    "a redacted thinking block can only go back to an Anthropic model",
                )
    body: dict[str, Any] = {
        "model": model,
        "messages": [_message(m) for m in req.messages],
    }
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": dict(t.parameters) or {"type": "object", "properties": {}},
                },
            }
            for t in req.tools
        ]
        choice = _tool_choice(req)
        if choice is not None:
            body["tool_choice"] = choice
        if req.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = req.parallel_tool_calls
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.max_tokens is not None:
        body[max_tokens_field] = req.max_tokens
    if req.stop:
        body["stop"] = list(req.stop)
    if req.seed is not None:
        body["seed"] = req.seed
    if req.reasoning_effort.value:
        body["reasoning_effort"] = req.reasoning_effort.value
    if req.response_format is not None:
        body["response_format"] = response_format_body(req.response_format)
    if req.presence_penalty is not None:
        body["presence_penalty"] = req.presence_penalty
    if req.frequency_penalty is not None:
        body["frequency_penalty"] = req.frequency_penalty
    if req.logit_bias:
        body["logit_bias"] = dict(req.logit_bias)
    if req.service_tier.value:
        body["service_tier"] = req.service_tier.value
    if req.logprobs:
        body["logprobs"] = True
        if req.top_logprobs is not None:
            body["top_logprobs"] = req.top_logprobs
    return body


def _utf8(raw: Mapping[str, Any]) -> bytes:
    data = raw.get("bytes")
    if isinstance(data, list):
        return bytes(b for b in data if isinstance(b, int) and 0 <= b < 256)
    return str(raw.get("token") or "").encode()


def logprobs_from_openai(raw: Any) -> tuple[TokenLogprob, ...]:
    """A choice's ``logprobs`` object (``{"content": [...]}``) as token logprobs."""
    content = raw.get("content") if isinstance(raw, Mapping) else None
    if not isinstance(content, list):
        return ()
    return tuple(
        TokenLogprob(
            str(item.get("token") or ""),
            float(item.get("logprob") or 0.0),
            _utf8(item),
            tuple(
                TopLogprob(str(t.get("token") or ""), float(t.get("logprob") or 0.0), _utf8(t))
                for t in item.get("top_logprobs") or ()
                if isinstance(t, Mapping)
            ),
        )
        for item in content
        if isinstance(item, Mapping)
    )


def usage_from_openai(raw: Mapping[str, Any]) -> Usage:
    """Normalize an OpenAI ``usage`` object: input excludes cached tokens, as in `Usage`."""
    prompt = int(raw.get("prompt_tokens") or 0)
    details = raw.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0)
    out_details = raw.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=max(prompt - cached, 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        cache_read_tokens=cached,
        reasoning_tokens=int(out_details.get("reasoning_tokens") or 0),
    )


def _text(value: Any) -> str:
    """A string field of a chunk; absent or null is empty, anything else is malformed."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError("a text field is not a string")
    return value


class OpenAIStreamParser:
    """Turns streamed chunks into events; `end()` says whether the stream was complete.

    The stream is complete once a choice has reported a ``finish_reason``; the usage chunk
    (``choices: []``) follows it when ``include_usage`` was asked for. Servers that ignore
    ``include_usage`` finish without usage, and the caller estimates it.
    """

    __slots__ = ("finish_reason", "response_id", "response_model", "usage")

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.response_id: str | None = None
        """The reply's ``id`` and ``model`` as the first chunk names them."""
        self.response_model = ""

    def feed(self, chunk: Mapping[str, Any]) -> list[ProviderEvent]:
        """Events for one chunk; raises `LlmeshError` for an error object in the stream.

        A chunk of the wrong shape (a string where an object belongs, a number for text, ...)
        raises MALFORMED_RESPONSE.
        """
        try:  # one method, not two, and no call per text field: it runs for every chunk
            if chunk.get("error"):
                raise classify_error_body(chunk["error"], status=None, headers=None)
            if self.response_id is None:
                self.response_id = str(chunk.get("id") or "")
                self.response_model = str(chunk.get("model") or "")
            events: list[ProviderEvent] = []
            for choice in chunk.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue  # llmesh asks for one choice
                delta = choice.get("delta") or {}
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if reasoning and isinstance(reasoning, str):
                    events.append(ReasoningDelta(reasoning))
                text = delta.get("content")
                if text is not None and not isinstance(text, str):
                    raise TypeError("a text field is not a string")
                if text:
                    logprobs = choice.get("logprobs")
                    events.append(
                        TextDelta(text, logprobs_from_openai(logprobs))
                        if logprobs
                        else TextDelta(text)
                    )
                refusal = delta.get("refusal")
                if refusal is not None and not isinstance(refusal, str):
                    raise TypeError("a text field is not a string")
                if refusal:
                    events.append(TextDelta(refusal))
                for call in delta.get("tool_calls") or ():
                    fn = call.get("function") or {}
                    index = call.get("index", 0)
                    if isinstance(index, bool) or not isinstance(index, int):
                        raise TypeError("a tool call's index is not an integer")
                    events.append(
                        ToolCallDelta(
                            index=index,
                            id=_text(call.get("id")),
                            name=_text(fn.get("name")),
                            arguments_delta=_text(fn.get("arguments")),
                        )
                    )
                reason = choice.get("finish_reason")
                if reason:
                    self.finish_reason = reason
            raw_usage = chunk.get("usage")
            if raw_usage:
                self.usage = usage_from_openai(raw_usage)
                events.append(UsageUpdate(self.usage))
            return events
        except (AttributeError, LookupError, TypeError, ValueError) as exc:
            raise LlmeshError(
                Reason.MALFORMED_RESPONSE, "upstream sent a malformed chat.completion.chunk"
            ) from exc

    def end(self) -> Finish:
        """The terminal event, or STREAM_INTERRUPTED when no choice ever finished."""
        if self.finish_reason is None:
            raise LlmeshError(
                Reason.STREAM_INTERRUPTED, "upstream stream ended without a finish_reason"
            )
        return Finish(
            _FINISH.get(self.finish_reason, FinishReason.UNSPECIFIED),
            self.finish_reason,
            self.usage,
            self.response_id or "",
            self.response_model,
        )


def from_completion(body: Mapping[str, Any]) -> list[ProviderEvent]:
    """Events equivalent to a non-streamed ``chat.completion`` response."""
    parser = OpenAIStreamParser()
    events: list[ProviderEvent] = []
    for choice in body.get("choices") or ():
        msg = choice.get("message") or {}
        delta = {
            "reasoning_content": msg.get("reasoning_content") or msg.get("reasoning"),
            "content": msg.get("content"),
            "refusal": msg.get("refusal"),
            "tool_calls": [
                {"index": i, **call} for i, call in enumerate(msg.get("tool_calls") or ())
            ],
        }
        events += parser.feed(
            {
                "choices": [
                    {
                        "index": choice.get("index", 0),
                        "delta": delta,
                        "logprobs": choice.get("logprobs"),
                        "finish_reason": choice.get("finish_reason"),
                    }
                ]
            }
        )
    if body.get("usage"):
        events += parser.feed({"usage": body["usage"]})
    events.append(parser.end())
    return events


def classify_error_body(
    error: Any, *, status: int | None, headers: Mapping[str, str] | None
) -> LlmeshError:
    """Classify an OpenAI error object (``{"message", "type", "code", "param"}``)."""
    err = error if isinstance(error, Mapping) else {}
    etype = str(err.get("type") or "")
    code = str(err.get("code") or "")
    message = str(err.get("message") or error or "upstream error")
    retry = retry_after_from_headers(headers)
    lowered = message.lower()
    if code == "insufficient_quota" or etype == "insufficient_quota":
        return LlmeshError(Reason.QUOTA_EXHAUSTED, f"upstream quota exhausted: {message}")
    if code == "context_length_exceeded" or "maximum context length" in lowered:
        return LlmeshError(Reason.CONTEXT_TOO_LONG, message)
    if status == 429 or code == "rate_limit_exceeded" or etype in ("requests", "tokens"):
        return LlmeshError(Reason.RATE_LIMITED, f"upstream rate limit: {message}", retry)
    if status in (401, 403) or etype in ("authentication_error", "permission_error"):
        return LlmeshError(Reason.UPSTREAM_AUTH_FAILED, "upstream rejected the credentials")
    if status == 404 or code == "model_not_found":
        return LlmeshError(Reason.MODEL_NOT_FOUND, f"upstream: {message}")
    if status == 408:
        return LlmeshError(Reason.UPSTREAM_TIMEOUT, message, retry)
    if "overloaded" in lowered or etype == "overloaded_error":
        return LlmeshError(Reason.OVERLOADED, f"upstream overloaded: {message}", retry)
    if status is not None and 400 <= status < 500:
        if code == "content_filter" or "content_filter" in etype:
            return LlmeshError(Reason.CONTENT_FILTERED, message)
        return LlmeshError(Reason.UPSTREAM_INVALID_REQUEST, f"upstream refused: {message}")
    return LlmeshError(Reason.UPSTREAM_UNAVAILABLE, f"upstream error: {message}", retry)
