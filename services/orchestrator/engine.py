"""The orchestrator's core: route a call, stream it from a provider, guarantee its ending.

`Orchestrator.stream` yields a `Started` event, the provider's deltas, and exactly one
`Completed` event, or raises `LlmeshError`; an upstream stream that ends without its
terminal event is an error (STREAM_INTERRUPTED), never a normal finish. Fallback models
are tried in order while nothing has reached the caller. Cancelling the consumer closes
the upstream stream (the provider generators close their HTTP responses in `finally`).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from services.common.errors import LlmeshError, Reason
from services.orchestrator.domain import (
    ChatRequest,
    Finish,
    FinishReason,
    ProviderEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from services.orchestrator.providers.base import Provider
from services.orchestrator.routing import Router, Target


@dataclass(frozen=True, slots=True)
class ChatCall:
    """A validated call as the caller made it: a model name (or alias) plus the request."""

    model: str
    request: ChatRequest
    """The request; its `model` is replaced by the routed provider model."""
    fallbacks: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Started:
    """The first event of every successful stream."""

    request_id: str
    provider: str
    model: str


@dataclass(frozen=True, slots=True)
class Completed:
    """The terminal event: why generation stopped and the whole call's usage."""

    reason: FinishReason
    provider_reason: str
    usage: Usage


EngineEvent = Started | TextDelta | ToolCallDelta | UsageUpdate | Completed
"""What `Orchestrator.stream` yields."""

UsageEstimator = Callable[[ChatRequest, int], Usage]
"""Estimates usage from a request and the number of output characters produced."""


def rough_estimate(request: ChatRequest, output_chars: int) -> Usage:
    """About four characters a token: the fallback when no tokenizer is wired in."""
    chars = sum(
        len(m.content) + sum(len(c.arguments) for c in m.tool_calls) for m in request.messages
    )
    return Usage(
        input_tokens=math.ceil(chars / 4) + 3 * len(request.messages),
        output_tokens=math.ceil(output_chars / 4),
        estimated=True,
    )


def new_request_id() -> str:
    """A fresh, unique call id."""
    return "req_" + uuid.uuid4().hex


_NO_FALLBACK = frozenset({Reason.CANCELLED, Reason.DEADLINE_EXCEEDED, Reason.INVALID_REQUEST})
"""Failures that another target cannot cure."""


class Orchestrator:
    """Routes calls to providers and streams their replies."""

    def __init__(
        self,
        router: Router,
        providers: Mapping[str, Provider],
        *,
        estimator: UsageEstimator = rough_estimate,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._router = router
        self._providers = dict(providers)
        self._estimate = estimator
        self._clock = clock

    @property
    def router(self) -> Router:
        """The model-name router."""
        return self._router

    def targets(self, call: ChatCall) -> list[Target]:
        """The primary target and the fallbacks, in order; MODEL_NOT_FOUND for any unknown name."""
        return [self._router.resolve(name) for name in (call.model, *call.fallbacks)]

    async def stream(
        self, call: ChatCall, *, timeout: float | None = None, request_id: str | None = None
    ) -> AsyncIterator[EngineEvent]:
        """Stream the reply to `call`; see the module docstring for the guarantees."""
        targets = self.targets(call)
        request_id = request_id or new_request_id()
        deadline = None if timeout is None else self._clock() + timeout
        for attempt, target in enumerate(targets):
            remaining = None if deadline is None else deadline - self._clock()
            if remaining is not None and remaining <= 0:
                raise LlmeshError(Reason.DEADLINE_EXCEEDED, "the call's deadline passed")
            provider = self._providers.get(target.provider)
            if provider is None:
                raise LlmeshError(
                    Reason.PROVIDER_NOT_CONFIGURED, f"provider {target.provider!r} is not available"
                )
            request = replace(call.request, model=target.model)
            delivered = False
            output_chars = 0
            try:
                async with aclosing(provider.stream(request, timeout=remaining)) as events:
                    async for event in events:
                        if not delivered:
                            delivered = True
                            yield Started(request_id, target.provider, target.model)
                        if isinstance(event, Finish):
                            yield self._complete(event, request, output_chars)
                            return
                        if isinstance(event, TextDelta):
                            output_chars += len(event.text)
                        elif isinstance(event, ToolCallDelta):
                            output_chars += len(event.arguments_delta) + len(event.name)
                        yield event
                raise LlmeshError(
                    Reason.STREAM_INTERRUPTED, "upstream stream ended before its terminal event"
                )
            except LlmeshError as err:
                last = attempt == len(targets) - 1
                if delivered or last or err.reason in _NO_FALLBACK:
                    err.metadata.setdefault("provider", target.provider)
                    err.metadata.setdefault("model", target.model)
                    raise
        raise AssertionError("unreachable: targets is never empty")  # pragma: no cover

    def _complete(self, finish: Finish, request: ChatRequest, output_chars: int) -> Completed:
        usage = finish.usage if finish.usage is not None else self._estimate(request, output_chars)
        return Completed(finish.reason, finish.provider_reason, usage)

    async def aclose(self) -> None:
        """Close every provider's connection pool."""
        for provider in self._providers.values():
            await provider.aclose()


ProviderEvents = AsyncIterator[ProviderEvent]
