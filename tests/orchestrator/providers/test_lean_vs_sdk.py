"""The reference test of the lean transport: for the same call it must send what the official
SDK sends, and read the same replies and errors into the same events and reasons.

A recording emulator (the built-in one with a middleware that keeps each request) serves
both transports. For every request case and each API (`openai`, which sends
``max_completion_tokens``; the OpenAI-compatible `emulator` kind, which sends ``max_tokens``;
and `anthropic`), the two requests must agree on the method, the path, the headers that
matter and the JSON body, and the two event sequences must be equal. Then each emulator
fault, and a set of scripted replies that stretch the SSE and error parsing (CRLF line ends,
comments, multi-line data, missing terminal events, non-JSON error bodies...), must end
with the same events and the same error.

Differences between the two requests that are deliberate, and therefore not compared:

- ``accept``: the SDKs send ``application/json`` even when streaming; the lean transport
  asks for ``text/event-stream``, which is what it reads (the APIs ignore the header).
- ``user-agent`` and the SDKs' ``x-stainless-*`` telemetry headers, which the lean
  transport does not send.
- ``content-length``: the two JSON encoders may differ in key order and spacing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDict

from llmesh.services.common.config import ProviderConfig, ResolvedProvider
from llmesh.services.common.errors import LlmeshError
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
from llmesh.services.core.events import Finish, ProviderEvent, ReasoningDelta, TextDelta
from llmesh.services.emulator.app import create_app
from llmesh.services.emulator.settings import EmulatorSettings
from llmesh.services.emulator.thinking import sign
from llmesh.services.orchestrator.providers import anthropic_sdk, lean, openai_sdk
from llmesh.services.orchestrator.providers.base import Provider

MODEL = "claude-test"  # any name outside the anthropic SDK's deprecation list
KEY = "sk-reference-test-key-0123"
EXTRA_HEADERS = {"X-Llmesh-Test": "reference"}

COMPARED_HEADERS = ("authorization", "x-api-key", "anthropic-version", "content-type")
"""Headers that must be equal (including absent in both), besides the configured ones."""

IGNORED_BODY_KEYS: frozenset[str] = frozenset()
"""Body keys the SDKs add that the lean transport need not send: none so far."""

Factory = Callable[[ResolvedProvider], Provider]

APIS: dict[str, tuple[str, str, Factory, Factory]] = {
    # api: (kind, base URL suffix, lean factory, SDK factory)
    "openai": ("openai", "/v1", lean.openai_factory, openai_sdk.openai_factory),
    "emulator": ("emulator", "/v1", lean.compatible_factory, openai_sdk.compatible_factory),
    "anthropic": ("anthropic", "", lean.anthropic_factory, anthropic_sdk.factory),
}


@dataclasses.dataclass
class Seen:
    """One request as the upstream received it."""

    method: str
    path: str
    headers: CIMultiDict[str]
    body: bytes


@dataclasses.dataclass
class Upstream:
    """The recording emulator: its URL and the requests it received."""

    url: str
    seen: list[Seen]


# ---------------------------------------------------------------------------------------
# Scripted replies: bytes the emulator never sends, for the corners of SSE and errors


def _oa(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    """One OpenAI chunk's JSON."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    return orjson.dumps({**chunk, "choices": choices, "usage": None, **extra})


_OA_USAGE = orjson.dumps(
    {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [],
        "usage": {
            "prompt_tokens": 9,
            "completion_tokens": 2,
            "total_tokens": 11,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
    }
)


def _an(kind: str, **fields: Any) -> bytes:
    """One Anthropic event frame."""
    return b"event: %s\ndata: %s\n\n" % (kind.encode(), orjson.dumps({"type": kind, **fields}))


_AN_START = _an(
    "message_start",
    message={
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 9, "output_tokens": 1, "cache_read_input_tokens": 3},
    },
)
_AN_BLOCK = _an("content_block_start", index=0, content_block={"type": "text", "text": ""})
_AN_HELLO = _an("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hello"})
_AN_WORLD = _an("content_block_delta", index=0, delta={"type": "text_delta", "text": " world"})
_AN_END = (
    _an("content_block_stop", index=0)
    + _an(
        "message_delta",
        delta={"stop_reason": "end_turn", "stop_sequence": None},
        usage={"output_tokens": 2},
    )
    + _an("message_stop")
)

SSE = {"content-type": "text/event-stream"}
JSON = {"content-type": "application/json"}

SCRIPTS: dict[str, tuple[int, Mapping[str, str], list[bytes]]] = {
    # name: (status, headers, the body's writes, in order)
    "oa_crlf": (
        200,
        SSE,
        [
            b"data: " + _oa({"role": "assistant", "content": ""}) + b"\r",
            b"\n\r\ndata: " + _oa({"content": "Hi"}) + b"\r\n\r",
            b"\ndata: " + _oa({}, "stop") + b"\r\n\r\ndata: " + _OA_USAGE + b"\r\n\r\n",
            b"data: [DONE]\r\n\r\n",
        ],
    ),
    "oa_comments_and_fields": (
        200,
        SSE,
        [
            b": keep-alive\n\n",
            b"id: 1\nretry: 100\ndata: " + _oa({"content": "Hi"}) + b"\n\n",
            b": another comment\ndata: " + _oa({}, "length") + b"\n\n",
            b"data: [DONE]\n\n",
        ],
    ),
    "oa_multiline_data": (
        200,
        SSE,
        [
            b"data: " + _oa({"content": "a\nb"}).replace(b',"choices"', b',\ndata: "choices"'),
            b"\n\ndata: " + _oa({}, "stop") + b"\n\ndata: [DONE]\n\n",
        ],
    ),
    "oa_no_done": (
        200,
        SSE,
        [
            b"data: " + _oa({"content": "Hi"}) + b"\n\ndata: " + _oa({}, "stop") + b"\n\n",
            b"data: " + _OA_USAGE + b"\n\n",
        ],
    ),
    "oa_no_finish": (200, SSE, [b"data: " + _oa({"content": "Hi"}) + b"\n\ndata: [DONE]\n\n"]),
    "oa_named_error_event": (
        200,
        SSE,
        [
            b"data: " + _oa({"content": "Hi"}) + b"\n\n",
            b'event: error\ndata: {"error": {"message": "boom", "type": "server_error"}}\n\n',
        ],
    ),
    "oa_tool_calls_two_indexes": (
        200,
        SSE,
        [
            b"data: "
            + _oa(
                {
                    "tool_calls": [
                        {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f"}},
                        {"index": 1, "id": "call_b", "type": "function", "function": {"name": "g"}},
                    ]
                }
            )
            + b"\n\n",
            b"data: "
            + _oa({"tool_calls": [{"index": 1, "function": {"arguments": '{"x":'}}]})
            + b"\n\ndata: "
            + _oa({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})
            + b"\n\ndata: "
            + _oa({"tool_calls": [{"index": 1, "function": {"arguments": "1}"}}]})
            + b"\n\n",
            b"data: " + _oa({}, "tool_calls") + b"\n\ndata: [DONE]\n\n",
        ],
    ),
    "oa_json_200": (200, JSON, [b'{"id": "c1", "object": "chat.completion", "choices": []}']),
    "oa_429_retry_after_ms": (
        429,
        {**JSON, "retry-after-ms": "1500", "retry-after": "9"},
        [b'{"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}'],
    ),
    "an_ping_unknown_unnamed": (
        200,
        SSE,
        [
            _AN_START,
            b"event: ping\ndata: {}\n\n",
            _an("future_event", detail={"anything": True}),
            _AN_BLOCK,
            b'data: {"type": "message_stop"}\n\n',  # no event name: skipped by both
            _AN_HELLO,
            b"event: content_block_stop\ndata:\n\n",  # empty data: skipped by both
            _AN_WORLD,
            _AN_END,
        ],
    ),
    "an_crlf": (
        200,
        SSE,
        [
            (_AN_START + _AN_BLOCK + _AN_HELLO).replace(b"\n", b"\r\n")[:-1],
            (b"\n" + _AN_WORLD + _AN_END).replace(b"\n", b"\r\n")[1:],
        ],
    ),
    "an_no_message_stop": (200, SSE, [_AN_START, _AN_BLOCK, _AN_HELLO]),
    "an_error_event_text": (200, SSE, [_AN_START, b"event: error\ndata: it broke\n\n"]),
    "an_error_event_typed": (
        200,
        SSE,
        [
            _AN_START,
            _AN_BLOCK,
            _AN_HELLO,
            _an("error", error={"type": "rate_limit_error", "message": "too fast"}),
        ],
    ),
    "an_529_text": (529, {"content-type": "text/plain"}, [b"Overloaded\n"]),
    "html_502": (502, {"content-type": "text/html"}, [b"<html><body>Bad gateway</body></html>"]),
}


async def _scripted(request: web.Request) -> web.StreamResponse:
    status, headers, writes = SCRIPTS[request.match_info["name"]]
    await request.read()
    resp = web.StreamResponse(status=status, headers=headers)
    await resp.prepare(request)
    for data in writes:
        await resp.write(data)
        await asyncio.sleep(0.002)  # separate reads, so chunk boundaries fall as written
    await resp.write_eof()
    return resp


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    seen: list[Seen] = []

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method == "POST" and not request.path.startswith("/emulator/"):
            body = await request.read()  # cached: the handler reads it again
            seen.append(Seen(request.method, request.path, CIMultiDict(request.headers), body))
        return await handler(request)

    app = create_app(EmulatorSettings(host="127.0.0.1", port=0, cache_min_tokens=8))
    app.middlewares.append(record)
    app.router.add_post("/script/{name}/{rest:.*}", _scripted)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    try:
        yield Upstream(f"http://127.0.0.1:{port}", seen)
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------------------------------
# Running one call on both transports


@dataclasses.dataclass
class Outcome:
    """What a call produced: its events and, if it failed, its error."""

    events: list[ProviderEvent]
    error: LlmeshError | None

    def error_key(self) -> tuple[str, float | None, dict[str, str]] | None:
        if self.error is None:
            return None
        return (self.error.reason.name, self.error.retry_after, dict(self.error.metadata))


def _build(
    api: str, transport: str, url: str, headers: Mapping[str, str] | None = None
) -> Provider:
    kind, suffix, lean_factory, sdk_factory = APIS[api]
    config = ProviderConfig(api, kind, headers={**EXTRA_HEADERS, **(headers or {})}, timeout=10.0)
    factory = lean_factory if transport == "lean" else sdk_factory
    return factory(ResolvedProvider(config, url + suffix, KEY, True))


async def _run(
    provider: Provider, request: ChatRequest, *, timeout: float | None = 10.0
) -> Outcome:
    events: list[ProviderEvent] = []
    error: LlmeshError | None = None
    try:
        async with contextlib.aclosing(provider.stream(MODEL, request, timeout=timeout)) as stream:
            async for event in stream:
                events.append(event)
    except LlmeshError as err:
        error = err
    finally:
        await provider.aclose()
    return Outcome(events, error)


async def _both(
    api: str,
    url: str,
    request: ChatRequest,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = 10.0,
) -> tuple[Outcome, Outcome]:
    """(lean, sdk) outcomes of the same call, each on a freshly reset emulator (whose prompt
    cache would otherwise serve the second call from what the first one wrote)."""
    outcomes = []
    for transport in ("lean", "sdk"):
        await _reset(url)
        provider = _build(api, transport, url, headers)
        outcomes.append(await _run(provider, request, timeout=timeout))
    return outcomes[0], outcomes[1]


async def _reset(url: str) -> None:
    root = url.split("/script/", 1)[0]
    with contextlib.suppress(httpx.TransportError):  # no emulator: nothing to reset
        async with httpx.AsyncClient() as client:
            (await client.post(f"{root}/emulator/reset")).raise_for_status()


def _merged(events: list[ProviderEvent]) -> list[ProviderEvent]:
    """Events with adjacent text deltas joined: the lean transport passes on text that
    arrived in one read as one delta, so only the chunking may differ, never the content."""
    out: list[ProviderEvent] = []
    for event in events:
        if isinstance(event, TextDelta) and out and isinstance(out[-1], TextDelta):
            out[-1] = TextDelta(out[-1].text + event.text, out[-1].logprobs + event.logprobs)
        else:
            out.append(event)
    return out


def _assert_same_outcome(lean_out: Outcome, sdk_out: Outcome, *, same_message: bool) -> None:
    assert _merged(lean_out.events) == _merged(sdk_out.events)
    assert lean_out.error_key() == sdk_out.error_key()
    if same_message and lean_out.error is not None and sdk_out.error is not None:
        assert KEY not in lean_out.error.message
        assert lean_out.error.message == sdk_out.error.message.replace(KEY, "[redacted]")


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
    "text": ChatRequest((Message(Role.USER, "The quick brown fox"),)),
    "system": ChatRequest(
        (Message(Role.SYSTEM, "Be brief."), Message(Role.USER, "Hello big world")),
    ),
    "sampling_and_limits": ChatRequest(
        (Message(Role.USER, "The quick brown fox jumps over the lazy dog"),),
        temperature=0.3,
        top_p=0.9,
        max_tokens=5,
        seed=7,
        stop=(" lazy", "never"),
    ),
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
    value = orjson.loads(body)
    assert isinstance(value, dict)
    return {k: v for k, v in value.items() if k not in IGNORED_BODY_KEYS}


@pytest.mark.parametrize("case", sorted(REQUESTS))
@pytest.mark.parametrize("api", sorted(APIS))
async def test_same_request_and_same_events(upstream: Upstream, api: str, case: str) -> None:
    request = REQUESTS[case]
    upstream.seen.clear()
    lean_out, sdk_out = await _both(api, upstream.url, request)
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
    _assert_same_outcome(lean_out, sdk_out, same_message=True)
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
    lean_out, sdk_out = await _both(api, upstream.url, request)
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
    lean_out, sdk_out = await _both(api, upstream.url, request)
    assert lean_out.error is None and sdk_out.error is None
    for seen in upstream.seen:
        body = _json(seen.body)
        assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    _assert_same_outcome(lean_out, sdk_out, same_message=True)
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
    lean_out, sdk_out = await _both("anthropic", upstream.url, request)
    assert lean_out.error is None and sdk_out.error is None
    assert [_json(s.body)["service_tier"] for s in upstream.seen] == [sent, sent]


async def test_anthropic_version_is_the_one_the_sdk_sends(upstream: Upstream) -> None:
    upstream.seen.clear()
    await _both("anthropic", upstream.url, REQUESTS["text"])
    assert [s.headers.get("anthropic-version") for s in upstream.seen] == [
        lean.ANTHROPIC_VERSION
    ] * 2


async def test_configured_headers_replace_the_defaults(upstream: Upstream) -> None:
    """A configured header of the same name (any case) wins, as in the SDKs."""
    for api in sorted(APIS):
        upstream.seen.clear()
        await _both(api, upstream.url, REQUESTS["text"], headers={"authorization": "Bearer other"})
        assert [s.headers.getall("authorization") for s in upstream.seen] == [["Bearer other"]] * 2


# ---------------------------------------------------------------------------------------
# The same faults

STATUS_FAULTS = (
    "rate_limit",
    "quota",
    "server_error",
    "unavailable",
    "overloaded",
    "auth",
    "bad_request",
    "not_found",
    "context_length",
)


@pytest.mark.parametrize("fault", STATUS_FAULTS)
@pytest.mark.parametrize("api", sorted(APIS))
async def test_same_status_errors(upstream: Upstream, api: str, fault: str) -> None:
    headers = {"x-emulator-fault": fault, "x-emulator-retry-after": "7"}
    lean_out, sdk_out = await _both(api, upstream.url, REQUESTS["text"], headers=headers)
    assert sdk_out.error is not None
    _assert_same_outcome(lean_out, sdk_out, same_message=True)


MID_STREAM = [
    ("stream_error", {"x-emulator-fault-after": "3"}, 10.0, True),
    ("cut", {"x-emulator-fault-after": "2"}, 10.0, False),
    ("cut", {"x-emulator-fault-after": "0"}, 10.0, False),
    ("malformed", {"x-emulator-fault-after": "2"}, 10.0, False),
    ("timeout", {}, 0.3, False),
    ("stall", {"x-emulator-fault-after": "1"}, 0.3, False),
    ("stall", {"x-emulator-fault-after": "1", "x-emulator-stall-ms": "50"}, 10.0, False),
]


@pytest.mark.parametrize(("fault", "extra", "timeout", "same_message"), MID_STREAM)
@pytest.mark.parametrize("api", sorted(APIS))
async def test_same_faults_after_the_stream_started(
    upstream: Upstream,
    api: str,
    fault: str,
    extra: Mapping[str, str],
    timeout: float,
    same_message: bool,
) -> None:
    headers = {"x-emulator-fault": fault, **extra}
    request = REQUESTS["sampling_and_limits"]
    lean_out, sdk_out = await _both(api, upstream.url, request, headers=headers, timeout=timeout)
    _assert_same_outcome(lean_out, sdk_out, same_message=same_message)


@pytest.mark.parametrize("api", sorted(APIS))
async def test_same_unreachable_upstream(api: str) -> None:
    lean_out, sdk_out = await _both(api, "http://127.0.0.1:9", REQUESTS["text"])
    assert sdk_out.error is not None
    _assert_same_outcome(lean_out, sdk_out, same_message=False)


@pytest.mark.parametrize("api", sorted(APIS))
async def test_same_slow_stream_past_the_deadline_is_a_timeout(
    upstream: Upstream, api: str
) -> None:
    """Both give up on a stream that is slower than the deadline, as UPSTREAM_TIMEOUT."""
    headers = {"x-emulator-ttft-ms": "400"}
    lean_out, sdk_out = await _both(
        api, upstream.url, REQUESTS["text"], headers=headers, timeout=0.2
    )
    _assert_same_outcome(lean_out, sdk_out, same_message=False)
    assert sdk_out.error is not None and sdk_out.error.reason.name == "UPSTREAM_TIMEOUT"


# ---------------------------------------------------------------------------------------
# The same reading of replies the emulator never sends

OPENAI_SCRIPTS = sorted(name for name in SCRIPTS if not name.startswith("an_"))
ANTHROPIC_SCRIPTS = sorted(name for name in SCRIPTS if not name.startswith("oa_"))


async def _scripted_both(url: str, api: str, name: str) -> tuple[Outcome, Outcome]:
    return await _both(api, f"{url}/script/{name}", REQUESTS["text"])


@pytest.mark.parametrize("name", OPENAI_SCRIPTS)
async def test_same_reading_of_scripted_openai_replies(upstream: Upstream, name: str) -> None:
    lean_out, sdk_out = await _scripted_both(upstream.url, "emulator", name)
    _assert_same_outcome(lean_out, sdk_out, same_message=True)


@pytest.mark.parametrize("name", ANTHROPIC_SCRIPTS)
async def test_same_reading_of_scripted_anthropic_replies(upstream: Upstream, name: str) -> None:
    lean_out, sdk_out = await _scripted_both(upstream.url, "anthropic", name)
    _assert_same_outcome(lean_out, sdk_out, same_message=True)
