"""Provider-native batches: items sent to OpenAI's Batch API or Anthropic's Message Batches.

`native_batches_for` gives a provider's `NativeBatches` by its kind, or None for a kind
without a batch API (the items then run one by one through the mesh).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from llmesh.services.batch.native_seam import (
    NativeBatches,
    NativeFactory,
    NativeItem,
    NativeResult,
    NativeState,
    NativeStatus,
)
from llmesh.services.common.provider_settings import ResolvedProvider
from llmesh.services.orchestrator.batch_native.anthropic import AnthropicBatches
from llmesh.services.orchestrator.batch_native.openai import OpenAIBatches

__all__ = [
    "AnthropicBatches",
    "NativeBatches",
    "NativeFactory",
    "NativeItem",
    "NativeResult",
    "NativeState",
    "NativeStatus",
    "OpenAIBatches",
    "native_batches_for",
]

_BY_KIND: Mapping[str, Callable[[ResolvedProvider], NativeBatches]] = {
    "openai": OpenAIBatches,
    "anthropic": AnthropicBatches,
}
"""The provider kinds with a batch API."""


def _native_batches_for(resolved: ResolvedProvider) -> NativeBatches | None:
    factory = _BY_KIND.get(resolved.config.kind)
    return factory(resolved) if factory is not None else None


native_batches_for: NativeFactory = _native_batches_for
"""The batch API of `resolved`'s kind (``openai``, ``anthropic``), or None."""
