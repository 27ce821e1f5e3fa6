"""The current context's functions in C (`_current_native`) against the Python ones they
replace: the same contexts, tokens and failures."""

from __future__ import annotations

import logging
from types import ModuleType

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as context_api
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from llmesh.services.telemetry import current
from tests.support.native import built

SPAN = NonRecordingSpan(SpanContext(0xABC, 0xDEF, False, TraceFlags(1)))
PYTHON = current.PYTHON


@pytest.fixture
def native() -> ModuleType:
    return built(current._NATIVE, "llmesh.services.telemetry._current_native")


def test_the_public_functions_are_the_c_ones_where_built(native: ModuleType) -> None:
    for name in PYTHON:
        assert getattr(current, name) is getattr(native, name)


@pytest.mark.parametrize("given", [False, True])
def test_with_span_makes_the_same_context(native: ModuleType, given: bool) -> None:
    base = baggage.set_baggage("k", "v", context_api.Context()) if given else None
    outer = context_api.attach(baggage.set_baggage("team", "search"))
    try:
        made, reference = native.with_span(SPAN, base), PYTHON["with_span"](SPAN, base)
        assert type(made) is type(reference) is context_api.Context
        assert made == reference == trace.set_span_in_context(SPAN, base)
        assert made is not reference and made is not base
        if given:
            assert trace.get_current_span(base) is trace.INVALID_SPAN  # the base is unchanged
        with pytest.raises(ValueError):  # still an immutable Context
            made["x"] = 1
    finally:
        context_api.detach(outer)


def test_attach_span_and_detach_change_the_current_context_as_python(
    native: ModuleType,
) -> None:
    before = context_api.get_current()
    for given in (None, baggage.set_baggage("k", "v", context_api.Context())):
        token = native.attach_span(SPAN, given)
        seen = context_api.get_current()
        native.detach(token)
        after = context_api.get_current()
        reference = PYTHON["attach_span"](SPAN, given)
        assert seen == context_api.get_current() == trace.set_span_in_context(SPAN, given)
        PYTHON["detach"](reference)
        assert after is before is context_api.get_current()
    token = native.attach(trace.set_span_in_context(SPAN))
    assert native.current() is context_api.get_current()
    assert trace.get_current_span() is SPAN
    native.detach(token)
    assert native.current() is before


def test_keywords_go_to_the_python_functions(native: ModuleType) -> None:
    base = context_api.Context()
    assert native.with_span(SPAN, context=base) == trace.set_span_in_context(SPAN, base)
    token = native.attach_span(span=SPAN)
    assert trace.get_current_span() is SPAN
    native.detach(token)
    with pytest.raises(TypeError):
        native.with_span()


def test_a_failed_detach_is_logged_as_python_logs_it(
    native: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    token = native.attach_span(SPAN)
    native.detach(token)
    with caplog.at_level(logging.ERROR, logger="llmesh.telemetry"):
        native.detach(token)  # used once already
        PYTHON["detach"](token)
    assert [r.getMessage() for r in caplog.records] == ["Failed to detach context"] * 2
    assert trace.get_current_span() is trace.INVALID_SPAN
