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
latest; a pinned version is read once and kept, since versions never change) and its default
parameters applied where the call set none; the processor renders it
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

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import replace
from typing import Any

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.step_merge import merge_steps
from llmesh.services.common.step_settings import StepsConfig
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.events import CallEvent
from llmesh.services.core.handler import Handler
from llmesh.services.core.target import Target
from llmesh.services.orchestrator.model_catalog import ModelCatalog
from llmesh.services.orchestrator.providers.base import TokenCounting
from llmesh.services.orchestrator.steps import ProcessorClient, StepObserver
from llmesh.services.orchestrator.steps.fitting import SUMMARIZING, Fitter, decided, fit_rules, note
from llmesh.services.orchestrator.steps.masking import COMPILED, CompiledRules, masked, restored
from llmesh.services.orchestrator.steps.summary import Mesh
from llmesh.services.orchestrator.steps.templating import Templates, with_defaults
from llmesh.services.templates import TemplateStore

__all__ = ["Processed", "masked", "restored"]


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
        self._fitter = Fitter(self._processor, mesh=mesh, counts=counts)
        self._observer = observer or StepObserver()
        self._tenant_steps_for = tenant_steps_for
        self._merged: dict[tuple[int, int], tuple[StepsConfig, StepsConfig, StepsConfig | None]]
        self._merged = {}
        self._compiled = CompiledRules()
        self._templates = Templates(templates)

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        """The call's events, through its route's steps (and its template) when it has any."""
        if not isinstance(call.request, ChatRequest):
            return self._inner.stream(call)
        steps = self._steps_for(call.call.model)
        if self._tenant_steps_for is not None:
            steps = self._with_tenant(steps, self._tenant_steps_for(call.call.caller.tenant))
        if steps is not None and SUMMARIZING.get() and "fit" in steps.pre:
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

    async def _run(
        self, call: RoutedCall[ChatRequest], steps: StepsConfig
    ) -> AsyncGenerator[CallEvent, None]:
        self._processor()  # a call naming a template needs one even without route steps
        use = call.call.template
        rendered = None
        if use is not None:  # its defaults first: the fit step reserves the reply's max_tokens
            rendered, defaults = await self._templates.render(call, use)
            request = with_defaults(call.request, defaults)
            call = replace(call, call=replace(call.call, request=request))
        fit = fit_rules(self._catalog(), call, steps) if "fit" in steps.pre else None
        counting = (
            self._fitter.counting(call) if fit is not None and fit.context_window > 0 else None
        )
        try:
            if fit is None or counting is None:
                prepared = await self._processor().prepare(
                    call.request.messages, steps, call.remaining(), fit, rendered
                )
            else:
                prepared, counted = await self._fitter.counted(call, steps, fit, counting, rendered)
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
        note(call, prepared)
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
            messages = await self._fitter.summarized(call, steps, fit, prepared, counting)
        elif counting is not None and decided(prepared.decisions) == "trim" and fit is not None:
            # trimmed on sizes scaled to the provider's count: counted again until it fits
            messages = (await self._fitter.refit(call, messages, fit, counting)).messages
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
                detectors = self._compiled(prepared.output)
                events = masked(events, detectors, call.trail, self._observer)
        async with aclosing(events) as inner:
            async for event in inner:
                yield event

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
            if len(self._merged) >= COMPILED * 16:  # a reload left old pairs behind
                self._merged.clear()
            kept = self._merged[key] = (route, tenant, merge_steps(route, tenant))
        return kept[2]

    def _rerouted(self, call: RoutedCall[ChatRequest], route_to: str) -> RoutedCall[ChatRequest]:
        if self._targets_for is None:
            raise RuntimeError("a screen step routes, but the layer has no targets_for")
        targets = self._targets_for(route_to)
        notes = call.trail.notes
        if notes is not None:
            notes.append(f"screen: routed to {route_to}")
        return replace(call, targets=targets, failover=frozenset(), downgrade=())
