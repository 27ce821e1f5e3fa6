"""Processor steps: a route's pre-call steps over gRPC, once per call before the first
attempt, and its post-call steps in the stream.

A call whose route has no steps passes straight through (no RPC, no wrapper). Otherwise the
processor's ``Prepare`` transforms the messages (redaction); each step's decision and time
go to the trail's notes (the ``llmesh-steps`` trailer); with ``post: [restore]`` the reply's
placeholders are put back in text deltas and tool-call arguments, also when a placeholder
arrives split across deltas (`llmesh.services.processor.redact.Restorer`). A ``screen``
step deciding ``route`` moves the call to the targets of its ``route_to`` (noted in the
trail); one deciding ``block`` has already failed the call in the processor.

With ``fit`` the request carries the first target's context window and output limit from
the model catalog (and the larger model's, for ``larger_model``); when the processor moves
the call, its targets become the larger model alone, noted in the trail.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from dataclasses import replace
from typing import Any

from llmesh.services.common.step_settings import FitStrategy, StepsConfig
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.events import CallEvent, Completed, Switched, TextDelta, ToolCallDelta
from llmesh.services.core.handler import Handler
from llmesh.services.core.target import Target
from llmesh.services.orchestrator.model_catalog import ModelCatalog
from llmesh.services.orchestrator.steps import Prepared, ProcessorClient
from llmesh.services.processor.redact import Restorer, json_escaped
from llmesh.v1 import processor_pb2

__all__ = ["Processed", "restored"]


class Processed:
    """Runs the steps of the call's route around the inner handler."""

    def __init__(
        self,
        inner: Handler,
        *,
        steps_for: Callable[[str], StepsConfig | None],
        client: ProcessorClient,
        targets_for: Callable[[str], tuple[Target, ...]] | None = None,
        catalog: Callable[[], ModelCatalog] = ModelCatalog,
    ) -> None:
        """`targets_for`: the targets of a model or route name, for a screen step's
        ``route_to`` (needed only by routes whose screen action is route); `catalog`: the
        current model catalog (context windows for the ``fit`` step)."""
        self._inner = inner
        self._steps_for = steps_for
        self._client = client
        self._targets_for = targets_for
        self._catalog = catalog

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        """The call's events, through its route's steps when it has any."""
        if not isinstance(call.request, ChatRequest):
            return self._inner.stream(call)
        steps = self._steps_for(call.call.model)
        if steps is None:
            return self._inner.stream(call)
        return self._run(call, steps)

    async def _run(
        self, call: RoutedCall[ChatRequest], steps: StepsConfig
    ) -> AsyncGenerator[CallEvent, None]:
        fit = self._fit_rules(call, steps) if "fit" in steps.pre else None
        prepared = await self._client.prepare(call.request.messages, steps, call.remaining(), fit)
        _note(call, prepared)
        request = replace(call.request, messages=prepared.messages)
        routed = replace(call, call=replace(call.call, request=request))
        if any(d.step == "screen" and d.decision == "route" for d in prepared.decisions):
            routed = self._rerouted(routed, steps.screen.route_to)
        if prepared.moved_to:
            provider, _, model = prepared.moved_to.partition("/")
            routed = replace(routed, targets=(Target(provider, model),), downgrade=())
            notes = call.trail.notes
            if notes is not None and call.targets:
                notes.append(f"fit: {call.targets[0].name} -> {prepared.moved_to}")
        events = self._inner.stream(routed)
        if steps.restores and prepared.pseudonyms:
            events = restored(events, prepared.pseudonyms)
        async with aclosing(events) as inner:
            async for event in inner:
                yield event

    def _rerouted(self, call: RoutedCall[ChatRequest], route_to: str) -> RoutedCall[ChatRequest]:
        if self._targets_for is None:
            raise RuntimeError("a screen step routes, but the layer has no targets_for")
        targets = self._targets_for(route_to)
        notes = call.trail.notes
        if notes is not None:
            notes.append(f"screen: routed to {route_to}")
        return replace(call, targets=targets, failover=frozenset(), downgrade=())

    def _fit_rules(
        self, call: RoutedCall[ChatRequest], steps: StepsConfig
    ) -> processor_pb2.FitRules:
        """The fit step's rules with the limits of the first target (and the larger model)."""
        catalog = self._catalog()
        rules = processor_pb2.FitRules(
            strategy=(
                processor_pb2.FIT_STRATEGY_LARGER_MODEL
                if steps.fit.strategy is FitStrategy.LARGER_MODEL
                else processor_pb2.FIT_STRATEGY_TRIM
            )
        )
        if call.targets:
            target = call.targets[0]
            rules.model = target.name
            rules.context_window, rules.reserve_output = _limits(
                catalog, target.provider, target.model, steps, call.request
            )
        larger = steps.fit.larger_model
        if larger is not None:
            provider, _, model = larger.partition("/")
            rules.larger_model = larger
            rules.larger_context_window, rules.larger_reserve_output = _limits(
                catalog, provider, model, steps, call.request
            )
        return rules


def _limits(
    catalog: ModelCatalog, provider: str, model: str, steps: StepsConfig, request: ChatRequest
) -> tuple[int, int]:
    """A model's context window (0: unknown) and the tokens reserved for the reply: the
    step's ``reserve_output``, else the call's max_tokens, else the model's output limit."""
    caps = catalog.capabilities(provider, model)
    reserve = steps.fit.reserve_output
    if reserve is None:
        reserve = request.max_tokens or caps.max_output_tokens or 0
    return caps.context_window or 0, reserve


def _note(call: RoutedCall[Any], prepared: Prepared) -> None:
    notes = call.trail.notes
    if notes is None:
        notes = call.trail.notes = []
    for d in prepared.decisions:
        counts = " ".join(f"{k}={v}" for k, v in sorted(d.counts.items()))
        if d.step == "screen":
            counts = f"score={d.score:.2f}" + (f" rules={','.join(d.rules)}" if d.rules else "")
        ms = d.duration.ToNanoseconds() / 1e6
        notes.append(f"{d.step}: {d.decision}{' ' + counts if counts else ''} ({ms:.3f} ms)")


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
