"""Steps observed: each step's decision and time in the metrics (a counter by step and
decision, a histogram of step time, the reply's masked values per detector) and on the
call's span (``llmesh.step`` events, ``llmesh.step.*`` attributes); never a value."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmesh.services.common.config import Config, ProviderConfig, parse_route
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.metrics_settings import MetricsSettings
from llmesh.services.common.step_settings import parse_steps
from llmesh.services.core.call import Call, ChatCall, RoutedCall
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role
from llmesh.services.core.events import CallEvent, Completed, Finish, TextDelta
from llmesh.services.core.policy import Policy
from llmesh.services.core.target import Target
from llmesh.services.core.trail import Trail
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.assembly import assemble
from llmesh.services.orchestrator.engine import Orchestrator
from llmesh.services.orchestrator.layers.steps import Processed
from llmesh.services.orchestrator.steps import Prepared, ProcessorClient, StepObserver
from llmesh.services.processor.server import serve as serve_processor
from llmesh.services.telemetry import Metrics, build_metrics
from llmesh.v1 import processor_pb2
from tests.orchestrator.scripted import Scripted
from tests.orchestrator.test_observed import total

EMAIL = "jane@example.com"
STEPS = parse_steps(
    "r",
    {
        "pre": ["screen", "redact"],
        "post": ["restore", "redact_output"],
        "redact_output": {"detectors": ["email"], "words": {"project": ["Falcon"]}},
    },
)


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    m = build_metrics(MetricsSettings(enabled=True), "orchestrator")
    assert m is not None
    yield m
    m.shutdown()


@pytest.fixture
def spans() -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test"), exporter
    provider.shutdown()


class Inner:
    def __init__(self, *texts: str) -> None:
        self.texts = texts

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        return self._events()

    async def _events(self) -> AsyncGenerator[CallEvent, None]:
        for t in self.texts:
            yield TextDelta(t)
        yield Completed(FinishReason.STOP, "stop", Usage())


class Answering(ProcessorClient):
    """Answers fixed decisions, or raises `error`."""

    def __init__(self, error: LlmeshError | None = None) -> None:
        self.address = "fake"
        self.error = error

    async def prepare(self, messages: Any, *args: Any, **kwargs: Any) -> Prepared:
        if self.error is not None:
            raise self.error
        screen = processor_pb2.StepDecision(
            step="screen", decision="flag", score=0.84, rules=["ignore_previous"]
        )
        screen.duration.FromNanoseconds(80_000)
        redact = processor_pb2.StepDecision(
            step="redact", decision="pseudonymize", counts={"email": 1}
        )
        redact.duration.FromNanoseconds(240_000)
        assert STEPS is not None
        return Prepared(
            tuple(messages), {"<EMAIL_1>": EMAIL}, (screen, redact), "", output=STEPS.redact_output
        )


def _call() -> RoutedCall[ChatRequest]:
    request = ChatRequest(messages=(Message(Role.USER, f"mail {EMAIL}"),))
    return RoutedCall(
        Call("r", request),
        (Target("emulator", "echo"),),
        Policy(),
        "req_1",
        Trail(started=time.monotonic()),
    )


def _lines(metrics: Metrics, prefix: str) -> list[str]:
    return [line for line in metrics.render().decode().splitlines() if line.startswith(prefix)]


async def test_each_step_is_counted_timed_and_on_the_call_span(
    metrics: Metrics, spans: tuple[trace.Tracer, InMemorySpanExporter]
) -> None:
    tracer, exporter = spans
    layer = Processed(
        Inner("to <EMAIL_1>, on Fal", "con"),
        steps_for={"r": STEPS}.get,
        client=Answering(),
        observer=StepObserver(metrics),
    )
    with tracer.start_as_current_span("call r"):
        events = [e async for e in layer.stream(_call())]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "to [EMAIL], on [PROJECT]"  # restored, then masked
    steps = _lines(metrics, "llmesh_steps")
    for step, decision in [
        ("screen", "flag"),
        ("redact", "pseudonymize"),
        ("redact_output", "mask"),
    ]:
        assert any(
            f'llmesh_step="{step}"' in line
            and f'llmesh_decision="{decision}"' in line
            and line.endswith(" 1.0")
            for line in steps
        ), steps
    timed = _lines(metrics, "llmesh_step_duration_seconds_count")
    for step in ("screen", "redact", "redact_output"):
        assert f'llmesh_step_duration_seconds_count{{llmesh_step="{step}"}} 1.0' in timed
    redactions = _lines(metrics, "llmesh_redactions")
    assert any('llmesh_detector="email"' in line and line.endswith(" 1.0") for line in redactions)
    assert any('llmesh_detector="custom"' in line for line in redactions)  # a word list
    assert EMAIL not in metrics.render().decode()
    (span,) = exporter.get_finished_spans()
    _check_span(span)


def _check_span(span: ReadableSpan) -> None:
    attributes = dict(span.attributes or {})
    assert attributes["llmesh.step.screen.decision"] == "flag"
    assert attributes["llmesh.step.screen.flagged"] is True
    assert attributes["llmesh.step.screen.score"] == 0.84
    assert attributes["llmesh.step.screen.rules"] == ("ignore_previous",)
    assert attributes["llmesh.step.redact.decision"] == "pseudonymize"
    assert attributes["llmesh.step.redact.duration_ms"] == 0.24
    assert attributes["llmesh.step.redact.counts"] == ("email=1",)
    assert attributes["llmesh.step.redact_output.decision"] == "mask"
    assert attributes["llmesh.step.redact_output.counts"] == ("email=1", "project=1")
    events = [e for e in span.events if e.name == "llmesh.step"]
    assert [dict(e.attributes or {})["llmesh.step.name"] for e in events] == [
        "screen",
        "redact",
        "redact_output",
    ]
    assert EMAIL not in repr(attributes) and EMAIL not in repr([e.attributes for e in events])


async def test_a_step_that_refuses_the_call_is_counted_as_block(
    metrics: Metrics, spans: tuple[trace.Tracer, InMemorySpanExporter]
) -> None:
    tracer, exporter = spans
    error = LlmeshError(
        Reason.INVALID_REQUEST,
        "the input looks like a prompt injection",
        metadata={"step": "screen", "rules": "ignore_previous,jailbreak"},
    )
    layer = Processed(
        Inner(), steps_for={"r": STEPS}.get, client=Answering(error), observer=StepObserver(metrics)
    )
    with tracer.start_as_current_span("call r"), pytest.raises(LlmeshError):
        async for _ in layer.stream(_call()):
            pass
    assert any(
        'llmesh_step="screen"' in line and 'llmesh_decision="block"' in line
        for line in _lines(metrics, "llmesh_steps")
    )
    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert attributes["llmesh.step.screen.decision"] == "block"
    assert attributes["llmesh.step.screen.rules"] == ("ignore_previous", "jailbreak")
    redact = LlmeshError(
        Reason.INVALID_REQUEST,
        "messages[0].content contains an e-mail address (detector email)",
        metadata={"step": "redact", "detector": "email"},
    )
    layer = Processed(
        Inner(),
        steps_for={"r": STEPS}.get,
        client=Answering(redact),
        observer=StepObserver(metrics),
    )
    with tracer.start_as_current_span("call r"), pytest.raises(LlmeshError):
        async for _ in layer.stream(_call()):
            pass
    assert any(
        'llmesh_step="redact"' in line and 'llmesh_decision="block"' in line
        for line in _lines(metrics, "llmesh_steps")
    )
    blocked = dict(exporter.get_finished_spans()[-1].attributes or {})
    assert blocked["llmesh.step.redact.counts"] == ("email=1",)


async def test_the_assembled_path_records_steps_in_its_metrics(tmp_path: Path) -> None:
    processor = await serve_processor("127.0.0.1:0")
    reader = InMemoryMetricReader()
    metrics = Metrics(
        MetricsSettings(enabled=True, prometheus=False), "orchestrator", readers=[reader]
    )
    route = parse_route(
        "private",
        {
            "targets": ["a/m"],
            "steps": {
                "pre": ["redact"],
                "post": ["redact_output"],
                "redact_output": {"detectors": ["email"]},
            },
        },
    )
    config = Config(
        providers={
            "a": ProviderConfig("a", "openai-compatible", base_url="http://x", models=("m",))
        },
        routes={"private": route},
        database_url=f"sqlite:///{tmp_path}/ledger.db",
        processor_address=f"127.0.0.1:{processor.port}",
    )
    reply = [
        TextDelta("to b@exa"),
        TextDelta("mple.org"),
        Finish(FinishReason.STOP, "stop", Usage(1, 1)),
    ]
    engine = Orchestrator({"a": Scripted("a", reply)})
    assembly = await assemble(config, engine, bind_host="127.0.0.1", metrics=metrics)
    try:
        request = ChatRequest(messages=(Message(Role.USER, f"mail {EMAIL}"),))
        events = [e async for e in assembly.path.stream(ChatCall("private", request))]
    finally:
        await assembly.aclose()
        await processor.stop(None)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "to [EMAIL]"
    assert total(reader, "llmesh.steps", llmesh_step="redact", llmesh_decision="pseudonymize") == 1
    assert total(reader, "llmesh.steps", llmesh_step="redact_output", llmesh_decision="mask") == 1
    assert total(reader, "llmesh.step.duration", llmesh_step="redact_output") == 1
    assert total(reader, "llmesh.redactions", llmesh_detector="email") == 1
    metrics.shutdown()
