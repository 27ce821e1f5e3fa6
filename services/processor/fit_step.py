"""The ``fit`` pre-call step: the conversation as it goes out, fitted to its target's window.

The budget is the target's context window less the tokens reserved for the reply. A
conversation within it is left alone (``fits``). Over it, ``trim`` keeps the system
messages and the most recent turns (`llmesh.services.processor.fit`); ``larger_model``
moves the call to the configured model when the conversation fits its budget, and trims to
that budget when it does not; ``summarize`` names the middle turns (``summarize`` on the
response) for the caller to replace with a summary, and trims when no middle turns leave
room for the summary and the last turn. The kept turns after the system messages start at a
user message. Counts use the target model's counter: exact for OpenAI encodings, an
estimate for the others; when the caller brings the provider's own count of
the conversation (``counted_tokens``: Anthropic's count_tokens), that count decides, and
each message's size is scaled to it for trimming. The decision's ``estimated`` count is 1
for an estimate, 0 for an exact count.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.fit_summary import summary_message
from llmesh.services.common.media_settings import PartLimits
from llmesh.services.core.chat import Message, Role
from llmesh.services.processor.convert import messages_from_proto
from llmesh.services.processor.fit import FitResult, fit_counted, summary_span
from llmesh.services.processor.tokenizers import TokenCounter
from llmesh.v1 import chat_pb2, processor_pb2

__all__ = ["DEFAULT_KEEP_TURNS", "DEFAULT_SUMMARY_TOKENS", "fit_response"]

DEFAULT_KEEP_TURNS = 2
"""The last user turns a summarize decision keeps whole when the rules leave it unset."""
DEFAULT_SUMMARY_TOKENS = 512
"""The summary's length limit when the rules leave it unset."""


async def fit_response(
    rules: processor_pb2.FitRules,
    response: processor_pb2.PrepareResponse,
    counter_for: Callable[[str], TokenCounter],
    limits: PartLimits,
) -> None:
    """Fit `response`'s messages in place; the decision, dropped indices and any move are
    set on it. Raises CONTEXT_TOO_LONG when even the last turn does not fit."""
    started = time.perf_counter()
    decision = response.decisions.add(step="fit")
    messages = messages_from_proto(response.messages, limits)
    window, reserve, model = rules.context_window, rules.reserve_output, rules.model
    if window <= 0:
        decision.decision = "unknown_window"
    else:
        counter = counter_for(model)
        sizes = await counter.message_sizes(messages)
        tokens = sum(sizes) + counter.reply_priming
        exact = counter.exact
        if rules.counted_tokens > 0:  # the provider's own count: the sizes scaled to it
            sizes = _scaled(sizes, rules.counted_tokens - counter.reply_priming)
            tokens, exact = rules.counted_tokens, True
        budget = _budget(window, reserve, model)
        larger = rules.strategy == processor_pb2.FIT_STRATEGY_LARGER_MODEL
        summarize = rules.strategy == processor_pb2.FIT_STRATEGY_SUMMARIZE
        if tokens <= budget:
            decision.decision = "fits"
        elif summarize and (span := _span(rules, messages, sizes, budget, counter)) is not None:
            decision.decision = "summarize"
            response.summarize.indices.extend(span)
            response.summarize.tokens = sum(sizes[i] for i in span)
            decision.counts["summarize_messages"] = len(span)
            decision.counts["summarize_tokens"] = response.summarize.tokens
        elif larger and rules.larger_model and rules.larger_context_window > 0:
            counter = counter_for(rules.larger_model)
            sizes = await counter.message_sizes(messages)
            tokens = sum(sizes) + counter.reply_priming
            exact = counter.exact
            budget = _budget(
                rules.larger_context_window, rules.larger_reserve_output, rules.larger_model
            )
            response.moved_to = rules.larger_model
            decision.decision = "larger_model"
            if tokens > budget:
                tokens = _trim(response, decision, messages, sizes, budget, counter)
        else:
            decision.decision = "trim"
            tokens = _trim(response, decision, messages, sizes, budget, counter)
        decision.counts["tokens"] = tokens
        decision.counts["budget"] = budget
        decision.counts["estimated"] = 0 if exact else 1
    decision.duration.FromNanoseconds(int((time.perf_counter() - started) * 1e9))


def _scaled(sizes: Sequence[int], total: int) -> list[int]:
    """`sizes` in proportion to a `total` counted elsewhere (each rounded up, so the scaled
    sizes never add up to less than it)."""
    counted = sum(sizes)
    if counted <= 0 or total <= 0:
        return list(sizes)
    return [math.ceil(size * total / counted) for size in sizes]


def _span(
    rules: processor_pb2.FitRules,
    messages: Sequence[Message],
    sizes: Sequence[int],
    budget: int,
    counter: TokenCounter,
) -> range | None:
    """The middle turns to summarize: room is left for a summary of up to
    ``summary_max_tokens`` (with its message's framing and prefix)."""
    longest = rules.summary_max_tokens or DEFAULT_SUMMARY_TOKENS
    reserve = counter.message_tokens(summary_message("")) + longest
    return summary_span(
        messages,
        sizes,
        budget,
        counter.reply_priming,
        keep_turns=rules.keep_turns or DEFAULT_KEEP_TURNS,
        summary_tokens=reserve,
    )


def _budget(window: int, reserve: int, model: str) -> int:
    budget = window - max(reserve, 0)
    if budget <= 0:
        raise LlmeshError(
            Reason.CONTEXT_TOO_LONG,
            f"{model}: the {reserve} tokens reserved for the reply leave no room in its "
            f"{window}-token window",
            metadata={"tokens": str(reserve), "max_tokens": str(window)},
        )
    return budget


def _user_first(messages: Sequence[Message], sizes: Sequence[int], fit: FitResult) -> FitResult:
    """`fit` with the kept turns after the system messages starting at a user message (an
    assistant turn and its tool results before it dropped too), as every provider accepts;
    unchanged when no later user message is kept."""
    lead = 0
    while lead < len(messages) and messages[lead].role is Role.SYSTEM:
        lead += 1
    suffix = [i for i in fit.kept_indices if i >= lead]
    users = [i for i in suffix if messages[i].role is Role.USER]
    if not suffix or not users or users[0] == suffix[0]:
        return fit
    gone = [i for i in suffix if i < users[0]]
    kept = tuple(i for i in fit.kept_indices if i not in gone)
    lost = sum(sizes[i] for i in gone)
    return FitResult(
        messages=tuple(messages[i] for i in kept),
        kept_indices=kept,
        tokens=fit.tokens - lost,
        dropped_indices=tuple(sorted((*fit.dropped_indices, *gone))),
        dropped_tokens=fit.dropped_tokens + lost,
    )


def _trim(
    response: processor_pb2.PrepareResponse,
    decision: processor_pb2.StepDecision,
    messages: Sequence[Message],
    sizes: Sequence[int],
    budget: int,
    counter: TokenCounter,
) -> int:
    fit = _user_first(messages, sizes, fit_counted(messages, sizes, budget, counter.reply_priming))
    kept = [chat_pb2.Message() for _ in fit.kept_indices]
    for copy, i in zip(kept, fit.kept_indices, strict=True):
        copy.CopyFrom(response.messages[i])
    del response.messages[:]
    response.messages.extend(kept)
    response.dropped_indices.extend(fit.dropped_indices)
    decision.counts["dropped_messages"] = len(fit.dropped_indices)
    decision.counts["dropped_tokens"] = fit.dropped_tokens
    return fit.tokens
