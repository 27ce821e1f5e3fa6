"""The gRPC face of the orchestrator: proto -> domain -> call path or store -> proto.

Authentication, in-flight tracking, deadlines, trailers and error answers are the
`llmesh.services.common.rpc_guard` decorators' work; each method only maps and calls.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import AsyncGenerator, Collection, Mapping
from contextlib import aclosing, suppress
from dataclasses import replace
from typing import Any, TypeVar

from llmesh.services.auth import Authenticator
from llmesh.services.common.call_metadata import requested_priority, retry_count
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.media_settings import PartLimits
from llmesh.services.common.policy_settings import BudgetsConfig
from llmesh.services.common.request_decoding import checks_decoding
from llmesh.services.common.rpc_guard import Rpc, RpcGuard, unary, unary_stream
from llmesh.services.core.call import Call, ChatCall
from llmesh.services.core.events import CallEvent, Completed
from llmesh.services.core.priority import Priority
from llmesh.services.ledger import LedgerStore
from llmesh.services.orchestrator.aggregate import collect
from llmesh.services.orchestrator.budget_view import (
    budget_views,
    budgets_to_proto,
    period_starts,
)
from llmesh.services.orchestrator.calls_convert import (
    HEALTH_WINDOW,
    apply_health,
    call_to_proto,
    recent_limit,
    target_health,
    watch_interval,
)
from llmesh.services.orchestrator.convert import (
    chat_call_from_proto,
    chat_call_from_request,
    check_size,
)
from llmesh.services.orchestrator.council import BranchItem, stream_council
from llmesh.services.orchestrator.council_convert import council_from_proto, council_item_to_proto
from llmesh.services.orchestrator.counting import count_input_tokens
from llmesh.services.orchestrator.deadline import Deadline
from llmesh.services.orchestrator.embeddings_convert import (
    collect_embeddings,
    embed_call_from_proto,
    embed_reply_to_proto,
)
from llmesh.services.orchestrator.engine import Orchestrator
from llmesh.services.orchestrator.listing_convert import (
    models_to_proto,
    targets_to_proto,
    usage_query_from_proto,
    usage_totals_to_proto,
)
from llmesh.services.orchestrator.path import CallPath
from llmesh.services.orchestrator.replies_convert import (
    chat_reply_to_proto,
    event_to_proto,
    trail_to_metadata,
)
from llmesh.services.orchestrator.tenancy import acting_caller, call_priority, viewed_tenant
from llmesh.services.telemetry.tracing import call_trace_id
from llmesh.v1 import embeddings_pb2, orchestrator_pb2, orchestrator_pb2_grpc

C = TypeVar("C", bound=Call[Any])

log = logging.getLogger("llmesh.orchestrator")


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):  # type: ignore[misc]
    """Implements `llmesh.v1.OrchestratorService` over a `CallPath`."""

    def __init__(
        self,
        path: CallPath,
        engine: Orchestrator,
        *,
        authenticator: Authenticator,
        max_request_bytes: int,
        part_limits: PartLimits | None = None,
        usage_store: LedgerStore | None = None,
        tenant_priority: Mapping[str, Priority] | None = None,
        admin_tenants: Collection[str] = (),
        budgets: BudgetsConfig | None = None,
    ) -> None:
        """`tenant_priority` gives each tenant's default tier
        (``resilience.queue.tenant_priority``); keys of `admin_tenants` read every tenant's
        usage and calls (``auth.admin_tenants``); `budgets` are the caps `GetBudgets` reports."""
        self._tenant_priority = dict(tenant_priority or {})
        self._admin_tenants = frozenset(admin_tenants)
        self._budgets = budgets or BudgetsConfig()
        self._watches_end = asyncio.Event()
        self._path = path
        self._engine = engine
        self._usage = usage_store
        self._max_request_bytes = max_request_bytes
        self._part_limits = part_limits or PartLimits()
        self.guard = RpcGuard(
            authenticator, log=log, trailers=trail_to_metadata, deadline=Deadline.of
        )
        """Its calls in flight (`drain` them at shutdown)."""

    def _chat_call(
        self, request: orchestrator_pb2.StreamChatRequest | orchestrator_pb2.ChatRequest, rpc: Rpc
    ) -> ChatCall:
        call = chat_call_from_request(
            request, max_request_bytes=self._max_request_bytes, limits=self._part_limits
        )
        return self._acting(call, rpc)

    def _acting(self, call: C, rpc: Rpc) -> C:
        """`call` as its caller makes it: tenant, tier, retry number and trace from the metadata."""
        caller = acting_caller(rpc.caller, call.metadata.get("tenant"))
        metadata = rpc.metadata
        priority = call_priority(caller, requested_priority(metadata), self._tenant_priority)
        retry = retry_count(metadata)
        trace_id = call_trace_id(metadata)
        if (
            caller == call.caller
            and retry == call.client_retry
            and priority is call.priority
            and trace_id == call.trace_id
        ):
            return call  # nothing to change: no copy of the call
        return call.acting(caller, retry, priority, trace_id)

    @checks_decoding
    @unary_stream(event_to_proto, terminal=Completed, traced=True)
    def StreamChat(
        self, request: orchestrator_pb2.StreamChatRequest, rpc: Rpc
    ) -> AsyncGenerator[CallEvent, None]:
        """Stream events; an error ends the stream with an AIP-193 status."""
        return self._path.stream(
            self._chat_call(request, rpc),
            request_id=rpc.request_id,
            trail=rpc.trail,
            timeout=rpc.remaining(),
        )

    @checks_decoding
    @unary(traced=True)
    async def Chat(
        self, request: orchestrator_pb2.ChatRequest, rpc: Rpc
    ) -> orchestrator_pb2.ChatResponse:
        """Aggregate the same stream into one reply."""
        events = self._path.stream(
            self._chat_call(request, rpc),
            request_id=rpc.request_id,
            trail=rpc.trail,
            timeout=rpc.remaining(),
        )
        async with aclosing(events):  # settles the call before we answer
            reply = await collect(events)
            rpc.settled()  # the reply is whole: closing settles, not cuts
        return chat_reply_to_proto(reply)

    @checks_decoding
    @unary(traced=True)
    async def Embed(
        self, request: embeddings_pb2.EmbedRequest, rpc: Rpc
    ) -> embeddings_pb2.EmbedResponse:
        """One vector per input, through the same call path as chat."""
        call = self._acting(
            embed_call_from_proto(request, max_request_bytes=self._max_request_bytes), rpc
        )
        events = self._path.stream(
            call, request_id=rpc.request_id, trail=rpc.trail, timeout=rpc.remaining()
        )
        async with aclosing(events):  # settles the call before we answer
            reply = await collect_embeddings(events)
            rpc.settled()
        return embed_reply_to_proto(reply, call.request.encoding)

    @checks_decoding
    @unary()
    async def CountInputTokens(
        self, request: orchestrator_pb2.CountInputTokensRequest, rpc: Rpc
    ) -> orchestrator_pb2.CountInputTokensResponse:
        """The input count of the call's first target that counts exactly (none: empty)."""
        check_size(request, self._max_request_bytes)
        call = chat_call_from_proto(
            request.input, request.HasField("input"), limits=self._part_limits
        )
        counted = await count_input_tokens(
            self._path, self._engine.provider, call, timeout=rpc.remaining()
        )
        if counted is None:
            return orchestrator_pb2.CountInputTokensResponse()
        tokens, target = counted
        return orchestrator_pb2.CountInputTokensResponse(
            input_tokens=tokens, provider=target.provider, model=target.model
        )

    @unary()
    async def ListModels(
        self, request: orchestrator_pb2.ListModelsRequest, rpc: Rpc
    ) -> orchestrator_pb2.ListModelsResponse:
        """Every listed model and alias."""
        return models_to_proto(self._path.router.entries())

    @checks_decoding
    @unary_stream(council_item_to_proto)
    def StreamCouncil(
        self, request: orchestrator_pb2.StreamCouncilRequest, rpc: Rpc
    ) -> AsyncGenerator[BranchItem, None]:
        """Stream every branch's events; a validation or fail-fast error ends with a status."""
        council = council_from_proto(
            request, max_request_bytes=self._max_request_bytes, limits=self._part_limits
        )
        shared = council.call
        caller = acting_caller(rpc.caller, shared.metadata.get("tenant"))
        priority = call_priority(caller, requested_priority(rpc.metadata), self._tenant_priority)
        acting = replace(
            shared, caller=caller, priority=priority, trace_id=call_trace_id(rpc.metadata)
        )
        council = replace(council, call=acting)
        return stream_council(self._path, council, timeout=rpc.remaining())

    @unary()
    async def ListTargets(
        self, request: orchestrator_pb2.ListTargetsRequest, rpc: Rpc
    ) -> orchestrator_pb2.ListTargetsResponse:
        """Breaker, in-flight and queue state of every configured or used target."""
        views = await self._engine.breakers.views()
        return targets_to_proto(views, self._path.router.entries(), self._engine.limiter)

    @unary()
    async def GetUsage(
        self, request: orchestrator_pb2.GetUsageRequest, rpc: Rpc
    ) -> orchestrator_pb2.GetUsageResponse:
        """Ledger totals; a caller holding a key sees only its own tenant."""
        if self._usage is None:
            raise LlmeshError(Reason.PROVIDER_NOT_CONFIGURED, "no usage ledger is configured")
        query = usage_query_from_proto(request)
        rows = await self._usage.totals(
            query.groups,
            query.since,
            query.until,
            viewed_tenant(rpc.caller, query.tenant, self._admin_tenants),
        )
        return usage_totals_to_proto(rows)

    @unary()
    async def ListRecentCalls(
        self, request: orchestrator_pb2.ListRecentCallsRequest, rpc: Rpc
    ) -> orchestrator_pb2.ListRecentCallsResponse:
        """The ledger's latest calls (or one, by id) the caller may see, newest first."""
        if self._usage is None:
            raise LlmeshError(Reason.PROVIDER_NOT_CONFIGURED, "no usage ledger is configured")
        tenant = viewed_tenant(rpc.caller, request.tenant, self._admin_tenants)
        if request.request_id:  # another tenant's call is as absent as an unknown one
            record = await self._usage.get(request.request_id)
            found = record is not None and (tenant is None or record.tenant == tenant)
            calls = [call_to_proto(record)] if record is not None and found else []
            return orchestrator_pb2.ListRecentCallsResponse(calls=calls)
        records = await self._usage.recent(recent_limit(request.limit), tenant)
        return orchestrator_pb2.ListRecentCallsResponse(calls=[call_to_proto(r) for r in records])

    @unary_stream(lambda snapshot: snapshot)
    def WatchMesh(
        self, request: orchestrator_pb2.WatchMeshRequest, rpc: Rpc
    ) -> AsyncGenerator[orchestrator_pb2.WatchMeshResponse, None]:
        """A snapshot now and at every interval, until the caller cancels or the server
        stops (then the stream ends cleanly)."""
        interval = watch_interval(
            request.interval.ToTimedelta().total_seconds() if request.HasField("interval") else None
        )
        tenant = viewed_tenant(rpc.caller, request.tenant, self._admin_tenants)
        calls = recent_limit(request.recent_calls, default=20, most=100)
        return self._watch(interval, tenant, calls)

    async def _watch(
        self, interval: float, tenant: str | None, calls: int
    ) -> AsyncGenerator[orchestrator_pb2.WatchMeshResponse, None]:
        while not self._watches_end.is_set():
            yield await self._snapshot(tenant, calls)
            with suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._watches_end.wait()

    async def _snapshot(self, tenant: str | None, calls: int) -> orchestrator_pb2.WatchMeshResponse:
        views = await self._engine.breakers.views()
        targets = targets_to_proto(views, self._path.router.entries(), self._engine.limiter)
        snapshot = orchestrator_pb2.WatchMeshResponse(targets=targets.targets)
        snapshot.snapshot_time.FromDatetime(datetime.datetime.now(datetime.UTC))
        if self._usage is not None:
            window = await self._usage.recent(HEALTH_WINDOW)
            apply_health(snapshot.targets, target_health(window))
            if tenant is None:
                latest = window[:calls]
            else:
                latest = await self._usage.recent(calls, tenant)
            snapshot.recent_calls.extend(call_to_proto(r) for r in latest)
        return snapshot

    @unary()
    async def GetBudgets(
        self, request: orchestrator_pb2.GetBudgetsRequest, rpc: Rpc
    ) -> orchestrator_pb2.GetBudgetsResponse:
        """The caps the caller may see, with the ledger's spend today and this month."""
        if self._usage is None:
            raise LlmeshError(Reason.PROVIDER_NOT_CONFIGURED, "no usage ledger is configured")
        tenant = viewed_tenant(rpc.caller, request.tenant, self._admin_tenants)
        day, month = period_starts(time.time())
        today = await self._usage.totals(["tenant", "key"], day, None, tenant)
        this_month = await self._usage.totals(["tenant", "key"], month, None, tenant)
        caller = rpc.caller
        views = budget_views(self._budgets, today, this_month, tenant, caller.key_id, caller.tenant)
        return budgets_to_proto(views)

    def end_watches(self) -> None:
        """End every `WatchMesh` stream after its current snapshot (at shutdown, so the
        drain does not wait for streams that would never end by themselves)."""
        self._watches_end.set()
