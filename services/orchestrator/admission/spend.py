"""One call's spend against its budget: worst-case bounds and a reservation that keeps up.

A call holds, before any of its money can be spent, at least what it may cost:

- **input**: `input_bound`, a provable upper bound on the tokens a provider counts for the
  prompt: OpenAI's and Anthropic's tokenizers are byte-level, so no token is shorter than
  one UTF-8 byte, and each message, tool and the reply's priming get a generous framing
  allowance (OpenAI documents 3 to 5 tokens a message, Anthropic adds a tool-use system
  prompt of a few hundred tokens);
- **output**: `output_bound`, the request's ``max_tokens``, else the model's published
  output limit (`Price.max_output_tokens`), else `DEFAULT_MAX_OUTPUT`, which providers do
  not enforce, so `CallSpend.watch` tracks such a reply as it streams (one byte or more per
  token) and extends the hold before the reply outgrows it;
- **every attempt**: the first is covered by the reservation made before the call starts;
  each further one (a retry, a hedge, a fallback, a mid-stream restart or continuation)
  is admitted by `CallSpend.admit` only once the hold covers the actual cost of the
  attempts that ended plus the worst case of those still running, itself included.

An extension that a cap refuses keeps the attempt unsent (BUDGET_EXCEEDED ends the call; a
hedge is simply not raced) or stops the stream with BUDGET_EXCEEDED. At the end the actual
cost is committed and the rest of the hold released.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import (
    AudioPart,
    ChatRequest,
    ContentPart,
    DocumentPart,
    ImagePart,
    TextPart,
)
from llmesh.services.core.embeddings import EmbeddingRequest
from llmesh.services.core.events import CallEvent, Started, Switched, TextDelta, ToolCallDelta
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Outcome
from llmesh.services.ledger import PriceTable
from llmesh.services.orchestrator.admission.budgets import BudgetManager, Reservation

__all__ = [
    "DEFAULT_MAX_OUTPUT",
    "CallSpend",
    "input_bound",
    "open_spend",
    "output_bound",
    "worst_case",
]

DEFAULT_MAX_OUTPUT = 4096
"""Output tokens assumed when a call sets no max_tokens and its model's limit is unknown
(Anthropic's adapter sends this as max_tokens); a longer reply extends the hold."""
MESSAGE_FRAMING = 8
"""Tokens allowed per message for its role and delimiters (OpenAI counts 3 to 5)."""
REPLY_PRIMING = 8
"""Tokens allowed once for priming the reply (OpenAI counts 3)."""
TOOL_FRAMING = 16
"""Tokens allowed per tool definition on top of its JSON text."""
TOOL_USE_PROMPT = 600
"""Tokens allowed once when tools are offered (Anthropic's tool-use system prompt is ~350)."""

IMAGE_BOUND = 50_000
"""Tokens allowed per image: OpenAI's gpt-4o-mini bills a high-detail image up to
2,833 + 8 x 5,667 tokens (its other models and Anthropic's far fewer)."""
PAGE_BOUND = 3_000
"""Tokens allowed per PDF page on top of the document's bytes (Anthropic reads each page
as an image, about 1,600 tokens, besides its text)."""
AUDIO_BYTES_PER_TOKEN = 100
"""Audio bytes per token allowed (OpenAI bills about 10 tokens a second; a 32 kbit/s mp3
is 4,000 bytes a second)."""

_EPSILON = 1e-9
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?!s)")


def _bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def part_bound(part: ContentPart) -> int:
    """At least the input tokens of one content part: text by its bytes, an image by
    `IMAGE_BOUND` (a URL's too), a PDF by its bytes plus `PAGE_BOUND` a page, audio by
    `AUDIO_BYTES_PER_TOKEN`."""
    if isinstance(part, TextPart):
        return _bytes(part.text)
    if isinstance(part, ImagePart):
        return IMAGE_BOUND
    if isinstance(part, DocumentPart):
        pages = max(1, len(_PDF_PAGE.findall(part.data)))
        return len(part.data) + PAGE_BOUND * pages
    assert isinstance(part, AudioPart)
    return len(part.data) // AUDIO_BYTES_PER_TOKEN + MESSAGE_FRAMING


def input_bound(request: ChatRequest | EmbeddingRequest) -> int:
    """At least as many input tokens as any byte-level tokenizer counts for `request`."""
    if isinstance(request, EmbeddingRequest):
        return sum(_bytes(text) for text in request.inputs)
    total = REPLY_PRIMING
    for m in request.messages:
        total += MESSAGE_FRAMING + _bytes(m.content) + _bytes(m.name) + _bytes(m.tool_call_id)
        total += sum(part_bound(p) for p in m.parts)
        for c in m.tool_calls:
            total += _bytes(c.name) + _bytes(c.arguments) + MESSAGE_FRAMING
    if request.tools:
        total += TOOL_USE_PROMPT
        for t in request.tools:
            total += TOOL_FRAMING + _bytes(t.name) + _bytes(t.description)
            total += _bytes(repr(dict(t.parameters)))  # JSON is never longer than the repr
    return total


def output_bound(
    prices: PriceTable, target: Target, request: ChatRequest | EmbeddingRequest
) -> tuple[int, bool]:
    """The most output tokens one attempt at `target` can produce, and whether the provider
    enforces that bound (False for `DEFAULT_MAX_OUTPUT`, which only `watch` enforces)."""
    if isinstance(request, EmbeddingRequest):
        return 0, True  # an embedding produces no output tokens
    limit = prices.output_limit(target.provider, target.model)
    if request.max_tokens is not None:
        return (request.max_tokens if limit is None else min(request.max_tokens, limit)), True
    if limit is not None:
        return limit, True
    return DEFAULT_MAX_OUTPUT, False


def worst_case(
    prices: PriceTable,
    target: Target,
    request: ChatRequest | EmbeddingRequest,
    input_tokens: int | None = None,
) -> float:
    """What one attempt at `target` may cost at most, in USD."""
    tokens = input_bound(request) if input_tokens is None else input_tokens
    out, _ = output_bound(prices, target, request)
    return prices.worst_case(
        target.provider, target.model, tokens, out, cache_ttl=_cache_ttl(request)
    )


def _cache_ttl(request: ChatRequest | EmbeddingRequest) -> str:
    return request.prompt_cache_ttl if isinstance(request, ChatRequest) else "5m"


@dataclass
class _Attempt:
    record: AttemptRecord
    worst: float
    """USD held for this attempt while it runs."""
    output: int
    """Output tokens that `worst` covers."""
    enforced: bool
    """True when the provider itself stops the reply at `output` tokens."""


class CallSpend:
    """One call's reservation, grown before each attempt and as an unbounded reply streams."""

    def __init__(
        self,
        budgets: BudgetManager,
        reservation: Reservation,
        prices: PriceTable,
        cost_of: Callable[[AttemptRecord], float],
    ) -> None:
        """`cost_of` prices an attempt that ended (its reported or estimated usage)."""
        self._budgets = budgets
        self._reservation = reservation
        self._prices = prices
        self._cost_of = cost_of
        self._held = reservation.amount
        """USD held or being extended (ahead of the store, so concurrent hedges add up)."""
        self._attempts: dict[int, _Attempt] = {}
        self._current: _Attempt | None = None
        self._seen = 0
        """UTF-8 bytes of output relayed by the current attempt (when not enforced)."""

    @property
    def held(self) -> float:
        """USD the call holds now."""
        return self._reservation.amount

    async def admit(self, record: AttemptRecord, request: ChatRequest) -> None:
        """Hold this attempt's worst case before it is sent, or raise BUDGET_EXCEEDED."""
        out, enforced = output_bound(self._prices, record.target, request)
        worst = worst_case(self._prices, record.target, request)
        attempt = _Attempt(record, worst, out, enforced)
        self._attempts[id(record)] = attempt
        try:
            await self._cover()
        except LlmeshError as err:
            del self._attempts[id(record)]
            kind = "a hedge" if record.hedged else "a retry" if record.retry else "another attempt"
            raise LlmeshError(
                Reason.BUDGET_EXCEEDED,
                f"{kind} at {record.target.name} was not sent: {err.message}",
                metadata=dict(err.metadata),
            ) from None

    async def watch(
        self, events: AsyncGenerator[CallEvent, None]
    ) -> AsyncGenerator[CallEvent, None]:
        """Relay `events`, extending the hold as a reply without a provider-enforced limit
        grows past it; stop with BUDGET_EXCEEDED when the extension is refused."""
        async with aclosing(events):
            async for event in events:
                if isinstance(event, TextDelta | ToolCallDelta):
                    attempt = self._current
                    if attempt is not None and not attempt.enforced:
                        text = event.text if isinstance(event, TextDelta) else event.arguments_delta
                        self._seen += _bytes(text)
                        if self._seen > attempt.output:
                            await self._grow(attempt)
                elif isinstance(event, Started | Switched):
                    self._follow()
                yield event

    async def settle(self, actual: float) -> None:
        """Book the call's actual cost and free the rest of its hold."""
        await self._budgets.commit(self._reservation, actual)

    def _follow(self) -> None:
        """The attempt now relayed: the running one (a hedge race has ended by now)."""
        running = [a for a in self._attempts.values() if a.record.outcome is Outcome.RUNNING]
        self._current = running[-1] if running else None
        self._seen = 0

    async def _grow(self, attempt: _Attempt) -> None:
        step = max(DEFAULT_MAX_OUTPUT, self._seen - attempt.output)
        target = attempt.record.target
        more = self._prices.worst_case(target.provider, target.model, 0, step)
        attempt.output += step
        attempt.worst += more
        try:
            await self._cover()
        except LlmeshError as err:
            raise LlmeshError(
                Reason.BUDGET_EXCEEDED,
                f"the reply from {target.name} was stopped after {self._seen} bytes of output: "
                f"it outgrew the {self._held:.4f} USD held for the call, and holding more was "
                f"refused: {err.message}",
                metadata=dict(err.metadata),
            ) from None

    async def _cover(self) -> None:
        """Extend the hold to what ended attempts cost plus what running ones may cost."""
        needed = sum(
            a.worst if a.record.outcome is Outcome.RUNNING else self._cost_of(a.record)
            for a in self._attempts.values()
        )
        more = needed - self._held
        if more <= _EPSILON:
            return
        self._held += more  # before awaiting: a concurrent hedge counts it
        try:
            await self._budgets.extend(self._reservation, more)
        except BaseException:
            self._held -= more
            raise


async def open_spend(
    budgets: BudgetManager,
    scopes: Sequence[str],
    prices: PriceTable,
    targets: Sequence[Target],
    request: ChatRequest,
    cost_of: Callable[[AttemptRecord], float],
) -> CallSpend:
    """Reserve the first attempt's worst case (at any of `targets`) or raise BUDGET_EXCEEDED."""
    tokens = input_bound(request)
    first = max(worst_case(prices, t, request, tokens) for t in targets)
    reservation = await budgets.reserve(scopes, first)
    return CallSpend(budgets, reservation, prices, cost_of)
