"""The ``local`` provider kind on the chat path: it serves embeddings only.

Its models run in-process (`embeddings_local`); a chat call routed to one is refused with
PROVIDER_NOT_CONFIGURED, so a route's next target is tried.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from llmesh.services.common.config import ResolvedProvider
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.events import ProviderEvent
from llmesh.services.transport import Transport

__all__ = ["NoChat", "factory"]


class NoChat:
    """Refuses every chat call: the local models make embeddings."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.options: frozenset[str] = frozenset()

    async def stream(
        self, model: str, request: ChatRequest, *, timeout: float | None
    ) -> AsyncGenerator[ProviderEvent, None]:
        """Always PROVIDER_NOT_CONFIGURED, before any event."""
        raise LlmeshError(
            Reason.PROVIDER_NOT_CONFIGURED,
            f"provider {self.name!r} (local) serves embeddings only, not {model!r} chat",
        )
        yield  # pragma: no cover  (makes this an async generator)

    async def aclose(self) -> None:
        """Nothing to release."""


def factory(resolved: ResolvedProvider, transport: Transport | None = None) -> NoChat:
    """The chat adapter of a ``local`` provider (no connection, no transport)."""
    return NoChat(resolved.config.name)
