"""The seam between batch jobs and a provider's own batch API.

A `NativeBatches` submits items to the provider's batch API, reports its progress, streams
the results back as llmesh responses and cancels it; `NativeFactory` gives the one for a
provider (None when its kind has no batch API).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from llmesh.services.common.errors import LlmeshError
from llmesh.services.common.provider_settings import ResolvedProvider
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.embeddings import EmbeddingRequest
from llmesh.services.core.usage import Usage
from llmesh.v1 import embeddings_pb2, orchestrator_pb2

__all__ = [
    "NativeBatches",
    "NativeFactory",
    "NativeItem",
    "NativeResult",
    "NativeState",
    "NativeStatus",
]


class NativeState(enum.Enum):
    """Where a provider batch stands."""

    IN_PROGRESS = "in_progress"
    """Not finished: validating, waiting, running, finalizing or being cancelled."""
    COMPLETED = "completed"
    """Every item has a result (some may be errors)."""
    FAILED = "failed"
    """The provider refused the batch as a whole (e.g. an invalid input line)."""
    CANCELLED = "cancelled"
    """Cancelled: the items not run by then have a CANCELLED result."""
    EXPIRED = "expired"
    """The completion window passed: the items not run by then have an expired result."""


@dataclass(frozen=True, slots=True)
class NativeItem:
    """One request of a batch, with the caller's id for it and the provider's model id."""

    custom_id: str
    request: ChatRequest | EmbeddingRequest
    provider_model: str


@dataclass(frozen=True, slots=True)
class NativeStatus:
    """A provider batch's state and its items' counts."""

    state: NativeState
    total: int
    completed: int
    """Items answered successfully."""
    failed: int
    """Items that failed, expired or were cancelled."""


@dataclass(frozen=True, slots=True)
class NativeResult:
    """One item's result: a chat or embeddings response with its usage, or an error."""

    custom_id: str
    chat: orchestrator_pb2.ChatResponse | None
    embed: embeddings_pb2.EmbedResponse | None
    usage: Usage | None
    error: LlmeshError | None


class NativeBatches(Protocol):
    """A provider's batch API."""

    async def submit(self, items: Sequence[NativeItem]) -> str:
        """Submit `items` as one provider batch; returns the provider's batch id."""
        ...

    async def status(self, provider_batch_id: str) -> NativeStatus:
        """The batch's state and counts."""
        ...

    def results(self, provider_batch_id: str) -> AsyncIterator[NativeResult]:
        """The results of an ended batch, streamed (never the whole file in memory)."""
        ...

    async def cancel(self, provider_batch_id: str) -> None:
        """Ask the provider to stop the batch (a no-op once it has ended)."""
        ...


NativeFactory = Callable[[ResolvedProvider], NativeBatches | None]
"""The native batch API of a provider, or None when its kind has none."""
