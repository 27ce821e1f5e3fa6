"""The lean adapters on recorded exchanges: `MockTransport` in place of the connection pool.

The bodies are the emulator's own bytes (`tests.support.recorded_wire`), so these tests
read what the live ones in `test_lean.py` read, without a server: a streamed reply, a 429
with ``retry-after``, an error event inside a 200, and streams cut before their end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from llmesh.services.common.config import ProviderConfig, ResolvedProvider
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.resilience_settings import RetrySettings
from llmesh.services.core.call import ChatCall
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role
from llmesh.services.core.events import Completed, Finish, ProviderEvent, TextDelta, UsageUpdate
from llmesh.services.core.trail import Outcome
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.engine import Orchestrator
from llmesh.services.orchestrator.providers import default_registry, lean
from llmesh.services.orchestrator.providers.lean import DEADLINE_GRACE, LeanProvider
from llmesh.services.orchestrator.routing import Router
from llmesh.services.transport import (
    ConnectionPool,
    MockRequest,
    MockResponse,
    MockTransport,
    UpstreamClosed,
)
from tests.support import recorded_wire as wire

KEY = "sk-test-secret-key-123"
MODEL = "claude-test"
APIS = ("openai", "anthropic")
STREAMS = {"openai": wire.OPENAI_STREAM, "anthropic": wire.ANTHROPIC_STREAM}
CUT_AFTER = {"openai": 3, "anthropic": 5}
"""Pieces of each recorded stream up to and including the second text delta."""
BEFORE_TERMINAL = {"openai": 4, "anthropic": -1}
"""Pieces of each recorded stream before its terminal event (the stop reason for OpenAI)."""


def _kind(api: str) -> str:
    return "anthropic" if api == "anthropic" else "emulator"


def _provider(api: str, transport: MockTransport, **config: Any) -> LeanProvider:
    """A lean adapter for `api` whose requests go to `transport`."""
    cfg = ProviderConfig(api, _kind(api), timeout=10.0, **config)
    if api == "anthropic":
        return lean.anthropic_factory(ResolvedProvider(cfg, "http://up.test", KEY, True), transport)
    resolved = ResolvedProvider(cfg, "http://up.test/v1", KEY, True)
    return lean.compatible_factory(resolved, transport)


def _replying(*responses: MockResponse) -> MockTransport:
    """A transport answering its requests with `responses` in turn."""
    queue = list(responses)
    return MockTransport(lambda request: queue.pop(0))


def _request() -> ChatRequest:
    return ChatRequest((Message(Role.USER, "Hello there, wire"),), max_tokens=16)


async def _collect(provider: LeanProvider, *, timeout: float | None = None) -> list[ProviderEvent]:
    return [event async for event in provider.stream(MODEL, _request(), timeout=timeout)]


async def _fails(provider: LeanProvider) -> tuple[LlmeshError, list[ProviderEvent]]:
    """The error the call raises, and the events delivered before it."""
    events: list[ProviderEvent] = []
    with pytest.raises(LlmeshError) as info:
        async with contextlib.aclosing(provider.stream(MODEL, _request(), timeout=None)) as stream:
            async for event in stream:
                events.append(event)
    assert not any(isinstance(e, Finish) for e in events)
    assert KEY not in str(info.value)
    return info.value, events


def _text(events: Sequence[ProviderEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDelta)]


# ---------------------------------------------------------------------------------------
# Replies


@pytest.mark.parametrize("api", APIS)
async def test_a_streamed_reply_arrives_delta_by_delta_then_finishes(api: str) -> None:
    reply = MockResponse(200, wire.SSE_HEADERS, STREAMS[api])
    provider = _provider(api, _replying(reply))
    events = await _collect(provider)
    assert _text(events) == ["Hello", " there,", " wire"]
    usage = Usage(input_tokens=9, output_tokens=3)
    assert events[-1] == Finish(
        FinishReason.STOP,
        "end_turn" if api == "anthropic" else "stop",
        usage,
        response_model=MODEL,  # as the reply names it
    )
    assert any(isinstance(e, UsageUpdate) for e in events)
    assert reply.released and not reply.closed  # read to its end: back to the pool


@pytest.mark.parametrize("api", APIS)
async def test_deltas_that_arrive_in_one_read_are_passed_on_as_one(api: str) -> None:
    reply = MockResponse(200, wire.SSE_HEADERS, b"".join(STREAMS[api]))
    events = await _collect(_provider(api, _replying(reply)))
    assert _text(events) == ["Hello there, wire"]
    assert isinstance(events[-1], Finish)


@pytest.mark.parametrize(
    ("api", "path", "headers"),
    [
        ("openai", "/chat/completions", {}),
        ("anthropic", "/v1/messages", {"anthropic-version": lean.ANTHROPIC_VERSION}),
    ],
)
async def test_the_request_reaches_the_transport_as_the_wire_format_says(
    api: str, path: str, headers: dict[str, str]
) -> None:
    transport = _replying(MockResponse(200, wire.SSE_HEADERS, STREAMS[api]))
    provider = _provider(api, transport, headers={"X-Extra": "1"}, connect_timeout=2.5)
    await _collect(provider, timeout=4.0)
    (request,) = transport.requests
    assert (request.method, request.url) == ("POST", transport.base_url + path)
    assert request.headers == {
        "content-type": "application/json",
        "accept": "text/event-stream",
        "authorization": f"Bearer {KEY}",
        **headers,
        "x-extra": "1",
    }
    body = request.json()
    assert body["stream"] is True and body["max_tokens"] == 16
    assert body["model"] == MODEL
    assert "Hello there, wire" in str(body["messages"])
    assert request.timeout == 4.0 + DEADLINE_GRACE
    assert request.connect_timeout == 2.5


async def test_without_a_deadline_the_configured_timeout_bounds_the_call() -> None:
    transport = _replying(MockResponse(200, wire.SSE_HEADERS, wire.OPENAI_STREAM))
    await _collect(_provider("openai", transport))
    assert transport.requests[0].timeout == 10.0


# ---------------------------------------------------------------------------------------
# Faults


@pytest.mark.parametrize(
    ("api", "reply"),
    [
        ("openai", MockResponse(429, wire.OPENAI_429_HEADERS, wire.OPENAI_429)),
        ("anthropic", MockResponse(429, wire.ANTHROPIC_429_HEADERS, wire.ANTHROPIC_429)),
    ],
)
async def test_429_is_rate_limited_with_retry_after(api: str, reply: MockResponse) -> None:
    err, events = await _fails(_provider(api, _replying(reply)))
    assert err.reason is Reason.RATE_LIMITED
    assert err.retry_after == 7.0
    assert events == []
    assert reply.released  # the error body was read whole: the connection is reusable


@pytest.mark.parametrize(
    ("api", "body", "reason"),
    [
        ("openai", wire.OPENAI_ERROR_IN_STREAM, Reason.UPSTREAM_UNAVAILABLE),
        ("anthropic", wire.ANTHROPIC_OVERLOADED_IN_STREAM, Reason.OVERLOADED),
    ],
)
async def test_an_error_event_inside_a_200_is_classified_by_its_type(
    api: str, body: tuple[bytes, ...], reason: Reason
) -> None:
    reply = MockResponse(200, wire.SSE_HEADERS, body)
    err, events = await _fails(_provider(api, _replying(reply)))
    assert err.reason is reason
    assert _text(events) == ["Hello", " there,"]  # it had started
    assert reply.closed and not reply.released


@pytest.mark.parametrize("api", APIS)
async def test_a_connection_lost_mid_stream_is_interrupted_not_finished(api: str) -> None:
    cut = UpstreamClosed("the upstream closed the connection before the reply ended")
    reply = MockResponse(200, wire.SSE_HEADERS, STREAMS[api][: CUT_AFTER[api]], error=cut)
    err, events = await _fails(_provider(api, _replying(reply)))
    assert err.reason is Reason.STREAM_INTERRUPTED
    assert _text(events) == ["Hello", " there,"]
    assert reply.closed and not reply.released


@pytest.mark.parametrize("api", APIS)
async def test_a_body_that_ends_before_the_terminal_event_is_interrupted(api: str) -> None:
    """A cleanly framed body is no proof of a whole reply: the terminal event decides
    (Anthropic's ``message_stop``; for OpenAI, a choice's ``finish_reason``)."""
    reply = MockResponse(200, wire.SSE_HEADERS, STREAMS[api][: BEFORE_TERMINAL[api]])
    err, _ = await _fails(_provider(api, _replying(reply)))
    assert err.reason is Reason.STREAM_INTERRUPTED


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ConnectionRefusedError("refused"), Reason.UPSTREAM_UNAVAILABLE),
        (TimeoutError(), Reason.UPSTREAM_TIMEOUT),
    ],
)
@pytest.mark.parametrize("api", APIS)
async def test_a_request_that_fails_before_a_reply(
    api: str, exc: BaseException, reason: Reason
) -> None:
    def fail(request: MockRequest) -> MockResponse:
        raise exc

    err, _ = await _fails(_provider(api, MockTransport(fail)))
    assert err.reason is reason


async def test_a_credential_echoed_in_an_error_body_is_redacted() -> None:
    body = (
        b'{"error":{"message":"Unrecognized request argument: ' + KEY.encode() + b'",'
        b'"type":"invalid_request_error","param":null,"code":null}}'
    )
    reply = MockResponse(400, {"content-type": "application/json"}, body)
    err, _ = await _fails(_provider("openai", _replying(reply)))
    assert err.reason is Reason.UPSTREAM_INVALID_REQUEST
    assert "Unrecognized request argument: [redacted]" in err.message


@pytest.mark.parametrize("api", APIS)
async def test_leaving_early_closes_the_reply(api: str) -> None:
    """The upstream must see a consumer that stops reading: the reply is closed, not kept."""
    reply = MockResponse(200, wire.SSE_HEADERS, STREAMS[api])
    provider = _provider(api, _replying(reply))
    async with contextlib.aclosing(provider.stream(MODEL, _request(), timeout=None)) as stream:
        async for event in stream:
            if isinstance(event, TextDelta):
                break
    assert reply.closed and not reply.released


async def test_aclose_closes_the_given_transport() -> None:
    transport = _replying()
    await _provider("anthropic", transport).aclose()
    assert transport.closes == 1


# ---------------------------------------------------------------------------------------
# The registry


async def test_the_registry_hands_a_named_provider_its_given_transport() -> None:
    transport = _replying(MockResponse(200, wire.SSE_HEADERS, wire.ANTHROPIC_STREAM))
    registry = default_registry({"claude": transport})
    cfg = ProviderConfig("claude", "anthropic")
    provider = registry.build(ResolvedProvider(cfg, "http://up.test", KEY, True))
    events = [event async for event in provider.stream(MODEL, _request(), timeout=None)]
    assert _text(events) == ["Hello", " there,", " wire"]
    other = registry.build(
        ResolvedProvider(ProviderConfig("o", "openai"), "http://o.test", "k", True)
    )
    assert isinstance(other, LeanProvider) and isinstance(other._transport, ConnectionPool)


def test_a_transport_for_an_sdk_provider_is_refused() -> None:
    registry = default_registry({"claude": _replying()})
    cfg = ProviderConfig("claude", "anthropic", transport="sdk")
    with pytest.raises(ValueError, match="takes no transport"):
        registry.build(ResolvedProvider(cfg, "http://up.test", KEY, True))


# ---------------------------------------------------------------------------------------
# The provider model of each attempt

SERVER_ERRORS = {
    "openai": b'{"error": {"message": "boom", "type": "server_error"}}',
    "anthropic": b'{"type": "error", "error": {"type": "api_error", "message": "boom"}}',
}


def test_a_chat_request_names_no_provider_model() -> None:
    """Routing picks the provider models; the request is the same whichever one answers."""
    assert "model" not in {f.name for f in dataclasses.fields(ChatRequest)}


@pytest.mark.parametrize("api", APIS)
async def test_each_attempt_sends_its_own_targets_provider_model(api: str) -> None:
    """A call failing over from one model to another: every request body names the model
    of the target it was sent for, retries included."""

    def handler(request: MockRequest) -> MockResponse:
        if request.json()["model"] == "model-a":
            return MockResponse(500, {"content-type": "application/json"}, SERVER_ERRORS[api])
        return MockResponse(200, wire.SSE_HEADERS, STREAMS[api])

    transport = MockTransport(handler)
    provider = _provider(api, transport)
    router = Router({api: ProviderConfig(api, _kind(api))}, {}, {})
    engine = Orchestrator(
        {api: provider},
        retry=RetrySettings(max_attempts=2, initial_backoff=0.0, jitter=0.0),
        sleep=lambda _seconds: asyncio.sleep(0),
    )
    call = ChatCall(f"{api}/model-a", _request(), (f"{api}/model-b",))
    events = [event async for event in engine.stream(router.route(call))]
    done = events[-1]
    assert isinstance(done, Completed)
    assert [(r.target.model, r.outcome) for r in done.attempts] == [
        ("model-a", Outcome.FAILED),
        ("model-a", Outcome.FAILED),
        ("model-b", Outcome.SUCCEEDED),
    ]
    assert [r.json()["model"] for r in transport.requests] == ["model-a", "model-a", "model-b"]
