"""The gRPC face of the prompt templates: `llmesh.v1.TemplateService`, served by the
orchestrator beside its own service, over the `TemplateStore` of the ledger's database.

Reading templates is open to every authenticated caller (templates are shared by the mesh);
statistics follow `GetUsage`'s rule (a caller holding a key sees only its own tenant's
calls). Writing (a new version, weights) changes what every tenant's calls render, so a
caller holding a key may write only when its tenant is one of ``auth.admin_tenants``;
without authentication (no keys, loopback) anyone may, as with every other RPC.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from google.protobuf import timestamp_pb2

from llmesh.services.auth import Authenticator
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.rpc_guard import Rpc, RpcGuard, unary
from llmesh.services.core.caller import Caller
from llmesh.services.orchestrator.tenancy import visible_tenant
from llmesh.services.templates import StatsQuery, TemplateStore, check, not_found, parse_ref
from llmesh.services.templates.convert import (
    stats_to_proto,
    version_from_proto,
    version_to_proto,
    weights_from_proto,
    weights_to_proto,
)
from llmesh.v1 import templates_pb2, templates_pb2_grpc

__all__ = ["TemplateServicer"]

log = logging.getLogger("llmesh.orchestrator")


def _seconds(t: timestamp_pb2.Timestamp) -> float:
    return float(t.ToNanoseconds()) / 1e9


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromNanoseconds(int(seconds * 1e9))
    return out


# The generated base class is untyped (generated code is excluded from type checking).
class TemplateServicer(templates_pb2_grpc.TemplateServiceServicer):  # type: ignore[misc]
    """Implements `llmesh.v1.TemplateService` over a `TemplateStore`."""

    def __init__(
        self,
        store: TemplateStore,
        *,
        authenticator: Authenticator,
        admin_tenants: Collection[str] = (),
    ) -> None:
        """`admin_tenants`: the tenants whose keys may create versions and set weights."""
        self._store = store
        self._admins = frozenset(admin_tenants)
        self.guard = RpcGuard(authenticator, log=log)
        """Authenticates and answers every call (see `llmesh.services.common.rpc_guard`)."""

    def _may_write(self, caller: Caller) -> None:
        if caller.key_id and caller.tenant not in self._admins:
            raise LlmeshError(
                Reason.PERMISSION_DENIED,
                f"tenant {caller.tenant!r} may not change templates: only the tenants of "
                "auth.admin_tenants may",
                metadata={"tenant": caller.tenant},
            )

    @unary()
    async def CreateTemplate(
        self, request: templates_pb2.CreateTemplateRequest, rpc: Rpc
    ) -> templates_pb2.CreateTemplateResponse:
        """Validate the version (shape, texts, variables) and store it as the next one."""
        self._may_write(rpc.caller)
        version = version_from_proto(request.template)
        check(version)
        stored = await self._store.create(version)
        return templates_pb2.CreateTemplateResponse(template=version_to_proto(stored))

    @unary()
    async def GetTemplate(
        self, request: templates_pb2.GetTemplateRequest, rpc: Rpc
    ) -> templates_pb2.GetTemplateResponse:
        """One version (the latest unless named), the template's versions and weights."""
        ref = parse_ref(request.name, "name")
        number = request.version or ref.version
        version = await self._store.get(ref.name, number)
        versions = await self._store.versions(ref.name)
        if version is None:
            raise not_found(ref.name, number if versions else None)
        return templates_pb2.GetTemplateResponse(
            template=version_to_proto(version),
            versions=versions,
            weights=weights_to_proto(await self._store.weights(ref.name)),
        )

    @unary()
    async def ListTemplates(
        self, request: templates_pb2.ListTemplatesRequest, rpc: Rpc
    ) -> templates_pb2.ListTemplatesResponse:
        """Every template with its latest version and weights."""
        return templates_pb2.ListTemplatesResponse(
            templates=[
                templates_pb2.TemplateSummary(
                    name=t.name,
                    latest_version=t.latest_version,
                    weights=weights_to_proto(t.weights),
                    description=t.description,
                    updated_at=_timestamp(t.updated_at),
                )
                for t in await self._store.summaries()
            ]
        )

    @unary()
    async def SetTemplateWeights(
        self, request: templates_pb2.SetTemplateWeightsRequest, rpc: Rpc
    ) -> templates_pb2.SetTemplateWeightsResponse:
        """Replace the template's A/B weights."""
        self._may_write(rpc.caller)
        name = parse_ref(request.name, "name").name
        stored = await self._store.set_weights(name, weights_from_proto(request.weights))
        return templates_pb2.SetTemplateWeightsResponse(weights=weights_to_proto(stored))

    @unary()
    async def GetTemplateStats(
        self, request: templates_pb2.GetTemplateStatsRequest, rpc: Rpc
    ) -> templates_pb2.GetTemplateStatsResponse:
        """Per-version statistics from the ledger (a key's caller: its own tenant's)."""
        name = parse_ref(request.name, "name").name
        if not await self._store.versions(name):
            raise not_found(name)
        query = StatsQuery(
            name,
            _seconds(request.since) if request.HasField("since") else None,
            _seconds(request.until) if request.HasField("until") else None,
            visible_tenant(rpc.caller, request.tenant),
        )
        rows = await self._store.stats(query)
        return templates_pb2.GetTemplateStatsResponse(
            name=name, versions=[stats_to_proto(r) for r in rows]
        )
