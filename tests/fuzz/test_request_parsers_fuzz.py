"""Every request parser of the gateway fed JSON shaped like its bodies, with any value in any
place: each either builds a request or raises `LlmeshError` INVALID_REQUEST naming a field
(a 400), never another exception (which the gateway answers with a 500). What it builds, the
orchestrator's validation then accepts or refuses the same way.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from llmesh.gateway.anthropic.request import parse_count_request, parse_messages_request
from llmesh.gateway.openai_compat import parse_completion_request
from llmesh.gateway.openai_embeddings import parse_embeddings_request
from llmesh.gateway.responses_api.request import parse_request
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.orchestrator.convert import chat_call_from_proto
from llmesh.v1 import chat_pb2

_KEYS = [
    *("model", "messages", "role", "content", "type", "text", "name", "id", "arguments"),
    *("image_url", "url", "detail", "file", "file_data", "filename", "input_audio", "data"),
    *("format", "tool_calls", "function", "tool_call_id", "tools", "description"),
    *("parameters", "strict", "tool_choice", "response_format", "json_schema", "schema"),
    *("stream", "stream_options", "include_usage", "max_tokens", "temperature", "top_p"),
    *("stop", "seed", "n", "metadata", "user", "logit_bias", "service_tier", "logprobs"),
    *("top_logprobs", "reasoning_effort", "fallbacks", "presence_penalty", "cache"),
    *("system", "source", "media_type", "cache_control", "ttl", "tool_use_id", "is_error"),
    *("input", "thinking", "signature", "budget_tokens", "user_id", "stop_sequences"),
    *("input_schema", "disable_parallel_tool_use", "instructions", "call_id", "output"),
    *("reasoning", "effort", "summary", "include", "store", "previous_response_id"),
    *("max_output_tokens", "encoding_format", "dimensions", "hedge", "max_cost_usd"),
    *("first_token_timeout", "mid_stream_policy", "thinking_budget_tokens", "modalities"),
    *("parallel_tool_calls", "max_completion_tokens", "encrypted_content", "citations"),
]
_WORDS = [
    *("user", "assistant", "system", "developer", "tool", "text", "image_url", "file"),
    *("input_audio", "function", "auto", "none", "required", "any", "json_schema"),
    *("json_object", "low", "medium", "high", "image", "document", "tool_result", "tool_use"),
    *("thinking", "redacted_thinking", "base64", "url", "ephemeral", "5m", "1h", "enabled"),
    *("disabled", "message", "function_call", "function_call_output", "input_text"),
    *("output_text", "input_image", "input_file", "refusal", "reasoning", "float", "default"),
    *("emulator/echo", "https://example.com/a.png", "data:image/png;base64,iVBORw0KGgo="),
    *("aGk=", "{}", '{"a": 1}', "[", "wav", "x", "", "0", "auto", "flex", "1s", "-1s"),
    "reasoning.encrypted_content",
]
_ATOMS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.sampled_from([0, 1, -1, 2, 1024, 2**31, 2**31 - 1, 0.5, 1.5, 2.5, -0.0])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(_WORDS)
    | st.text(max_size=6)
)
_JSON = st.recursive(
    _ATOMS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=24,
)
_OBJECTS = st.dictionaries(st.sampled_from(_KEYS), _JSON, max_size=6)


def _body(required: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies with plausible values for the `required` keys (sometimes) and any others."""
    return (
        st.tuples(st.fixed_dictionaries({k: v for k, v in required.items()}), _OBJECTS).map(
            lambda t: {**t[1], **t[0]}
        )
        | _OBJECTS
    )


_MESSAGES = st.lists(
    st.dictionaries(
        st.sampled_from(["role", "content", "tool_calls", "tool_call_id", "name"]), _JSON
    )
    | st.fixed_dictionaries({"role": st.sampled_from(_WORDS[:6]), "content": _JSON}),
    min_size=1,
    max_size=4,
)
_CHAT = _body({"model": st.just("emulator/echo"), "messages": _MESSAGES})
_ANTHROPIC = _body(
    {"model": st.just("emulator/echo"), "messages": _MESSAGES, "max_tokens": st.just(64)}
)
_RESPONSES = _body({"model": st.just("emulator/echo"), "input": _JSON | _MESSAGES})
_EMBEDDINGS = _body({"model": st.just("emulator/embed"), "input": _JSON})


def _refused_or_valid(parse: Any, body: dict[str, Any]) -> chat_pb2.ChatInput | None:
    try:
        built = parse(body)
    except LlmeshError as err:
        assert err.reason is Reason.INVALID_REQUEST, err
        assert err.violations or "body" in err.message or err.message
        return None
    return built


def _orchestrator_accepts_or_refuses(chat: chat_pb2.ChatInput) -> None:
    chat.SerializeToString()  # every value set fits its field
    try:
        chat_call_from_proto(chat, True)
    except LlmeshError as err:
        assert err.reason is Reason.INVALID_REQUEST, err


@given(_CHAT, st.booleans())
@example({"model": "m", "messages": [{"role": [], "content": "x"}]}, False)
@example(
    {"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": {}}, False
)
@example(
    {"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": []}},
    False,
)
def test_chat_completions_bodies(body: dict[str, Any], drop_unknown: bool) -> None:
    parsed = _refused_or_valid(
        lambda b: parse_completion_request(b, drop_unknown=drop_unknown), body
    )
    if parsed is not None:
        _orchestrator_accepts_or_refuses(parsed.input)


@given(_ANTHROPIC)
@example(
    {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
        "tool_choice": {"type": {}},
    }
)
def test_anthropic_messages_bodies(body: dict[str, Any]) -> None:
    parsed = _refused_or_valid(parse_messages_request, body)
    if parsed is not None:
        _orchestrator_accepts_or_refuses(parsed.input)
    counted = _refused_or_valid(parse_count_request, body)
    if counted is not None:
        _orchestrator_accepts_or_refuses(counted)


@given(_RESPONSES)
@example({"model": "m", "input": "x", "reasoning": {"effort": []}})
@example({"model": "m", "input": "x", "include": [[]]})
@example({"model": "m", "input": "x", "text": {"format": {"type": {}}}})
@example({"model": "m", "input": [{"role": [], "content": "x"}]})
def test_responses_bodies(body: dict[str, Any]) -> None:
    parsed = _refused_or_valid(parse_request, body)
    if parsed is not None:
        _orchestrator_accepts_or_refuses(parsed.chat_input([]))


@given(_EMBEDDINGS)
def test_embeddings_bodies(body: dict[str, Any]) -> None:
    _refused_or_valid(parse_embeddings_request, body)
