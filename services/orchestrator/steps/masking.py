"""The post-call steps in the stream: placeholders restored (``restore``) and the output
rules' values masked (``redact_output``), with the compiled output rules kept for reuse."""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import AsyncGenerator, Iterable, Mapping
from contextlib import aclosing
from dataclasses import replace

from llmesh.services.common.redaction import (
    OutputMasker,
    Redactor,
    Restorer,
    StreamDetectors,
    json_escaped,
)
from llmesh.services.common.step_settings import RedactionConfig
from llmesh.services.core.events import CallEvent, Completed, Switched, TextDelta, ToolCallDelta
from llmesh.services.core.trail import Trail
from llmesh.services.orchestrator.steps.observe import StepObserver

__all__ = ["COMPILED", "CompiledRules", "masked", "restored"]

COMPILED = 64
"""Output rule sets kept compiled."""


class CompiledRules:
    """Output rules compiled for partial matching, kept for the last `COMPILED` rule sets."""

    def __init__(self) -> None:
        self._compiled: OrderedDict[RedactionConfig, StreamDetectors] = OrderedDict()

    def __call__(self, rules: RedactionConfig) -> StreamDetectors:
        """`rules` compiled, from the kept ones when they were compiled lately."""
        detectors = self._compiled.get(rules)
        if detectors is None:
            detectors = self._compiled[rules] = StreamDetectors(Redactor(rules))
            if len(self._compiled) > COMPILED:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(rules)
        return detectors


async def restored(
    events: AsyncGenerator[CallEvent, None], pseudonyms: Mapping[str, str]
) -> AsyncGenerator[CallEvent, None]:
    """`events` with placeholders restored in text and tool-call arguments; what is held
    back at the end of the reply (or before a mid-stream switch) is released first."""
    text = Restorer(pseudonyms)
    escaped: dict[str, str] | None = None  # made at the first tool call: most replies have none
    tools: dict[int, Restorer] = {}
    async with aclosing(events) as inner:
        async for event in inner:
            if isinstance(event, TextDelta):
                out = text.feed(event.text)
                if out or event.logprobs:
                    yield event if out is event.text else replace(event, text=out)
            elif isinstance(event, ToolCallDelta):
                tool = tools.get(event.index)
                if tool is None:
                    if escaped is None:
                        escaped = json_escaped(pseudonyms)
                    tool = tools[event.index] = Restorer(escaped)
                args = tool.feed(event.arguments_delta)
                if args or event.id or event.name:
                    yield (
                        event
                        if args is event.arguments_delta
                        else replace(event, arguments_delta=args)
                    )
            elif isinstance(event, Completed | Switched):
                rest = text.flush()
                if rest:
                    yield TextDelta(rest)
                for index, tool in tools.items():
                    rest = tool.flush()
                    if rest:
                        yield ToolCallDelta(index, arguments_delta=rest)
                yield event
            else:
                yield event


async def masked(
    events: AsyncGenerator[CallEvent, None],
    detectors: StreamDetectors,
    trail: Trail,
    observer: StepObserver | None = None,
) -> AsyncGenerator[CallEvent, None]:
    """`events` with the output rules' values masked in text deltas and tool-call arguments
    (a value split across deltas included: only a tail that may still become one is held
    back, and released before the end of the reply or a mid-stream switch). The logprobs of
    a delta whose text was held or changed are dropped, so a masked value never goes out in
    them. At the end, the step's decision (values masked per detector, time) goes to the
    trail's notes and to `observer`."""
    text = OutputMasker(detectors)
    tools: dict[int, OutputMasker] = {}
    spent = 0.0
    async with aclosing(events) as inner:
        async for event in inner:
            started = time.perf_counter()
            if isinstance(event, TextDelta):
                was_holding = text.holding
                out = text.feed(event.text)
                spent += time.perf_counter() - started
                if out == event.text and not was_holding:  # passed through as it came
                    yield event
                elif out:
                    yield TextDelta(out)
            elif isinstance(event, ToolCallDelta):
                tool = tools.get(event.index)
                if tool is None:
                    tool = tools[event.index] = OutputMasker(detectors, json=True)
                args = tool.feed(event.arguments_delta)
                spent += time.perf_counter() - started
                if args or event.id or event.name:
                    yield replace(event, arguments_delta=args)
            elif isinstance(event, Completed | Switched):
                rest = text.flush()
                tails = [(i, t.flush()) for i, t in tools.items()]
                spent += time.perf_counter() - started
                if rest:
                    yield TextDelta(rest)
                for index, tail in tails:
                    if tail:
                        yield ToolCallDelta(index, arguments_delta=tail)
                if isinstance(event, Completed):
                    _note_output(trail, text, tools.values(), spent, observer)
                yield event
            else:
                yield event


def _note_output(
    trail: Trail,
    text: OutputMasker,
    tools: Iterable[OutputMasker],
    spent: float,
    observer: StepObserver | None,
) -> None:
    counts = Counter(text.counts)
    for tool in tools:
        counts.update(tool.counts)
    notes = trail.notes
    if notes is None:
        notes = trail.notes = []
    found = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    decision = f"mask {found}" if counts else "clean"
    notes.append(f"redact_output: {decision} ({spent * 1000:.3f} ms)")
    if observer is not None:
        observer.decided(
            "redact_output", "mask" if counts else "clean", spent, counts=counts, output=True
        )
