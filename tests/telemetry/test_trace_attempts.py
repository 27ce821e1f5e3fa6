"""Attempt spans as the engine's attempt code drives them (`open_attempt`, `Opened.relay`):
attributes, outcome, content capture, context while sending."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role
from llmesh.services.core.embeddings import EmbeddingRequest
from llmesh.services.core.events import Finish, ProviderEvent, TextDelta, UsageUpdate
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Outcome, Trail
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.attempts import Opened, Runtime, open_attempt
from llmesh.services.orchestrator.resilience import Breakers, TargetLimiter
from llmesh.services.orchestrator.resilience.breakers import BreakerSettings
from llmesh.services.orchestrator.resilience.queues import QueueSettings
from llmesh.services.telemetry.lean_trace import LeanTracerProvider
from llmesh.services.telemetry.settings import TelemetrySettings
from llmesh.services.telemetry.trace_attempts import (
    AttemptSpans,
    UpstreamInfo,
    attempt_spans,
    upstream_info,
)
from tests.telemetry.conftest import TRACING_ON, MemorySpans

REQUEST = ChatRequest(
    messages=(Message(Role.USER, "the secret question"),), max_tokens=7, temperature=0.0
)
TARGET = Target("openai", "gpt-4o-mini")
UPSTREAMS = {"openai": UpstreamInfo("openai", "api.openai.com", 443)}
USAGE = Usage(input_tokens=11, output_tokens=3, cache_read_tokens=5, cache_write_tokens=2)


async def _reply(seen: list[trace.Span]) -> AsyncGenerator[ProviderEvent, None]:
    seen.append(trace.get_current_span())  # when the request is sent
    yield TextDelta("the secret")
    seen.append(trace.get_current_span())
    yield UsageUpdate(USAGE)
    yield TextDelta(" answer")
    yield Finish(FinishReason.STOP, "stop", USAGE, "chatcmpl-9", "gpt-4o-mini-2024-07-18")


def test_off_means_no_observer() -> None:
    assert attempt_spans(TelemetrySettings(), UPSTREAMS) is None
    assert isinstance(attempt_spans(TRACING_ON, UPSTREAMS), AttemptSpans)


def test_upstream_info_from_base_urls() -> None:
    assert upstream_info("openai", "openai", "https://api.openai.com/v1") == UpstreamInfo(
        "openai", "api.openai.com", 443
    )
    assert upstream_info("ollama", "openai-compatible", "http://gpu:11434/v1") == UpstreamInfo(
        "ollama", "gpu", 11434
    )
    assert upstream_info("local", "local", "in-process") == UpstreamInfo("local")


class _Upstream:
    """A provider whose stream is `reply()`."""

    def __init__(self, reply: Callable[[], AsyncGenerator[ProviderEvent, None]]) -> None:
        self._reply = reply

    def stream(
        self, model: str, request: ChatRequest, *, timeout: float | None
    ) -> AsyncGenerator[ProviderEvent, None]:
        return self._reply()


async def _open(
    spans: AttemptSpans,
    record: AttemptRecord,
    trail: Trail,
    reply: Callable[[], AsyncGenerator[ProviderEvent, None]],
    now: float = 0.25,
) -> Opened:
    """The attempt `record` opened by the engine's own code, traced by `spans`."""
    rt = Runtime(
        Breakers(BreakerSettings()), TargetLimiter(QueueSettings()), lambda: now, trail, trace=spans
    )
    return await open_attempt(
        _Upstream(reply),  # type: ignore[arg-type]
        REQUEST,
        record,
        rt,
        timeout=None,
        first_token_timeout=None,
        stall_timeout=None,
        ttft_history=lambda _ttft: None,
    )


async def _run(
    spans: AttemptSpans, record: AttemptRecord, trail: Trail, seen: list[trace.Span]
) -> list[ProviderEvent]:
    opened = await _open(spans, record, trail, lambda: _reply(seen))
    return [event async for event in opened.relay()]


async def test_a_won_attempt_has_the_genai_attributes_and_no_content(
    provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    tracer = provider.get_tracer("test")
    trail = Trail(started=0.0)
    record = trail.add(AttemptRecord(TARGET, 0.0))
    seen: list[trace.Span] = []
    with tracer.start_as_current_span("call") as call:
        out = await _run(AttemptSpans(UPSTREAMS), record, trail, seen)
        assert trace.get_current_span() is call  # the attempt's span never leaks out
    assert isinstance(out[-1], Finish)
    assert record.outcome is Outcome.SUCCEEDED and record.terminal is out[-1]
    (span,) = [s for s in spans.get_finished_spans() if s.name != "call"]
    assert seen[0].get_span_context() == span.context  # current while the request went out
    assert seen[1] is call  # and only then
    assert span.name == "chat gpt-4o-mini" and span.kind is SpanKind.CLIENT
    assert span.parent is not None and span.parent.span_id == call.get_span_context().span_id
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.max_tokens": 7,
        "gen_ai.request.temperature": 0.0,
        "server.address": "api.openai.com",
        "server.port": 443,
        "llmesh.target": "openai/gpt-4o-mini",
        "llmesh.attempt.number": 1,
        "llmesh.attempt.retry": False,
        "llmesh.attempt.hedged": False,
        "llmesh.attempt.fallback": False,
        "llmesh.attempt.mid_stream_switch": False,
        "llmesh.attempt.outcome": "succeeded",
        "llmesh.attempt.winner": True,
        "gen_ai.response.time_to_first_chunk": 0.25,
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.usage.cache_read.input_tokens": 5,
        "gen_ai.usage.cache_creation.input_tokens": 2,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.response.id": "chatcmpl-9",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    }
    assert span.status.status_code is StatusCode.UNSET


async def test_content_is_recorded_only_when_capture_is_on(
    provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    trail = Trail(started=0.0)
    record = trail.add(AttemptRecord(TARGET, 0.0))
    await _run(AttemptSpans(UPSTREAMS, capture_content=True), record, trail, [])
    (span,) = spans.get_finished_spans()
    attrs = span.attributes or {}
    assert json.loads(str(attrs["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "the secret question"}]}
    ]
    assert json.loads(str(attrs["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "the secret answer"}],
            "finish_reason": "stop",
        }
    ]


async def _failing() -> AsyncGenerator[ProviderEvent, None]:
    raise LlmeshError(Reason.OVERLOADED, "upstream says: the secret question was too hard")
    yield TextDelta("never")  # pragma: no cover


async def test_a_failed_retry_after_a_fallback_names_why(
    provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    trail = Trail(started=0.0)
    other = trail.add(AttemptRecord(Target("anthropic", "claude-haiku-4-5"), 0.0))
    other.ttft = 0.1
    other.finish(Outcome.FAILED, 0.5, Reason.STREAM_INTERRUPTED)  # after its first token
    first = trail.add(AttemptRecord(TARGET, 0.5))
    first.finish(Outcome.FAILED, 0.6, Reason.RATE_LIMITED)
    record = trail.add(AttemptRecord(TARGET, 0.7, retry=True))
    with pytest.raises(LlmeshError):
        await _open(AttemptSpans(UPSTREAMS), record, trail, _failing, now=0.8)
    assert record.outcome is Outcome.FAILED and record.reason is Reason.OVERLOADED
    (span,) = spans.get_finished_spans()
    attrs = span.attributes or {}
    assert attrs["llmesh.attempt.number"] == 3
    assert attrs["llmesh.attempt.retry_reason"] == "RATE_LIMITED"
    assert attrs["llmesh.attempt.fallback"] is False  # a retry of the same target
    assert attrs["llmesh.attempt.mid_stream_switch"] is True
    assert attrs["error.type"] == "OVERLOADED" and attrs["llmesh.attempt.winner"] is False
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "OVERLOADED"  # never the upstream's words
    assert "secret" not in repr(dict(attrs))


async def test_a_cancelled_hedge_is_no_error(
    provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    trail = Trail(started=0.0)
    trail.add(AttemptRecord(TARGET, 0.0))
    hedge = trail.add(AttemptRecord(Target("anthropic", "claude-haiku-4-5"), 0.1, hedged=True))
    opened = await _open(AttemptSpans(UPSTREAMS), hedge, trail, lambda: _reply([]))
    assert spans.get_finished_spans() == ()  # open until the attempt is settled
    await opened.discard()  # the other attempt won
    (span,) = spans.get_finished_spans()
    attrs = span.attributes or {}
    assert attrs["gen_ai.provider.name"] == "anthropic"  # not configured: its own name
    assert "server.address" not in attrs
    assert attrs["llmesh.attempt.hedged"] is True and attrs["llmesh.attempt.fallback"] is False
    assert attrs["llmesh.attempt.outcome"] == "cancelled"
    assert span.status.status_code is StatusCode.UNSET and "error.type" not in attrs


async def test_a_failed_embeddings_attempt_is_an_error_span(
    provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    trail = Trail(started=0.0)
    record = trail.add(AttemptRecord(Target("openai", "text-embedding-3-small"), 0.0))

    async def refused() -> object:
        raise LlmeshError(Reason.RATE_LIMITED, "slow down")

    with pytest.raises(LlmeshError):
        await AttemptSpans(UPSTREAMS).embedding(
            record, EmbeddingRequest(inputs=("x",)), trail, refused()
        )
    (span,) = spans.get_finished_spans()
    assert span.name == "embeddings text-embedding-3-small"
    attrs = span.attributes or {}
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["error.type"] == "RATE_LIMITED" and attrs["llmesh.attempt.winner"] is False
    assert span.status.status_code is StatusCode.ERROR


async def test_attempts_at_one_target_share_nothing_but_their_values(
    provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    attempt_spans = AttemptSpans(UPSTREAMS)
    for retry in (False, True):  # two calls' first attempts, the second a retry
        trail = Trail(started=0.0)
        record = trail.add(AttemptRecord(TARGET, 0.0, retry=retry))
        await _run(attempt_spans, record, trail, [])
    first, second = spans.get_finished_spans()
    assert first.attributes is not second.attributes
    assert (first.attributes or {})["llmesh.attempt.retry"] is False
    assert (second.attributes or {})["llmesh.attempt.retry"] is True
    assert (second.attributes or {})["llmesh.target"] == "openai/gpt-4o-mini"
    # the other operation at the same target is named as its own
    trail = Trail(started=0.0)
    record = trail.add(AttemptRecord(TARGET, 0.0))

    async def sent() -> Any:
        return SimpleNamespace(usage=None)

    await attempt_spans.embedding(record, EmbeddingRequest(inputs=("x",)), trail, sent())
    embedded = spans.get_finished_spans()[-1]
    assert (embedded.attributes or {})["gen_ai.operation.name"] == "embeddings"
    assert (first.attributes or {})["gen_ai.operation.name"] == "chat"


async def test_nothing_stands_between_the_upstream_and_the_engine_unless_content_is_kept(
    provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    trail = Trail(started=0.0)
    record = trail.add(AttemptRecord(TARGET, 0.0))
    upstream = _reply([])
    assert AttemptSpans(UPSTREAMS)(record, REQUEST, trail, upstream).events is upstream
    watched = AttemptSpans(UPSTREAMS, capture_content=True)(record, REQUEST, trail, upstream)
    assert watched.events is not upstream
    await upstream.aclose()


async def _cut_short() -> AsyncGenerator[ProviderEvent, None]:
    yield TextDelta("half an")
    yield UsageUpdate(USAGE)  # then the stream ends with no terminal event


async def test_an_attempt_failing_mid_stream_ends_its_span_as_an_error(
    provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    trail = Trail(started=0.0)
    record = trail.add(AttemptRecord(TARGET, 0.0))
    opened = await _open(AttemptSpans(UPSTREAMS), record, trail, _cut_short)
    with pytest.raises(LlmeshError):
        async for _event in opened.relay():
            pass
    (span,) = spans.get_finished_spans()
    attrs = span.attributes or {}
    assert attrs["llmesh.attempt.outcome"] == "failed"
    assert attrs["error.type"] == "STREAM_INTERRUPTED"
    assert attrs["gen_ai.usage.output_tokens"] == 3  # what it reported before it broke
    assert "gen_ai.response.finish_reasons" not in attrs
    assert span.status.status_code is StatusCode.ERROR
