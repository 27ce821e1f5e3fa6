"""In-memory providers that play scripts, for engine tests without a network."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace
from typing import Any

from llmesh.services.common.config import ProviderConfig, RouteConfig
from llmesh.services.core.call import ChatCall, Gate, RoutedCall
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.events import CallEvent, ProviderEvent
from llmesh.services.orchestrator.engine import Orchestrator
from llmesh.services.orchestrator.routing import Router

Step = ProviderEvent | BaseException | float
"""An event to yield, an exception to raise, or seconds to sleep."""


class Scripted:
    """A provider whose n-th call plays the n-th script (the last one repeats)."""

    def __init__(
        self, name: str, *scripts: Sequence[Step], options: frozenset[str] = frozenset()
    ) -> None:
        self.name = name
        self.options = options
        """The optional features it honours (`ChatRequest.options`); none by default."""
        self.scripts = list(scripts)
        self.calls: list[ChatRequest] = []
        self.models: list[str] = []
        """The provider model each call asked for, beside its request in `calls`."""
        self.closed = 0

    async def stream(
        self, model: str, request: ChatRequest, *, timeout: float | None
    ) -> AsyncGenerator[ProviderEvent, None]:
        script = self.scripts[min(len(self.calls), len(self.scripts) - 1)]
        self.calls.append(request)
        self.models.append(model)
        try:
            for step in script:
                if isinstance(step, BaseException):
                    raise step
                if isinstance(step, float):
                    await asyncio.sleep(step)
                    continue
                yield step
        finally:
            self.closed += 1

    async def aclose(self) -> None:
        pass


class Engine:
    """An engine with its router: `stream` routes a call once, then streams it."""

    def __init__(self, router: Router, engine: Orchestrator) -> None:
        self.router = router
        self.engine = engine

    def route(self, call: ChatCall, **kwargs: Any) -> RoutedCall[ChatRequest]:
        return self.router.route(call, **kwargs)

    def stream(
        self, call: ChatCall, *, admit: tuple[Gate, ...] = (), **kwargs: Any
    ) -> AsyncGenerator[CallEvent, None]:
        routed = self.router.route(call, **kwargs)
        return self.engine.stream(replace(routed, admit=admit) if admit else routed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


def engine(
    *providers: Scripted,
    routes: dict[str, RouteConfig] | None = None,
    **kwargs: object,
) -> Engine:
    """An engine over scripted providers, with its router; kwargs go to `Orchestrator`."""
    configs = {
        p.name: ProviderConfig(p.name, "openai-compatible", base_url="http://x") for p in providers
    }
    return Engine(
        Router(configs, {}, routes or {}),
        Orchestrator({p.name: p for p in providers}, **kwargs),  # type: ignore[arg-type]
    )
