"""In-memory providers that play scripts, for engine tests without a network."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from services.common.config import ProviderConfig, RouteConfig
from services.orchestrator.domain import ChatRequest, ProviderEvent
from services.orchestrator.engine import Orchestrator
from services.orchestrator.routing import Router

Step = ProviderEvent | BaseException | float
"""An event to yield, an exception to raise, or seconds to sleep."""


class Scripted:
    """A provider whose n-th call plays the n-th script (the last one repeats)."""

    def __init__(self, name: str, *scripts: Sequence[Step]) -> None:
        self.name = name
        self.scripts = list(scripts)
        self.calls: list[ChatRequest] = []
        self.closed = 0

    async def stream(
        self, request: ChatRequest, *, timeout: float | None
    ) -> AsyncGenerator[ProviderEvent, None]:
        script = self.scripts[min(len(self.calls), len(self.scripts) - 1)]
        self.calls.append(request)
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


def engine(
    *providers: Scripted,
    routes: dict[str, RouteConfig] | None = None,
    **kwargs: object,
) -> Orchestrator:
    """An engine over scripted providers; kwargs go to `Orchestrator`."""
    configs = {
        p.name: ProviderConfig(p.name, "openai-compatible", base_url="http://x") for p in providers
    }
    return Orchestrator(
        Router(configs, {}, routes or {}),
        {p.name: p for p in providers},
        **kwargs,  # type: ignore[arg-type]
    )
