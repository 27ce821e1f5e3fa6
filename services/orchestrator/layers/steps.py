"""Processor steps: a route's pre-call steps over gRPC, once per call before the first
attempt, and its post-call steps in the stream.

A call's steps are its route's merged with its tenant's (`llmesh.services.common.step_merge`);
a call with none passes straight through (no RPC, no wrapper). Otherwise the processor's
``Prepare`` transforms the messages (redaction); each step's decision and time go to the
trail's notes (the ``llmesh-steps`` trailer), the metrics and the call's span
(`llmesh.services.orchestrator.steps.StepObserver`). The post-call steps run in the order
listed, on what ``Prepare`` answered: with ``restore`` the reply's placeholders are put back
in text deltas and tool-call arguments, also when a placeholder arrives split across deltas
(`llmesh.services.common.redaction.Restorer`); with ``redact_output`` the output rules'
values are masked there (`llmesh.services.common.redaction.OutputMasker`). A ``screen``
step deciding ``route`` moves the call to the targets of its ``route_to`` (noted in the
trail); one deciding ``block`` has already failed the call in the processor.

A call naming a template (`Call.template`) goes to the processor too, route steps or not:
the version is picked here (`llmesh.services.templates.resolve`: pinned, by weights, or the
latest) and its default parameters applied where the call set none; the processor renders it
in the same Prepare, its messages before the caller's; the ``template`` decision is in the
trail's notes and the name and version in the trail (for the ledger row).

With ``fit`` the request carries the first target's context window and output limit from
the model catalog (and the larger model's, for ``larger_model``); when the processor moves
the call, its targets become the larger model alone, noted in the trail. When it asks for
a summary (strategy ``summarize``), the middle turns go to ``fit.summary_model`` through
the mesh (`llmesh.services.orchestrator.steps.summary`), the summary replaces them, and
the processor fits the result again (trimming if it still does not fit); the summary
call's request id, the turns summarized and the tokens before and after are noted. A
summary that fails, comes back empty or leaves no room leaves trimming to do the fitting,
noted with its reason. A summary call itself runs no ``fit`` step.

When the first target's provider counts input tokens itself (Anthropic's count_tokens),
its count of the conversation as it goes out (after the other steps) decides the fit, and
a trimmed or summarized result is counted again and trimmed until that count fits.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

from google.protobuf import struct_pb2

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.fit_summary import summary_message
from llmesh.services.common.redaction import (
    OutputMasker,
    Redactor,
    Restorer,
    StreamDetectors,
    json_escaped,
)
from llmesh.services.common.step_merge import merge_steps
from llmesh.services.common.step_settings import FitStrategy, RedactionConfig, StepsConfig
from llmesh.services.core.call import RoutedCall, TemplateUse
from llmesh.services.core.chat import ChatRequest, Message
from llmesh.services.core.events import CallEvent, Completed, Switched, TextDelta, ToolCallDelta
from llmesh.services.core.handler import Handler
from llmesh.services.core.target import Target
from llmesh.services.core.trail import Trail
from llmesh.services.orchestrator.model_catalog import ModelCatalog
from llmesh.services.orchestrator.providers.base import TokenCounting
from llmesh.services.orchestrator.steps import Prepared, ProcessorClient, StepObserver
from llmesh.services.orchestrator.steps.summary import Mesh, summarize, summary_request
from llmesh.services.templates import Parameters, TemplateRef, TemplateStore, resolve
from llmesh.services.templates.convert import version_to_proto
from llmesh.v1 import processor_pb2

__all__ = ["Processed", "masked", "restored"]

_COMPILED = 64
"""Output rule sets kept compiled."""

_STRATEGIES = {
    FitStrategy.TRIM: processor_pb2.FIT_STRATEGY_TRIM,
    FitStrategy.LARGER_MODEL: processor_pb2.FIT_STRATEGY_LARGER_MODEL,
    FitStrategy.SUMMARIZE: processor_pb2.FIT_STRATEGY_SUMMARIZE,
}
_FIT_ONLY = StepsConfig(pre=("fit",))
_SUMMARIZING: ContextVar[bool] = ContextVar("llmesh_fit_summarizing", default=False)
"""True while a summary call runs, in its task: the steps of the calls it makes run no
``fit`` step (whatever the callers' metadata says), so a summary never asks for one."""
REFIT_ROUNDS = 3
"""Rounds of counting by the provider and trimming before a conversation that still does
not fit fails (each round drops at least one turn; one is usually enough)."""


class Processed:
    """Runs the steps of the call's route around the inner handler."""

    def __init__(
        self,
        inner: Handler,
        *,
        steps_for: Callable[[str], StepsConfig | None],
        client: ProcessorClient | None,
        targets_for: Callable[[str], tuple[Target, ...]] | None = None,
        catalog: Callable[[], ModelCatalog] = ModelCatalog,
        mesh: Mesh | None = None,
        counts: Callable[[str], TokenCounting | None] | None = None,
        observer: StepObserver | None = None,
        tenant_steps_for: Callable[[str], StepsConfig | None] | None = None,
        templates: TemplateStore | None = None,
    ) -> None:
        """`targets_for`: the targets of a model or route name, for a screen step's
        ``route_to`` (needed only by routes whose screen action is route); `catalog`: the
        current model catalog (context windows for the ``fit`` step); `mesh`: the mesh's
        own call path, for the summary calls of routes whose fit strategy is summarize;
        `counts`: a provider's adapter when it counts input tokens itself (Anthropic's
        count_tokens), whose count the ``fit`` step then uses instead of an estimate;
        `observer`: where each step's decision and time are recorded (metrics, the call's
        span); `tenant_steps_for`: a tenant's own steps, merged with the route's
        (`llmesh.services.common.step_merge`); `templates`: where the templates calls name
        are kept (None: a call naming one fails)."""
        self._inner = inner
        self._steps_for = steps_for
        self._client = client
        self._targets_for = targets_for
        self._catalog = catalog
        self._mesh = mesh
        self._counts = counts
        self._observer = observer or StepObserver()
        self._tenant_steps_for = tenant_steps_for
        self._merged: dict[tuple[int, int], tuple[StepsConfig, StepsConfig, StepsConfig | None]]
        self._merged = {}
        self._compiled: OrderedDict[RedactionConfig, StreamDetectors] = OrderedDict()
        self._templates = templates

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        """The call's events, through its route's steps (and its template) when it has any."""
        if not isinstance(call.request, ChatRequest):
            return self._inner.stream(call)
        steps = self._steps_for(call.call.model)
        if self._tenant_steps_for is not None:
            steps = self._with_tenant(steps, self._tenant_steps_for(call.call.caller.tenant))
        if steps is not None and _SUMMARIZING.get() and "fit" in steps.pre:
            pre = tuple(s for s in steps.pre if s != "fit")  # a summary asks for no summary
            steps = replace(steps, pre=pre) if pre or steps.post else None
        if steps is None:
            if call.call.template is None:
                return self._inner.stream(call)
            steps = StepsConfig()
        return self._run(call, steps)

    def _processor(self) -> ProcessorClient:
        """The processor client; PROVIDER_NOT_CONFIGURED when there is none."""
        if self._client is None:
            raise LlmeshError(
                Reason.PROVIDER_NOT_CONFIGURED,
                "a call naming a template needs the processor: set processor.address",
            )
        return self._client

    async def _render(
        self, call: RoutedCall[ChatRequest], use: TemplateUse
    ) -> tuple[processor_pb2.TemplateRender, Parameters]:
        """The version the call renders (noted in the trail) with its variables, and the
        version's default parameters."""
        if self._templates is None:
            raise LlmeshError(
                Reason.PROVIDER_NOT_CONFIGURED, "templates are not available on this orchestrator"
            )
        user = call.call.metadata.get("user", "")
        version = await resolve(
            self._templates, TemplateRef(use.name, use.version), call.caller.tenant, user
        )
        call.trail.template = (version.name, version.version)
        variables = struct_pb2.Struct()
        variables.update(dict(use.variables))
        render = processor_pb2.TemplateRender(
            template=version_to_proto(version), variables=variables
        )
        return render, version.parameters

    async def _run(
        self, call: RoutedCall[ChatRequest], steps: StepsConfig
    ) -> AsyncGenerator[CallEvent, None]:
        self._processor()  # a call naming a template needs one even without route steps
        use = call.call.template
        render = None
        if use is not None:  # its defaults first: the fit step reserves the reply's max_tokens
            render, defaults = await self._render(call, use)
            request = _with_defaults(call.request, defaults)
            call = replace(call, call=replace(call.call, request=request))
        fit = self._fit_rules(call, steps) if "fit" in steps.pre else None
        counting = self._counting(call) if fit is not None and fit.context_window > 0 else None
        try:
            if fit is None or counting is None:
                prepared = await self._processor().prepare(
                    call.request.messages, steps, call.remaining(), fit, render
                )
            else:
                prepared, counted = await self._counted(call, steps, fit, counting, render)
                counting = counting if counted else None  # this target cannot count after all
        except LlmeshError as exc:
            step = exc.metadata.get("step")
            if step:  # a step refused the call in the processor (never a value: names)
                detector = exc.metadata.get("detector")
                self._observer.decided(
                    step,
                    "block",
                    None,
                    counts={detector: 1} if detector else None,
                    rules=tuple(r for r in exc.metadata.get("rules", "").split(",") if r),
                )
            raise
        _note(call, prepared)
        for d in prepared.decisions:
            screened = d.step == "screen"
            self._observer.decided(
                d.step,
                d.decision,
                d.duration.ToNanoseconds() / 1e9,
                counts=None if screened else dict(d.counts),
                score=d.score if screened else None,
                rules=tuple(d.rules),
            )
        messages = prepared.messages
        if prepared.summarize and fit is not None:
            messages = await self._summarized(call, steps, fit, prepared, counting)
        elif counting is not None and _decided(prepared.decisions) == "trim" and fit is not None:
            # trimmed on sizes scaled to the provider's count: counted again until it fits
            messages = (await self._refit(call, messages, fit, counting)).messages
        request = replace(call.request, messages=messages)
        reserve = steps.fit.reserve_output
        if fit is not None and fit.context_window > 0 and request.max_tokens is None and reserve:
            # the reply gets what was kept free for it, not a provider's default beyond it
            request = replace(request, max_tokens=reserve)
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
        for step in steps.post:  # in the order listed
            if step == "restore" and prepared.pseudonyms:
                events = restored(events, prepared.pseudonyms)
            elif step == "redact_output" and prepared.output is not None:
                detectors = self._stream_detectors(prepared.output)
                events = masked(events, detectors, call.trail, self._observer)
        async with aclosing(events) as inner:
            async for event in inner:
                yield event

    async def _summarized(
        self,
        call: RoutedCall[ChatRequest],
        steps: StepsConfig,
        fit: processor_pb2.FitRules,
        prepared: Prepared,
        counting: TokenCounting | None,
    ) -> tuple[Message, ...]:
        """The prepared messages with the middle turns summarized, fitted again; trimmed
        instead when the summary call fails, brings nothing or leaves no room."""
        notes = call.trail.notes if call.trail.notes is not None else []
        messages, span = prepared.messages, prepared.summarize
        model = steps.fit.summary_model or ""
        summary, request_id, why = "", "", "no call path for a summary"
        if self._mesh is not None:
            request = summary_request([messages[i] for i in span], steps.fit.summary_max_tokens)
            summarizing = _SUMMARIZING.set(True)
            try:
                summary, request_id = await summarize(
                    self._mesh, call.call, call.request_id, model, request, call.remaining()
                )
            except LlmeshError as exc:
                why = f"summary by {model} failed ({exc.reason.value})"
            else:
                why = f"summary by {model} (request {request_id}) came back empty"
            finally:
                _SUMMARIZING.reset(summarizing)
        if summary:
            summarized = summary_message(summary)
            assembled = (*messages[: span[0]], summarized, *messages[span[-1] + 1 :])
            try:
                refit = await self._refit(call, assembled, fit, counting, noted=False)
            except LlmeshError as exc:
                if exc.reason is not Reason.CONTEXT_TOO_LONG:
                    raise
                why = f"summary by {model} (request {request_id}) leaves no room for the last turn"
            else:
                before = _tokens(prepared.decisions)
                notes.append(
                    f"fit: summarized messages={len(span)} tokens_before={before} "
                    f"tokens_after={_tokens(refit.decisions)} summary_model={model} "
                    f"summary_request={request_id}"
                )
                _note(call, refit)
                return refit.messages
        notes.append(f"fit: {why}; trimming")
        return (await self._refit(call, messages, fit, counting)).messages

    def _counting(self, call: RoutedCall[ChatRequest]) -> TokenCounting | None:
        """The first target's adapter when it counts input tokens itself."""
        if self._counts is None or not call.targets:
            return None
        return self._counts(call.targets[0].provider)

    async def _count(
        self, call: RoutedCall[ChatRequest], counting: TokenCounting, messages: Sequence[Message]
    ) -> int | None:
        """`messages` (with the call's tools and options) counted by the first target's
        provider; None, noted, when it cannot count them now."""
        target = call.targets[0]
        request = replace(call.request, messages=tuple(messages))
        try:
            return await counting.count_tokens(target.model, request, timeout=call.remaining())
        except LlmeshError as exc:
            notes = call.trail.notes
            if notes is None:
                notes = call.trail.notes = []
            notes.append(f"fit: count by {target.provider} failed ({exc.reason.value}); estimated")
            return None

    async def _counted(
        self,
        call: RoutedCall[ChatRequest],
        steps: StepsConfig,
        fit: processor_pb2.FitRules,
        counting: TokenCounting,
        render: processor_pb2.TemplateRender | None = None,
    ) -> tuple[Prepared, bool]:
        """The pre-call steps with the fit step counting by the provider: the other steps
        first (so only redacted texts are counted), the count, then the fit step; and
        whether the provider counted."""
        messages, first = call.request.messages, None
        others = tuple(s for s in steps.pre if s != "fit")
        if others or render is not None:  # the template rendered first, with the others
            first = await self._processor().prepare(
                messages, replace(steps, pre=others), call.remaining(), None, render
            )
            messages = first.messages
        tokens = await self._count(call, counting, messages)
        rules = _rules(fit, fit.strategy, tokens)
        fitted = await self._processor().prepare(messages, _FIT_ONLY, call.remaining(), rules)
        if first is not None:
            fitted = replace(
                fitted, pseudonyms=first.pseudonyms, decisions=first.decisions + fitted.decisions
            )
        return fitted, tokens is not None

    async def _refit(
        self,
        call: RoutedCall[ChatRequest],
        messages: Sequence[Message],
        fit: processor_pb2.FitRules,
        counting: TokenCounting | None,
        *,
        noted: bool = True,
    ) -> Prepared:
        """`messages` trimmed to the budget if need be. With a provider that counts, each
        round's result is counted again and trimmed until the count fits (up to
        `REFIT_ROUNDS`); each round's decision is noted (the first one only with `noted`,
        so a caller can note its own line first; it is noted then with the rest)."""
        pending: list[Prepared] = []
        for _ in range(REFIT_ROUNDS):
            tokens = None if counting is None else await self._count(call, counting, messages)
            rules = _rules(fit, processor_pb2.FIT_STRATEGY_TRIM, tokens)
            refit = await self._processor().prepare(messages, _FIT_ONLY, call.remaining(), rules)
            pending.append(refit)
            if tokens is None or _decided(refit.decisions) == "fits":
                break
            messages = refit.messages
        else:
            raise LlmeshError(
                Reason.CONTEXT_TOO_LONG,
                f"the conversation still exceeds {call.targets[0].name}'s window as its "
                f"provider counts it after {REFIT_ROUNDS} rounds of trimming",
            )
        if noted:
            for each in pending:
                _note(call, each)
            return refit
        return replace(refit, decisions=tuple(d for each in pending for d in each.decisions))

    def _with_tenant(
        self, route: StepsConfig | None, tenant: StepsConfig | None
    ) -> StepsConfig | None:
        """The route's steps merged with the tenant's, kept per pair (both are the loaded
        configuration's objects, so the pair's ids name it while they are held here)."""
        if route is None or tenant is None:
            return route or tenant
        key = (id(route), id(tenant))
        kept = self._merged.get(key)
        if kept is None or kept[0] is not route or kept[1] is not tenant:
            if len(self._merged) >= _COMPILED * 16:  # a reload left old pairs behind
                self._merged.clear()
            kept = self._merged[key] = (route, tenant, merge_steps(route, tenant))
        return kept[2]

    def _stream_detectors(self, rules: RedactionConfig) -> StreamDetectors:
        """The output rules compiled for partial matching, kept for the last rule sets."""
        detectors = self._compiled.get(rules)
        if detectors is None:
            detectors = self._compiled[rules] = StreamDetectors(Redactor(rules))
            if len(self._compiled) > _COMPILED:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(rules)
        return detectors

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
        rules = processor_pb2.FitRules(strategy=_STRATEGIES[steps.fit.strategy])
        if steps.fit.strategy is FitStrategy.SUMMARIZE:
            rules.keep_turns = steps.fit.keep_turns
            rules.summary_max_tokens = steps.fit.summary_max_tokens
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
    step's ``reserve_output``, else the call's max_tokens, else the model's output limit;
    never less than the call's max_tokens (the providers refuse a prompt that leaves less
    than max_tokens in the window)."""
    caps = catalog.capabilities(provider, model)
    asked = request.max_tokens or 0
    reserve = steps.fit.reserve_output
    if reserve is None:
        reserve = asked or caps.max_output_tokens or 0
    return caps.context_window or 0, max(reserve, asked)


def _rules(
    fit: processor_pb2.FitRules, strategy: processor_pb2.FitStrategy, tokens: int | None
) -> processor_pb2.FitRules:
    """A copy of `fit` with `strategy` and the provider's count (None: not counted)."""
    rules = processor_pb2.FitRules()
    rules.CopyFrom(fit)
    rules.strategy = strategy
    rules.counted_tokens = tokens or 0
    return rules


def _decided(decisions: Sequence[processor_pb2.StepDecision]) -> str:
    """What the fit decision among `decisions` decided (empty: none)."""
    return next((d.decision for d in decisions if d.step == "fit"), "")


def _tokens(decisions: Sequence[processor_pb2.StepDecision]) -> int:
    """The tokens the last fit decision among `decisions` counted (0: none)."""
    counted = [d.counts["tokens"] for d in decisions if d.step == "fit"]
    return counted[-1] if counted else 0


def _with_defaults(request: ChatRequest, defaults: Parameters) -> ChatRequest:
    """`request` with a template's default parameters where the call set none."""
    changes: dict[str, Any] = {
        name: getattr(defaults, name)
        for name in (
            "temperature",
            "top_p",
            "max_tokens",
            "seed",
            "presence_penalty",
            "frequency_penalty",
        )
        if getattr(request, name) is None and getattr(defaults, name) is not None
    }
    if not request.stop and defaults.stop:
        changes["stop"] = defaults.stop
    return replace(request, **changes) if changes else request


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
