"""`TemplateService` with keys: who may write, what a tenant's key sees of the statistics,
and the errors of bad requests (over a real gRPC server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from llmesh.services.auth import Authenticator
from llmesh.services.auth.store import open_key_store
from llmesh.services.common.grpc_server import ServiceBinding, start_server
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.core.reasons import Reason
from llmesh.services.ledger import SqliteStore, UsageRecord
from llmesh.services.orchestrator.templates_servicer import TemplateServicer
from llmesh.services.templates import open_template_store
from llmesh.v1 import chat_pb2, templates_pb2, templates_pb2_grpc

VERSION = templates_pb2.TemplateVersion(
    name="greet",
    variables=[templates_pb2.TemplateVariable(name="who", required=True)],
    messages=[templates_pb2.TemplateMessage(role=chat_pb2.ROLE_USER, content="Hi {{ who }}")],
)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, str], Path]]:
    """The service's address, keys by tenant (``ops`` is an admin tenant), the database."""
    url = f"sqlite:///{tmp_path}/llmesh.db"
    keys = await open_key_store(url)
    secrets = {tenant: (await keys.create(tenant))[1] for tenant in ("ops", "acme")}
    store = open_template_store(url)
    auth = Authenticator(keys, required=True, on_when_keys_exist=True)
    servicer = TemplateServicer(store, authenticator=auth, admin_tenants=["ops"])
    binding = ServiceBinding(
        templates_pb2_grpc.add_TemplateServiceServicer_to_server,
        servicer,
        "llmesh.v1.TemplateService",
    )
    running = await start_server([binding], "127.0.0.1:0")
    yield f"127.0.0.1:{running.port}", secrets, tmp_path / "llmesh.db"
    await running.server.stop(None)
    await store.aclose()
    await keys.aclose()


def _as(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


async def _refused(call: object, code: grpc.StatusCode) -> Reason:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() is code
    return from_rpc_error(caught.value).reason


async def test_only_admin_tenants_write_and_every_key_reads(
    served: tuple[str, dict[str, str], Path],
) -> None:
    address, keys, _ = served
    create = templates_pb2.CreateTemplateRequest(template=VERSION)
    async with grpc.aio.insecure_channel(address) as ch:
        stub = templates_pb2_grpc.TemplateServiceStub(ch)
        assert await _refused(stub.CreateTemplate(create), grpc.StatusCode.UNAUTHENTICATED)
        denied = stub.CreateTemplate(create, metadata=_as(keys["acme"]))
        assert await _refused(denied, grpc.StatusCode.PERMISSION_DENIED) is (
            Reason.PERMISSION_DENIED
        )
        made = await stub.CreateTemplate(create, metadata=_as(keys["ops"]))
        assert (made.template.version, made.template.HasField("created_at")) == (1, True)
        weights = templates_pb2.SetTemplateWeightsRequest(
            name="greet", weights=[templates_pb2.TemplateWeight(version=1, weight=2)]
        )
        denied = stub.SetTemplateWeights(weights, metadata=_as(keys["acme"]))
        assert await _refused(denied, grpc.StatusCode.PERMISSION_DENIED)
        await stub.SetTemplateWeights(weights, metadata=_as(keys["ops"]))
        got = await stub.GetTemplate(
            templates_pb2.GetTemplateRequest(name="greet@1"), metadata=_as(keys["acme"])
        )
        assert got.template.messages[0].content == "Hi {{ who }}"
        assert [(w.version, w.weight) for w in got.weights] == [(1, 2.0)]
        listed = await stub.ListTemplates(
            templates_pb2.ListTemplatesRequest(), metadata=_as(keys["acme"])
        )
        assert [(t.name, t.latest_version) for t in listed.templates] == [("greet", 1)]


async def test_bad_requests_are_named(served: tuple[str, dict[str, str], Path]) -> None:
    address, keys, _ = served
    ops = _as(keys["ops"])
    async with grpc.aio.insecure_channel(address) as ch:
        stub = templates_pb2_grpc.TemplateServiceStub(ch)
        undeclared = templates_pb2.TemplateVersion()
        undeclared.CopyFrom(VERSION)
        undeclared.messages[0].content = "Hi {{ whom }}"
        call = stub.CreateTemplate(
            templates_pb2.CreateTemplateRequest(template=undeclared), metadata=ops
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        err = from_rpc_error(caught.value)
        assert [v.field for v in err.violations] == ["messages[0].content"]
        missing = stub.GetTemplate(templates_pb2.GetTemplateRequest(name="nope"), metadata=ops)
        assert await _refused(missing, grpc.StatusCode.NOT_FOUND) is Reason.TEMPLATE_NOT_FOUND
        stats = stub.GetTemplateStats(
            templates_pb2.GetTemplateStatsRequest(name="nope"), metadata=ops
        )
        assert await _refused(stats, grpc.StatusCode.NOT_FOUND) is Reason.TEMPLATE_NOT_FOUND
        bad_name = stub.GetTemplate(templates_pb2.GetTemplateRequest(name="A B"), metadata=ops)
        assert await _refused(bad_name, grpc.StatusCode.INVALID_ARGUMENT)


async def test_a_tenants_key_sees_its_own_calls_only(
    served: tuple[str, dict[str, str], Path],
) -> None:
    address, keys, db = served
    ledger = SqliteStore(db)
    try:
        await ledger.write(
            [
                UsageRecord(f"r{i}", tenant=tenant, template="greet", template_version=1)
                for i, tenant in enumerate(["acme", "other", "other"])
            ]
        )
    finally:
        await ledger.aclose()
    async with grpc.aio.insecure_channel(address) as ch:
        stub = templates_pb2_grpc.TemplateServiceStub(ch)
        await stub.CreateTemplate(
            templates_pb2.CreateTemplateRequest(template=VERSION), metadata=_as(keys["ops"])
        )
        asked = templates_pb2.GetTemplateStatsRequest(name="greet", tenant="other")
        mine = await stub.GetTemplateStats(asked, metadata=_as(keys["acme"]))
        theirs = await stub.GetTemplateStats(asked, metadata=_as(keys["ops"]))
    assert [(v.version, v.calls) for v in mine.versions] == [(1, 1)]
    assert theirs.versions == []  # ops' own tenant has no calls: a key is held to its tenant
