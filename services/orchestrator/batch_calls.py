"""Batch items on the orchestrator's call path: the `ItemCalls` the batch executor uses.

An item becomes the same `Call` an interactive Chat or Embed request would (same checks),
acting for the batch's tenant and key at the ``batch`` priority tier, and goes through the
same `CallPath`: rate limits, budgets, breakers, retries, fallbacks and the ledger apply to
it as to any call. Items of provider-native batches get their ledger row here, priced at
the provider's batch rate.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import aclosing
from dataclasses import replace
from typing import Any

from llmesh.services.batch.calls import FirstTarget, ItemReply
from llmesh.services.batch.native_seam import NativeItem, NativeResult
from llmesh.services.common.config import Config, resolve_provider
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.media_settings import PartLimits
from llmesh.services.core.call import Call
from llmesh.services.core.caller import Caller
from llmesh.services.core.ids import new_request_id
from llmesh.services.core.priority import Priority
from llmesh.services.core.usage import CallStatus, Usage
from llmesh.services.ledger import LedgerWriter, PriceTable, UsageRecord
from llmesh.services.orchestrator.aggregate import collect
from llmesh.services.orchestrator.convert import chat_call_from_proto
from llmesh.services.orchestrator.embeddings_convert import (
    collect_embeddings,
    embed_call_from_proto,
    embed_reply_to_proto,
)
from llmesh.services.orchestrator.path import CallPath
from llmesh.services.orchestrator.replies_convert import chat_reply_to_proto
from llmesh.v1 import batches_pb2

__all__ = ["MeshItemCalls"]


class MeshItemCalls:
    """Checks, routes and runs batch items through a `CallPath`."""

    def __init__(
        self,
        path: CallPath,
        config: Config,
        *,
        prices: PriceTable | None = None,
        writer: LedgerWriter | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._path = path
        self._config = config
        self._limits: PartLimits = config.part_limits
        self._max_bytes = config.max_message_bytes
        self._prices = prices
        self._writer = writer
        self._env = env

    def _call(self, item: batches_pb2.BatchItem) -> Call[Any]:
        if item.WhichOneof("input") == "embed":
            return embed_call_from_proto(item.embed, max_request_bytes=self._max_bytes)
        size = item.chat.ByteSize()
        if size > self._max_bytes:
            raise LlmeshError(
                Reason.INVALID_REQUEST, f"the item is {size} bytes; the limit is {self._max_bytes}"
            )
        return chat_call_from_proto(item.chat, True, prefix="chat", limits=self._limits)

    def check(self, item: batches_pb2.BatchItem) -> None:
        """INVALID_REQUEST for a malformed item, MODEL_NOT_FOUND for an unknown model."""
        self._path.route(self._call(item))

    def first_target(self, item: batches_pb2.BatchItem) -> FirstTarget:
        """The provider and model the item's call tries first."""
        routed = self._path.route(self._call(item))
        if not routed.targets:
            raise LlmeshError(Reason.MODEL_NOT_FOUND, "the item's model routes to no target")
        target = routed.targets[0]
        provider = self._config.providers.get(target.provider)
        if provider is None:
            raise LlmeshError(
                Reason.PROVIDER_NOT_CONFIGURED, f"provider {target.provider} is not configured"
            )
        settings = resolve_provider(provider, self._config.emulator, self._env)
        return FirstTarget(target.provider, provider.kind, settings, target.model)

    def native_item(self, item: batches_pb2.BatchItem) -> NativeItem:
        """The item's domain request, for its first target's batch API."""
        call = self._call(item)
        target = self.first_target(item)
        return NativeItem(item.custom_id, call.request, target.model)

    async def run(self, item: batches_pb2.BatchItem, caller: Caller, batch_id: str) -> ItemReply:
        """One item through the call path, at the batch tier, as `caller`; its ledger row
        carries ``batch_id`` and ``custom_id`` in its metadata."""
        call = self._call(item)
        labels = {**call.metadata, "batch_id": batch_id, "custom_id": item.custom_id}
        call = replace(call, caller=caller, priority=Priority.BATCH, metadata=labels)
        events = self._path.stream(call, timeout=self._config.batch.item_timeout)
        async with aclosing(events):
            if item.WhichOneof("input") == "embed":
                embedded = await collect_embeddings(events)
                return ItemReply(
                    embed=embed_reply_to_proto(embedded, call.request.encoding),
                    cost_usd=embedded.cost_usd,
                )
            reply = await collect(events)
        return ItemReply(chat=chat_reply_to_proto(reply), cost_usd=reply.completed.cost_usd)

    async def record_native(
        self, caller: Caller, target: FirstTarget, result: NativeResult, batch_id: str
    ) -> float:
        """The ledger row of one native batch item, at the provider's batch rate."""
        usage = result.usage or Usage()
        cost = (
            self._prices.batch_cost(target.provider, target.model, usage, kind=target.kind)
            if self._prices is not None
            else 0.0
        )
        if self._writer is not None:
            request_id = (
                result.chat.request_id
                if result.chat is not None and result.chat.request_id
                else new_request_id()
            )
            self._writer.record(
                UsageRecord(
                    request_id=request_id,
                    ts=time.time(),
                    tenant=caller.tenant,
                    key_id=caller.key_id,
                    provider=target.provider,
                    model=target.model,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cache_read_tokens=usage.cache_read_tokens,
                    cache_write_tokens=usage.cache_write_tokens,
                    reasoning_tokens=usage.reasoning_tokens,
                    cost_usd=cost,
                    status=CallStatus.OK,
                    usage_estimated=usage.estimated,
                    metadata={"batch_id": batch_id, "custom_id": result.custom_id},
                    priority=Priority.BATCH.label,
                )
            )
        return cost
