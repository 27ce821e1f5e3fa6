"""One client span per provider attempt, after the GenAI semantic conventions.

`AttemptSpans` is what the engine's attempts call (``Runtime.trace``) with each attempt's
record and upstream stream when tracing is on: it starts a CLIENT span named
``chat {gen_ai.request.model}`` as a child of the current span (the call's span), which
the engine makes current while the request is sent (so the adapter puts its
``traceparent`` on the upstream request) and ends once the attempt's stream is closed,
from the attempt's final record (succeeded with its usage and terminal event, failed with
its reason, cancelled). Nothing is put between the upstream's events and the engine: the
span costs nothing per event (content capture alone reads the text as it passes). So the
span carries the outcome:
retries, fallbacks, hedges and council branches are each a span of their own, and the
attempt whose reply was relayed has ``llmesh.attempt.winner=true``.

Attributes follow the GenAI conventions as of semantic-conventions 0.66b2
(``gen_ai.provider.name``, which replaced ``gen_ai.system``; usage as
``gen_ai.usage.input_tokens`` / ``output_tokens``, cache reads and writes as
``gen_ai.usage.cache_read.input_tokens`` / ``cache_creation.input_tokens``). Prompts and
completions are recorded (``gen_ai.input.messages`` / ``gen_ai.output.messages``) only when
content capture is switched on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from llmesh.services.common.errors import LlmeshError
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.embeddings import EmbeddingRequest
from llmesh.services.core.events import ProviderEvent, TextDelta
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Outcome, Trail
from llmesh.services.core.usage import Usage
from llmesh.services.telemetry.current import with_span
from llmesh.services.telemetry.settings import TelemetrySettings

__all__ = ["AttemptSpans", "UpstreamInfo", "attempt_spans", "upstream_info"]

_REMEMBERED = 4096
"""(operation, target) pairs whose attributes `AttemptSpans` keeps (a mesh has a few dozen)."""

_PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic"}
"""``gen_ai.provider.name`` by adapter kind; other kinds report the configured name."""


@dataclass(frozen=True)
class UpstreamInfo:
    """Where one configured provider's requests go, as its spans name it."""

    provider: str
    """``gen_ai.provider.name``: ``openai``, ``anthropic``, or the configured name."""
    address: str | None = None
    """``server.address`` (None for an in-process provider)."""
    port: int | None = None
    """``server.port``."""


def upstream_info(name: str, kind: str, base_url: str) -> UpstreamInfo:
    """The span-facing description of provider `name` of adapter `kind` at `base_url`."""
    provider = _PROVIDER_NAMES.get(kind, name)
    parts = urlsplit(base_url)
    if not parts.hostname:
        return UpstreamInfo(provider)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return UpstreamInfo(provider, parts.hostname, port)


def attempt_spans(
    settings: TelemetrySettings, upstreams: Mapping[str, UpstreamInfo]
) -> AttemptSpans | None:
    """The engine's attempt observer when tracing is on (None, so no wrapper, when off)."""
    if not settings.tracing.enabled:
        return None
    return AttemptSpans(upstreams, capture_content=settings.tracing.capture_content)


class _Embedded(Protocol):
    @property
    def usage(self) -> Usage | None: ...


E = TypeVar("E", bound=_Embedded)


class AttemptSpans:
    """Makes each attempt's upstream stream (or embeddings request) a traced one."""

    def __init__(
        self,
        upstreams: Mapping[str, UpstreamInfo],
        *,
        capture_content: bool = False,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self._upstreams = dict(upstreams)
        self._fixed: dict[tuple[str, str, str], dict[str, Any]] = {}
        """Each (operation, provider, model)'s fixed attributes (keyed by the target's
        strings: a Target's own hash is a Python-level method)."""
        """The attributes of where attempts go, by (operation, target): see `_attributes`."""
        self._capture = capture_content
        self._tracer = trace.get_tracer("llmesh.orchestrator", tracer_provider=tracer_provider)

    def __call__(
        self,
        record: AttemptRecord,
        request: ChatRequest,
        trail: Trail,
        events: AsyncGenerator[ProviderEvent, None],
    ) -> _AttemptSpan:
        """A new span for the attempt `record` of `trail`, whose upstream stream is `events`
        (read through the span only when content capture is on)."""
        attributes = self._attributes("chat", record, trail)
        for key, value in (
            ("gen_ai.request.max_tokens", request.max_tokens),
            ("gen_ai.request.temperature", request.temperature),
            ("gen_ai.request.top_p", request.top_p),
        ):
            if value is not None:
                attributes[key] = value
        if self._capture:
            attributes["gen_ai.input.messages"] = _input_messages(request)
        span = self._tracer.start_span(
            f"chat {record.target.model}", kind=SpanKind.CLIENT, attributes=attributes
        )
        return _AttemptSpan(events, span, record, self._capture)

    async def embedding(
        self, record: AttemptRecord, request: EmbeddingRequest, trail: Trail, sent: Awaitable[E]
    ) -> E:
        """The embeddings attempt `sent` (not yet awaited), awaited under its own span."""
        attributes = self._attributes("embeddings", record, trail)
        if request.dimensions is not None:
            attributes["gen_ai.embeddings.dimension.count"] = request.dimensions
        with self._tracer.start_as_current_span(
            f"embeddings {record.target.model}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                result = await sent
            except LlmeshError as err:
                span.set_attributes(
                    {"error.type": err.reason.value, "llmesh.attempt.winner": False}
                )
                span.set_status(Status(StatusCode.ERROR, err.reason.value))
                raise
            span.set_attribute("llmesh.attempt.winner", True)
            if result.usage is not None:
                span.set_attribute("gen_ai.usage.input_tokens", result.usage.input_tokens)
            return result

    def _attributes(self, operation: str, record: AttemptRecord, trail: Trail) -> dict[str, Any]:
        target = record.target
        key = (operation, target.provider, target.model)
        fixed = self._fixed.get(key)
        if fixed is None:
            fixed = self._target_attributes(operation, target)
            if len(self._fixed) < _REMEMBERED:
                self._fixed[key] = fixed
        attributes = fixed.copy()
        attempts = trail.attempts
        if attempts and attempts[0] is record:  # the first attempt (most calls' only one)
            attributes.update(_FIRST[record.retry, record.hedged])
        else:
            attributes.update(_trail_attributes(record, trail))
        return attributes

    def _target_attributes(self, operation: str, target: Target) -> dict[str, Any]:
        """What every `operation` attempt at `target` says of where it goes."""
        upstream = self._upstreams.get(target.provider) or UpstreamInfo(target.provider)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": upstream.provider,
            "gen_ai.request.model": target.model,
            "llmesh.target": target.name,
        }
        if upstream.address is not None:
            attributes["server.address"] = upstream.address
            attributes["server.port"] = upstream.port
        return attributes


_FIRST = {
    (retry, hedged): {
        "llmesh.attempt.number": 1,
        "llmesh.attempt.retry": retry,
        "llmesh.attempt.hedged": hedged,
        "llmesh.attempt.fallback": False,
        "llmesh.attempt.mid_stream_switch": False,
    }
    for retry in (False, True)
    for hedged in (False, True)
}
"""llmesh's view of a call's first attempt (most calls' only one), by its (retry, hedged)
flags; `_trail_attributes` gives the view of the later ones."""


def _trail_attributes(record: AttemptRecord, trail: Trail) -> dict[str, Any]:
    """llmesh's view of an attempt after a call's first (`_FIRST` is the first's): its
    number, and why it happened (retry, fallback...)."""
    attempts = trail.attempts
    number = next((i for i, a in enumerate(attempts) if a is record), len(attempts)) + 1
    earlier = attempts[: number - 1]
    out: dict[str, Any] = {
        "llmesh.attempt.number": number,
        "llmesh.attempt.retry": record.retry,
        "llmesh.attempt.hedged": record.hedged,
    }
    if record.retry:
        previous = [a for a in earlier if a.target == record.target and a.reason is not None]
        if previous and previous[-1].reason is not None:
            out["llmesh.attempt.retry_reason"] = previous[-1].reason.value
    tried = [a for a in earlier if a.outcome is not Outcome.SKIPPED]
    out["llmesh.attempt.fallback"] = (
        bool(tried) and not record.hedged and tried[-1].target != record.target
    )
    out["llmesh.attempt.mid_stream_switch"] = any(
        a.ttft is not None and a.outcome is Outcome.FAILED for a in earlier
    )
    skipped = [a.target.name for a in earlier if a.outcome is Outcome.SKIPPED]
    if skipped:
        out["llmesh.breaker.skipped_targets"] = skipped
    return out


def _input_messages(request: ChatRequest) -> str:
    messages = [
        {"role": m.role.value, "parts": [{"type": "text", "content": m.content}]}
        for m in request.messages
    ]
    return json.dumps(messages, ensure_ascii=False)


class _AttemptSpan:
    """One attempt's span, as the engine drives it (`llmesh.services.orchestrator.attempts`):
    current while the request is sent, ended from the attempt's final record."""

    __slots__ = ("_output", "_record", "_span", "context", "events")

    def __init__(
        self,
        events: AsyncGenerator[ProviderEvent, None],
        span: Span,
        record: AttemptRecord,
        capture: bool,
    ) -> None:
        self._span = span
        self._record = record
        self.context: Context = with_span(span)
        self._output: list[str] | None = None
        if capture:
            self._output = []
            self.events = _texts(events, self._output)
        else:
            self.events = events  # nothing between the upstream's events and the engine

    async def close(self) -> None:
        """Close the attempt's stream, then end the span (the engine's attempt code calls
        this once the attempt's record is final)."""
        try:
            await self.events.aclose()
        finally:
            self.end()

    def end(self) -> None:
        """End the span with what the attempt's record says: outcome, usage, the reply's
        finish reason, id and model, the failure's reason."""
        span, record = self._span, self._record
        outcome = record.outcome
        # gathered, then set in one call (one method call, not one per attribute)
        ended: dict[str, Any] = {
            "llmesh.attempt.outcome": outcome._value_,
            "llmesh.attempt.winner": outcome is Outcome.SUCCEEDED,
        }
        if record.ttft is not None:
            ended["gen_ai.response.time_to_first_chunk"] = record.ttft
        usage = record.usage
        if usage is not None:
            ended["gen_ai.usage.input_tokens"] = usage.input_tokens
            ended["gen_ai.usage.output_tokens"] = usage.output_tokens
            if usage.cache_read_tokens:
                ended["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
            if usage.cache_write_tokens:
                ended["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
        finish = record.terminal
        if finish is not None:
            reason = finish.provider_reason or finish.reason._value_
            ended["gen_ai.response.finish_reasons"] = (reason,)
            if finish.response_id:
                ended["gen_ai.response.id"] = finish.response_id
            if finish.response_model:
                ended["gen_ai.response.model"] = finish.response_model
            if self._output is not None:
                message = {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": "".join(self._output)}],
                    "finish_reason": finish.reason.value,
                }
                ended["gen_ai.output.messages"] = json.dumps([message], ensure_ascii=False)
        if outcome is Outcome.FAILED and record.reason is not None:
            ended["error.type"] = record.reason.value
            span.set_attributes(ended)
            span.set_status(Status(StatusCode.ERROR, record.reason.value))  # no upstream text
        else:
            span.set_attributes(ended)
        span.end()


async def _texts(
    events: AsyncGenerator[ProviderEvent, None], output: list[str]
) -> AsyncGenerator[ProviderEvent, None]:
    """`events`, their text kept in `output` (content capture only)."""
    async with aclosing(events):
        async for event in events:
            if type(event) is TextDelta:
                output.append(event.text)  # type: ignore[union-attr]
            yield event
