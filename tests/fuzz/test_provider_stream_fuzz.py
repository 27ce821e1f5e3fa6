"""The provider adapters' readers of streamed replies (`openai_wire.OpenAIStreamParser`,
`anthropic_stream.AnthropicStreamParser`) fed events shaped like the providers' with any value
anywhere: each event gives well-typed provider events or raises `LlmeshError` (an upstream
error event, or MALFORMED_RESPONSE), never another exception, which the orchestrator could
only report as an internal error.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from llmesh.services.common.errors import LlmeshError
from llmesh.services.core.events import (
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
)
from llmesh.services.orchestrator.providers.anthropic_stream import AnthropicStreamParser
from llmesh.services.orchestrator.providers.openai_wire import OpenAIStreamParser

_KEYS = [
    *("id", "model", "choices", "index", "delta", "content", "reasoning_content", "reasoning"),
    *("refusal", "tool_calls", "function", "name", "arguments", "finish_reason", "usage"),
    *("prompt_tokens", "completion_tokens", "prompt_tokens_details", "cached_tokens"),
    *("completion_tokens_details", "reasoning_tokens", "logprobs", "token", "logprob"),
    *("bytes", "top_logprobs", "error", "message", "code", "type", "content_block", "text"),
    *("partial_json", "input", "thinking", "signature", "data", "stop_reason"),
    *("stop_sequence", "input_tokens", "output_tokens", "cache_read_input_tokens"),
]
_WORDS = [
    *("content_block_delta", "content_block_start", "message_start", "message_delta"),
    *("message_stop", "text_delta", "input_json_delta", "thinking_delta", "signature_delta"),
    *("text", "tool_use", "thinking", "redacted_thinking", "stop", "length", "tool_calls"),
    *("end_turn", "x", "", '{"a"', "error", "overloaded_error", "ping"),
]
_ATOMS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(_WORDS)
    | st.text(max_size=5)
)
_JSON = st.recursive(
    _ATOMS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=8,
)
_EVENTS = st.lists(st.dictionaries(st.sampled_from(_KEYS), _JSON, max_size=4), max_size=4)


def _well_typed(event: Any) -> None:
    if isinstance(event, TextDelta):
        assert isinstance(event.text, str), event
    elif isinstance(event, ReasoningDelta):
        assert isinstance(event.text, str) and isinstance(event.index, int), event
    elif isinstance(event, ToolCallDelta):
        assert isinstance(event.index, int), event
        assert all(isinstance(v, str) for v in (event.id, event.name, event.arguments_delta))
    elif isinstance(event, UsageUpdate | Finish):
        usage = event.usage
        assert usage is None or all(
            isinstance(v, int)
            for v in (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens)
        ), event


def _feed(parser: Any, events: list[dict[str, Any]]) -> None:
    for event in events:
        try:
            produced = parser.feed(event)
        except LlmeshError:
            return  # the stream ends here, classified
        for one in produced:
            _well_typed(one)


@given(_EVENTS)
@example([{"choices": "ab"}])
@example([{"choices": [{"delta": {"content": 5}}]}])
@example([{"choices": [{"delta": {"tool_calls": [{"index": {}}]}}]}])
@example([{"usage": ["x"]}])
def test_openai_chunks(events: list[dict[str, Any]]) -> None:
    _feed(OpenAIStreamParser(), events)


@given(_EVENTS, st.sampled_from([None, "json_reply"]))
def test_anthropic_events(events: list[dict[str, Any]], structured: str | None) -> None:
    _feed(AnthropicStreamParser(structured), events)
