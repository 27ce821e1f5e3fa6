"""The ``fit`` step's side in the orchestrator: the first target's limits for the processor,
the count by a provider that counts input tokens itself, the rounds of trimming until that
count fits, and the summary of the middle turns (strategy ``summarize``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.fit_summary import summary_message
from llmesh.services.common.step_settings import FitStrategy, StepsConfig
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.chat import ChatRequest, Message
from llmesh.services.orchestrator.model_catalog import ModelCatalog
from llmesh.services.orchestrator.providers.base import TokenCounting
from llmesh.services.orchestrator.steps.client import Prepared, ProcessorClient
from llmesh.services.orchestrator.steps.summary import Mesh, summarize, summary_request
from llmesh.v1 import processor_pb2

__all__ = ["REFIT_ROUNDS", "SUMMARIZING", "Fitter", "decided", "fit_rules", "note"]

_STRATEGIES = {
    FitStrategy.TRIM: processor_pb2.FIT_STRATEGY_TRIM,
    FitStrategy.LARGER_MODEL: processor_pb2.FIT_STRATEGY_LARGER_MODEL,
    FitStrategy.SUMMARIZE: processor_pb2.FIT_STRATEGY_SUMMARIZE,
}
_FIT_ONLY = StepsConfig(pre=("fit",))
SUMMARIZING: ContextVar[bool] = ContextVar("llmesh_fit_summarizing", default=False)
"""True while a summary call runs, in its task: the steps of the calls it makes run no
``fit`` step (whatever the callers' metadata says), so a summary never asks for one."""
REFIT_ROUNDS = 3
"""Rounds of counting by the provider and trimming before a conversation that still does
not fit fails (each round drops at least one turn; one is usually enough)."""


class Fitter:
    """The rounds of the ``fit`` step that need more than one Prepare: counting by the
    provider, trimming again and summarizing."""

    def __init__(
        self,
        processor: Callable[[], ProcessorClient],
        *,
        mesh: Mesh | None = None,
        counts: Callable[[str], TokenCounting | None] | None = None,
    ) -> None:
        """`processor`: the processor client (raising when there is none); `mesh`: the
        mesh's own call path, for summary calls; `counts`: a provider's adapter when it
        counts input tokens itself."""
        self._processor = processor
        self._mesh = mesh
        self._counts = counts

    async def summarized(
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
            summarizing = SUMMARIZING.set(True)
            try:
                summary, request_id = await summarize(
                    self._mesh, call.call, call.request_id, model, request, call.remaining()
                )
            except LlmeshError as exc:
                why = f"summary by {model} failed ({exc.reason.value})"
            else:
                why = f"summary by {model} (request {request_id}) came back empty"
            finally:
                SUMMARIZING.reset(summarizing)
        if summary:
            summarized = summary_message(summary)
            assembled = (*messages[: span[0]], summarized, *messages[span[-1] + 1 :])
            try:
                refit = await self.refit(call, assembled, fit, counting, noted=False)
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
                note(call, refit)
                return refit.messages
        notes.append(f"fit: {why}; trimming")
        return (await self.refit(call, messages, fit, counting)).messages

    def counting(self, call: RoutedCall[ChatRequest]) -> TokenCounting | None:
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

    async def counted(
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

    async def refit(
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
            if tokens is None or decided(refit.decisions) == "fits":
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
                note(call, each)
            return refit
        return replace(refit, decisions=tuple(d for each in pending for d in each.decisions))


def fit_rules(
    catalog: ModelCatalog, call: RoutedCall[ChatRequest], steps: StepsConfig
) -> processor_pb2.FitRules:
    """The fit step's rules with the limits of the first target (and the larger model)."""
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


def decided(decisions: Sequence[processor_pb2.StepDecision]) -> str:
    """What the fit decision among `decisions` decided (empty: none)."""
    return next((d.decision for d in decisions if d.step == "fit"), "")


def _tokens(decisions: Sequence[processor_pb2.StepDecision]) -> int:
    """The tokens the last fit decision among `decisions` counted (0: none)."""
    counted = [d.counts["tokens"] for d in decisions if d.step == "fit"]
    return counted[-1] if counted else 0


def note(call: RoutedCall[Any], prepared: Prepared) -> None:
    """Each of the prepared decisions noted in the trail (values never: counts and names)."""
    notes = call.trail.notes
    if notes is None:
        notes = call.trail.notes = []
    for d in prepared.decisions:
        counts = " ".join(f"{k}={v}" for k, v in sorted(d.counts.items()))
        if d.step == "screen":
            counts = f"score={d.score:.2f}" + (f" rules={','.join(d.rules)}" if d.rules else "")
        ms = d.duration.ToNanoseconds() / 1e6
        notes.append(f"{d.step}: {d.decision}{' ' + counts if counts else ''} ({ms:.3f} ms)")
