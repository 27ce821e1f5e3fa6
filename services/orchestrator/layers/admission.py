"""Admission: requests and (estimated) tokens per minute, per tenant and per key, taken
before the call starts, and per target, checked before each attempt is sent.

The tokens taken up front are an estimate (the input estimate plus the output limit); once
the call is over, what it did not use is refunded: all of it for a call that reached no
provider (a response-cache hit, a refusal), the rest from the call's settlement otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from typing import Any

from llmesh.services.core.call import RoutedCall
from llmesh.services.core.embeddings import EmbeddingRequest
from llmesh.services.core.events import CallEvent
from llmesh.services.core.handler import Handler
from llmesh.services.core.trail import AttemptRecord
from llmesh.services.orchestrator.admission import Limit, RateLimiter
from llmesh.services.orchestrator.admission.spend import DEFAULT_MAX_OUTPUT
from llmesh.services.orchestrator.estimate import estimate_input_tokens

__all__ = ["RateLimited", "TokenCounter", "rough_input_tokens"]

TokenCounter = Callable[[str, Any], int]
"""Counts (or estimates) a request's input tokens for a ``provider/model`` name."""


def rough_input_tokens(model: str, request: Any) -> int:
    """The estimator's input tokens (`estimate.estimate_input_tokens`), for any model."""
    return estimate_input_tokens(request)


def _pick(table: Mapping[str, Limit], name: str) -> Limit | None:
    """The subject's own entry, else the ``"*"`` entry for every subject."""
    return table.get(name, table.get("*"))


def _tokens(count: int, request: Any) -> int:
    """Input tokens plus the most the reply may produce (nothing, for embeddings)."""
    if isinstance(request, EmbeddingRequest):
        return count
    return count + (getattr(request, "max_tokens", None) or DEFAULT_MAX_OUTPUT)


class RateLimited:
    """The admission layer; ``"*"`` entries apply to every tenant / key / target."""

    def __init__(
        self,
        inner: Handler,
        limiter: RateLimiter,
        *,
        tenants: Mapping[str, Limit],
        keys: Mapping[str, Limit],
        targets: Mapping[str, Limit],
        count_input: TokenCounter = rough_input_tokens,
    ) -> None:
        self._inner = inner
        self._limiter = limiter
        self._tenants = dict(tenants)
        self._keys = dict(keys)
        self._targets = dict(targets)
        self._count = count_input

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        """The call, admitted; a call with no limit of its own passes straight through."""
        limits = self._limits(call)
        if self._targets:
            call = call.gated(self._target_gate)
        if not limits:
            return self._inner.stream(call)
        return self._admitted(call, limits)

    def _limits(self, call: RoutedCall[Any]) -> list[tuple[str, Limit]]:
        caller = call.caller
        out = []
        tenant = _pick(self._tenants, caller.tenant)
        if tenant is not None:
            out.append((f"tenant:{caller.tenant}", tenant))
        if caller.key_id:
            key = _pick(self._keys, caller.key_id)
            if key is not None:
                out.append((f"key:{caller.key_id}", key))
        return out

    async def _admitted(
        self, call: RoutedCall[Any], limits: list[tuple[str, Limit]]
    ) -> AsyncGenerator[CallEvent, None]:
        tokens = _tokens(self._count(call.targets[0].name, call.request), call.request)
        await self._take(limits, tokens)
        try:
            async with aclosing(self._inner.stream(call)) as events:
                async for event in events:
                    yield event
        finally:
            settled = call.trail.settlement
            used = settled.used if settled is not None else None
            actual = 0 if used is None else used.input_tokens + used.output_tokens
            actual += 0 if used is None else used.cache_read_tokens
            for subject, limit in limits:
                await self._limiter.refund(subject, limit, max(tokens - actual, 0))

    async def _take(self, limits: list[tuple[str, Limit]], tokens: int) -> None:
        taken: list[tuple[str, Limit]] = []
        try:
            for subject, limit in limits:
                await self._limiter.acquire(subject, limit, tokens)
                taken.append((subject, limit))
        except BaseException:
            for subject, limit in taken:  # all or nothing across subjects
                await self._limiter.refund(subject, limit, tokens)
            raise

    async def _target_gate(self, record: AttemptRecord, request: Any) -> None:
        """Per-target requests and tokens per minute, checked before each attempt."""
        target = record.target.name
        limit = _pick(self._targets, target)
        if limit is None:
            return
        tokens = _tokens(self._count(target, request), request)
        await self._limiter.acquire(f"target:{target}", limit, tokens)
