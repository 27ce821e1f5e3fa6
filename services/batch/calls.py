"""What the batch executor needs from the call path, as a protocol the orchestrator fills.

The executor lives below the orchestrator (it imports nothing of it); the orchestrator
hands it an `ItemCalls` that checks an item, runs it through the very call path
interactive calls take (at the ``batch`` tier, as the batch's tenant and key), and says
which provider an item's first target is, for provider-native batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from llmesh.services.batch.native_seam import NativeItem, NativeResult
from llmesh.services.common.provider_settings import ResolvedProvider
from llmesh.services.core.caller import Caller
from llmesh.v1 import batches_pb2, embeddings_pb2, orchestrator_pb2

__all__ = ["FirstTarget", "ItemCalls", "ItemReply"]


@dataclass(frozen=True, slots=True)
class ItemReply:
    """One item's reply: exactly one of `chat` and `embed`, and what it cost."""

    chat: orchestrator_pb2.ChatResponse | None = None
    embed: embeddings_pb2.EmbedResponse | None = None
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class FirstTarget:
    """Where an item would go first: its provider (name and resolved settings) and model."""

    provider: str
    kind: str
    """The provider's kind (``openai``, ``anthropic``, ...)."""
    settings: ResolvedProvider
    model: str


class ItemCalls(Protocol):
    """Runs batch items through the mesh."""

    def check(self, item: batches_pb2.BatchItem) -> None:
        """Raise INVALID_REQUEST (naming the field) for an item that could never run, or
        MODEL_NOT_FOUND for a model nothing serves."""
        ...

    def first_target(self, item: batches_pb2.BatchItem) -> FirstTarget:
        """The first target the item's model routes to."""
        ...

    def native_item(self, item: batches_pb2.BatchItem) -> NativeItem:
        """The item as a provider's batch API takes it (the domain request, with the
        provider's own model name)."""
        ...

    async def record_native(
        self, caller: Caller, target: FirstTarget, result: NativeResult, batch_id: str
    ) -> float:
        """Write the ledger row of one native batch item, priced at batch rates; its cost."""
        ...

    async def run(self, item: batches_pb2.BatchItem, caller: Caller, batch_id: str) -> ItemReply:
        """Run one item of batch `batch_id` through the call path as `caller`, at the
        ``batch`` tier (its ledger row labelled with the batch id and the custom_id); raises
        `LlmeshError` when the call fails after the path's own retries and fallbacks."""
        ...
