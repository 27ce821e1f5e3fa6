"""The lean transport's reference test, requests: for the same call it must send what the
official SDK sends, and read the same replies into the same events
(`tests.support.lean_reference`; the faults are in `test_lean_vs_sdk_faults.py`).

For every request case and each API (`openai`, which sends ``max_completion_tokens``; the
OpenAI-compatible `emulator` kind, which sends ``max_tokens``; and `anthropic`), the two
requests must agree on the method, the path, the headers that matter and the JSON body, and
the two event sequences must be equal.

Differences between the two requests that are deliberate, and therefore not compared:

- ``accept``: the SDKs send ``application/json`` even when streaming; the lean transport
  asks for ``text/event-stream``, which is what it reads (the APIs ignore the header).
- ``user-agent`` and the SDKs' ``x-stainless-*`` telemetry headers, which the lean
  transport does not send.
- ``content-length``: the two JSON encoders may differ in key order and spacing.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llmesh.services.core.chat import (
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    ReasoningEffort,
    ResponseFormat,
    ResponseFormatType,
    Role,
    ServiceTier,
    TextPart,
    ThinkingBlock,
    Tool,
    ToolCall,
    ToolChoiceMode,
)
from llmesh.services.core.events import Finish, ReasoningDelta, TextDelta
from llmesh.services.emulator.thinking import sign
from llmesh.services.orchestrator.providers import lean
from tests.support.lean_reference import (
    APIS,
    EXTRA_HEADERS,
    KEY,
    SAMPLING,
    TEXT,
    Upstream,
    assert_same_outcome,
    both,
    json_body,
    upstream,
)

COMPARED_HEADERS = ("authorization", "x-api-key", "anthropic-version", "content-type")
"""Headers that must be equal (including absent in both), besides the configured ones."""

IGNORED_BODY_KEYS: frozenset[str] = frozenset()
"""Body keys the SDKs add that the lean transport need not send: none so far."""


__all__ = ["upstream"]  # the fixture, used by name


# ---------------------------------------------------------------------------------------
# The same requests

TOOLS = (
    Tool(
        "get_weather",
        "Weather by city",
        {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    ),
    Tool("get_time"),
)
CALL = ToolCall("call_1", "get_weather", '{"city": "Oslo", "days": 2}')

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
PDF = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n"

REQUESTS: dict[str, ChatRequest] = {
    "text": TEXT,
    "system": ChatRequest(
        (Message(Role.SYSTEM, "Be brief."), Message(Role.USER, "Hello big world")),
    ),
    "sampling_and_limits": SAMPLING,
    "service_tier": ChatRequest(
        (Message(Role.USER, "The quick brown fox"),), service_tier=ServiceTier.DEFAULT
    ),
    "stop_sequence_hit": ChatRequest(
        (Message(Role.USER, "one two three four"),), stop=(" three",), temperature=0.0
    ),
    "tool_call": ChatRequest(
        (Message(Role.USER, "call get_weather for Oslo, please"),), tools=TOOLS
    ),
    "tool_choice_named": ChatRequest(
        (Message(Role.USER, "what time is it?"),),
        tools=TOOLS,
        tool_choice=ToolChoiceMode.TOOL,
        tool_choice_name="get_time",
    ),
    "tool_choice_required": ChatRequest(
        (Message(Role.USER, "anything"),), tools=TOOLS, tool_choice=ToolChoiceMode.REQUIRED
    ),
    "tool_history": ChatRequest(
        (
            Message(Role.SYSTEM, "Use tools."),
            Message(Role.USER, "weather in Oslo?"),
            Message(Role.ASSISTANT, "Checking.", tool_calls=(CALL,)),
            Message(Role.TOOL, "sunny, 21 C", tool_call_id="call_1"),
        ),
        tools=TOOLS,
        tool_choice=ToolChoiceMode.AUTO,
    ),
    "conversation_unicode": ChatRequest(
        (
            Message(Role.USER, "Grüß dich"),
            Message(Role.ASSISTANT, "Hallo! 🙂"),
            Message(Role.USER, "Écris « bonjour » en 日本語\nsur deux lignes\t!"),
        ),
        max_tokens=64,
    ),
    "thinking_round_trip": ChatRequest(
        (
            Message(Role.USER, "think first"),
            Message(Role.ASSISTANT, "Done.", thinking=(ThinkingBlock("Hm.", sign("Hm.")),)),
            Message(Role.USER, "and again"),
        ),
        max_tokens=2048,
        thinking_budget_tokens=1024,
        reasoning_effort=ReasoningEffort.LOW,
    ),
    "json_schema": ChatRequest(
        (Message(Role.USER, "Weather in Oslo"),),
        response_format=ResponseFormat(
            ResponseFormatType.JSON_SCHEMA,
            "forecast",
            {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city", "days"],
                "additionalProperties": False,
            },
            strict=True,
        ),
    ),
    "json_object": ChatRequest(
        (Message(Role.USER, "Weather in Oslo"),),
        response_format=ResponseFormat(ResponseFormatType.JSON_OBJECT),
    ),
    "long_system_prompt_cache": ChatRequest(
        (
            Message(Role.SYSTEM, " ".join(f"rule{i}" for i in range(1200))),
            Message(Role.USER, "hi"),
        ),
        prompt_cache_ttl="1h",
    ),
    "image_and_document_parts": ChatRequest(
        (
            Message(
                Role.USER,
                parts=(
                    TextPart("What is in these?"),
                    ImagePart(data=PNG, media_type="image/png", detail="low"),
                    DocumentPart(PDF, "application/pdf", "report.pdf"),
                ),
            ),
        ),
    ),
    "image_url_part": ChatRequest(
        (
            Message(
                Role.USER,
                parts=(ImagePart(url="https://example.com/cat.png"), TextPart("Describe")),
            ),
        ),
    ),
}


def _json(body: bytes) -> dict[str, Any]:
    return {k: v for k, v in json_body(body).items() if k not in IGNORED_BODY_KEYS}


@pytest.mark.parametrize("case", sorted(REQUESTS))
@pytest.mark.parametrize("api", sorted(APIS))
async def test_same_request_and_same_events(upstream: Upstream, api: str, case: str) -> None:
    request = REQUESTS[case]
    upstream.seen.clear()
    lean_out, sdk_out = await both(api, upstream.url, request)
    assert len(upstream.seen) == 2
    sent, ref = upstream.seen

    assert sent.method == ref.method == "POST"
    assert sent.path == ref.path
    assert sent.path == ("/v1/messages" if api == "anthropic" else "/v1/chat/completions")
    for name in (*COMPARED_HEADERS, *EXTRA_HEADERS):
        assert sent.headers.getall(name, []) == ref.headers.getall(name, []), name
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["accept"] == "text/event-stream"
    assert not [h for h in sent.headers if h.lower().startswith("x-stainless")]
    assert _json(sent.body) == _json(ref.body)

    assert sdk_out.error is None, sdk_out.error
    assert isinstance(sdk_out.events[-1], Finish)
    assert_same_outcome(lean_out, sdk_out, same_message=True)
    if case == "thinking_round_trip" and api == "anthropic":  # the emulator checked the block
        assert [e for e in lean_out.events if isinstance(e, ReasoningDelta) and e.signature]
    if request.response_format is not None:  # JSON text, whichever wire carried it
        text = "".join(e.text for e in sdk_out.events if isinstance(e, TextDelta))
        assert isinstance(orjson.loads(text), dict)
        assert sdk_out.events[-1].reason.value == "stop"


@pytest.mark.parametrize("api", ["openai", "emulator"])
async def test_penalties_logit_bias_and_tier_reach_the_openai_wire(
    upstream: Upstream, api: str
) -> None:
    request = ChatRequest(
        (Message(Role.USER, "The quick brown fox"),),
        presence_penalty=0.5,
        frequency_penalty=-0.25,
        logit_bias={"50256": -100, "7": 3},
        service_tier=ServiceTier.FLEX,
    )
    upstream.seen.clear()
    lean_out, sdk_out = await both(api, upstream.url, request)
    assert lean_out.error is None and sdk_out.error is None, (lean_out.error, sdk_out.error)
    for seen in upstream.seen:
        body = _json(seen.body)
        assert body["presence_penalty"] == 0.5 and body["frequency_penalty"] == -0.25
        assert body["logit_bias"] == {"50256": -100, "7": 3}
        assert body["service_tier"] == "flex"
    assert len(upstream.seen) == 2


@pytest.mark.parametrize("api", ["openai", "emulator"])
async def test_both_read_the_same_logprobs(upstream: Upstream, api: str) -> None:
    request = ChatRequest(
        (Message(Role.USER, "The quick brown fox"),), logprobs=True, top_logprobs=2
    )
    upstream.seen.clear()
    lean_out, sdk_out = await both(api, upstream.url, request)
    assert lean_out.error is None and sdk_out.error is None
    for seen in upstream.seen:
        body = _json(seen.body)
        assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    assert_same_outcome(lean_out, sdk_out, same_message=True)
    deltas = [e for e in sdk_out.events if isinstance(e, TextDelta)]
    tokens = [lp for d in deltas for lp in d.logprobs]
    assert tokens and "".join(t.token for t in tokens) == "".join(d.text for d in deltas)
    assert all(len(t.top) == 2 and t.top[0].token == t.token and t.logprob < 0 for t in tokens)
    assert all(t.utf8 == t.token.encode() for t in tokens)


@pytest.mark.parametrize(
    ("tier", "sent"), [(ServiceTier.AUTO, "auto"), (ServiceTier.DEFAULT, "standard_only")]
)
async def test_anthropic_gets_its_own_service_tier(
    upstream: Upstream, tier: ServiceTier, sent: str
) -> None:
    request = ChatRequest((Message(Role.USER, "hi"),), service_tier=tier)
    upstream.seen.clear()
    lean_out, sdk_out = await both("anthropic", upstream.url, request)
    assert lean_out.error is None and sdk_out.error is None
    assert [_json(s.body)["service_tier"] for s in upstream.seen] == [sent, sent]


async def test_anthropic_version_is_the_one_the_sdk_sends(upstream: Upstream) -> None:
    upstream.seen.clear()
    await both("anthropic", upstream.url, TEXT)
    assert [s.headers.get("anthropic-version") for s in upstream.seen] == [
        lean.ANTHROPIC_VERSION
    ] * 2


async def test_configured_headers_replace_the_defaults(upstream: Upstream) -> None:
    """A configured header of the same name (any case) wins, as in the SDKs."""
    for api in sorted(APIS):
        upstream.seen.clear()
        await both(api, upstream.url, TEXT, headers={"authorization": "Bearer other"})
        assert [s.headers.getall("authorization") for s in upstream.seen] == [["Bearer other"]] * 2
