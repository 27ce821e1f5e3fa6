"""The seam between a batch and a provider's own batch API (OpenAI's, Anthropic's).

A `NativeBatches` submits items to one provider as one native batch, reports its status,
streams its results and cancels it; `NativeFactory` gives the one for a provider (None when
the provider has no batch API). The implementations live apart
(`llmesh.services.orchestrator.batch_native`); the executor only speaks this protocol.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from llmesh.services.common.errors import LlmeshError
from llmesh.services.common.provider_settings import ResolvedProvider
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.embeddings import EmbeddingRequest
from llmesh.services.core.usage import Usage
from llmesh.v1 import embeddings_pb2, orchestrator_pb2

log = logging.getLogger("llmesh.batch")

__all__ = [
    "NativeBatches",
    "NativeClients",
    "NativeFactory",
    "NativeItem",
    "NativeResult",
    "NativeState",
    "NativeStatus",
]


class NativeState(enum.Enum):
    """Where a provider's batch stands."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class NativeItem:
    """One item as submitted: its custom_id, its request, and the provider's model name."""

    custom_id: str
    request: ChatRequest | EmbeddingRequest
    provider_model: str


@dataclass(frozen=True, slots=True)
class NativeStatus:
    """A provider batch's state and its item counts."""

    state: NativeState
    total: int
    completed: int
    failed: int


@dataclass(frozen=True, slots=True)
class NativeResult:
    """One item's outcome: a reply (`chat` or `embed`) with its usage, or an `error`."""

    custom_id: str
    chat: orchestrator_pb2.ChatResponse | None
    embed: embeddings_pb2.EmbedResponse | None
    usage: Usage | None
    error: LlmeshError | None


class NativeBatches(Protocol):
    """One provider's batch API."""

    async def submit(self, items: Sequence[NativeItem], key: str) -> str:
        """Submit the items as one native batch marked with the submission `key` (so that
        `find` can tell it again); the provider's batch id."""
        ...

    async def find(self, key: str, count: int) -> str | None:
        """The id of the provider's batch submitted with `key` (holding `count` items), or
        None when no such batch reached the provider."""
        ...

    async def status(self, provider_batch_id: str) -> NativeStatus:
        """The batch's state and counts."""
        ...

    def results(self, provider_batch_id: str) -> AsyncIterator[NativeResult]:
        """The results of a finished batch, one per item it holds."""
        ...

    async def cancel(self, provider_batch_id: str) -> None:
        """Ask the provider to cancel the batch."""
        ...

    async def aclose(self) -> None:
        """Release the client's connections (the batches go on at the provider)."""
        ...


NativeFactory = Callable[[ResolvedProvider], NativeBatches | None]
"""The batch API of a provider, or None when it has none."""


class NativeClients:
    """A `NativeFactory` that makes each provider's client once (by provider name) and
    shares it, so that the connections are reused and closed once, at `aclose`."""

    def __init__(self, factory: NativeFactory) -> None:
        self._factory = factory
        self._clients: dict[str, NativeBatches | None] = {}

    def __call__(self, resolved: ResolvedProvider) -> NativeBatches | None:
        name = resolved.config.name
        if name not in self._clients:
            self._clients[name] = self._factory(resolved)
        return self._clients[name]

    async def aclose(self) -> None:
        """Close every client made (a client made later is a new one)."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            if client is None:
                continue
            try:
                await client.aclose()
            except Exception:  # one client failing to close must not keep the others open
                log.exception("batch: closing a provider's batch client failed")
