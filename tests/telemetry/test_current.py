"""The current context read and changed directly: the same contexts as OpenTelemetry's API."""

from __future__ import annotations

import asyncio
import contextvars

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as context_api
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from llmesh.services.telemetry import current

SPAN = NonRecordingSpan(SpanContext(0xABC, 0xDEF, False, TraceFlags(1)))


def test_a_span_set_and_attached_is_the_apis_current_span() -> None:
    with_bag = baggage.set_baggage("team", "search")
    token = context_api.attach(with_bag)
    try:
        context = current.with_span(SPAN)
        assert context == trace.set_span_in_context(SPAN)
        assert type(context) is context_api.Context
        inner = current.attach(context)
        assert trace.get_current_span() is SPAN
        assert current.current() is context_api.get_current() is context
        assert baggage.get_baggage("team") == "search"  # the rest of the context is kept
        current.detach(inner)
        assert trace.get_current_span() is trace.INVALID_SPAN
        assert current.current() is with_bag
    finally:
        context_api.detach(token)


def test_a_given_context_is_the_base_not_the_current_one() -> None:
    base = baggage.set_baggage("k", "v", context_api.Context())
    context = current.with_span(SPAN, base)
    assert context == trace.set_span_in_context(SPAN, base)
    assert trace.get_current_span(base) is trace.INVALID_SPAN  # unchanged


def test_a_token_of_another_context_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    token = contextvars.copy_context().run(current.attach, current.with_span(SPAN))
    current.detach(token)
    assert "Failed to detach context" in caplog.text


def test_another_runtime_context_is_served_through_the_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []
    monkeypatch.setattr(current, "_VARIABLE", None)
    monkeypatch.setattr(context_api, "attach", lambda c: seen.append("attach") or "t")
    monkeypatch.setattr(context_api, "detach", lambda t: seen.append(f"detach {t}"))
    monkeypatch.setattr(context_api, "get_current", lambda: seen.append("get") or {})
    # with another runtime context the public functions are these (the C ones serve only the
    # default runtime context, chosen at import)
    python = current.PYTHON
    python["detach"](python["attach"](python["with_span"](SPAN)))
    assert seen == ["get", "attach", "detach t"]


def test_each_task_has_its_own_current_span() -> None:
    async def in_task() -> object:
        token = current.attach(current.with_span(SPAN))
        await asyncio.sleep(0)
        span = trace.get_current_span()
        current.detach(token)
        return span

    async def main() -> tuple[object, object]:
        span = await asyncio.create_task(in_task())
        return span, trace.get_current_span()

    assert asyncio.run(main()) == (SPAN, trace.INVALID_SPAN)


def test_attach_span_is_attach_of_with_span_in_one_step() -> None:
    base = baggage.set_baggage("k", "v", context_api.Context())
    for given in (None, base):
        token = current.attach_span(SPAN, given)
        try:
            assert current.current() == current.with_span(SPAN, base if given else None)
            assert trace.get_current_span() is SPAN
        finally:
            current.detach(token)
        assert trace.get_current_span() is trace.INVALID_SPAN


def test_attach_span_with_another_runtime_context_goes_through_the_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []
    monkeypatch.setattr(current, "_VARIABLE", None)
    monkeypatch.setattr(context_api, "attach", lambda c: seen.append("attach") or "t")
    monkeypatch.setattr(context_api, "get_current", lambda: seen.append("get") or {})
    assert current.PYTHON["attach_span"](SPAN) == "t"
    assert seen == ["get", "attach"]
