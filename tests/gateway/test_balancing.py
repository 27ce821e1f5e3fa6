"""The gateway's channel to the orchestrator replicas: round robin over a static list or
DNS, each replica health-checked, and a replica gone taken out of the rotation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1.health_pb2 import HealthCheckResponse

from llmesh.gateway.balancing import ORCHESTRATOR_SERVICE, channel_target, service_config
from llmesh.gateway.settings import GatewaySettings
from llmesh.gateway.upstream import Upstream
from llmesh.services.common.config import load_config
from llmesh.services.common.grpc_server import RunningServer, ServiceBinding, start_server
from llmesh.v1 import orchestrator_pb2, orchestrator_pb2_grpc, processor_pb2, processor_pb2_grpc


@pytest.mark.parametrize(
    ("address", "target"),
    [
        ("127.0.0.1:50051", "127.0.0.1:50051"),
        ("orchestrator:50051", "orchestrator:50051"),
        ("dns:///orchestrator.llmesh.svc:50051", "dns:///orchestrator.llmesh.svc:50051"),
        ("10.0.0.1:50051, 10.0.0.2:50051", "ipv4:10.0.0.1:50051,10.0.0.2:50051"),
        ("[::1]:1,[fd00::2]:2", "ipv6:[::1]:1,[fd00::2]:2"),
        ("ipv4:10.0.0.1:1,10.0.0.2:2", "ipv4:10.0.0.1:1,10.0.0.2:2"),
    ],
)
def test_channel_targets(address: str, target: str) -> None:
    assert channel_target(address) == target


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("orch-a:50051,orch-b:50051", "'orch-a:50051' is not an IP host:port"),
        ("10.0.0.1,10.0.0.2:1", "'10.0.0.1' is not an IP host:port"),
        ("10.0.0.1:1,[::1]:2", "mixes IPv4 and IPv6"),
    ],
)
def test_a_bad_replica_list_is_refused_naming_the_entry(address: str, problem: str) -> None:
    with pytest.raises(ValueError, match="orchestrator address list") as refused:
        GatewaySettings(orchestrator_address=address)
    assert problem in str(refused.value)


def test_the_service_config_balances_and_health_checks_the_orchestrator() -> None:
    config = json.loads(service_config())
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert config["healthCheckConfig"] == {"serviceName": ORCHESTRATOR_SERVICE}


def test_gateway_orchestrators_in_the_configuration(tmp_path: Path) -> None:
    path = tmp_path / "llmesh.yaml"
    path.write_text("gateway: {orchestrators: [10.0.0.1:50051, 10.0.0.2:50051]}\n")
    settings = GatewaySettings.from_config(load_config(str(path), env={}))
    assert settings.orchestrator_address == "10.0.0.1:50051,10.0.0.2:50051"
    assert GatewaySettings.from_config(load_config(None, env={})).orchestrator_address == (
        "127.0.0.1:50051"
    )


class Named(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    """An orchestrator that answers ListModels with its own name."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def ListModels(
        self, request: orchestrator_pb2.ListModelsRequest, context: object
    ) -> orchestrator_pb2.ListModelsResponse:
        return orchestrator_pb2.ListModelsResponse(
            models=[orchestrator_pb2.ModelInfo(name=self.name)]
        )


@pytest.fixture
async def replicas() -> AsyncIterator[dict[str, RunningServer]]:
    started: dict[str, RunningServer] = {}
    for name in ("a", "b"):
        binding = ServiceBinding(
            orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server,
            Named(name),
            ORCHESTRATOR_SERVICE,
        )
        started[name] = await start_server([binding], "127.0.0.1:0")
    yield started
    for server in started.values():
        await server.server.stop(None)


async def _served_by(upstream: Upstream, n: int) -> list[str]:
    names = []
    for _ in range(n):
        reply = await upstream.orchestrator.ListModels(
            orchestrator_pb2.ListModelsRequest(), timeout=5, wait_for_ready=True
        )
        names.append(reply.models[0].name)
    return names


async def test_calls_go_round_robin_and_skip_a_not_serving_or_gone_replica(
    replicas: dict[str, RunningServer],
) -> None:
    address = ",".join(f"127.0.0.1:{s.port}" for s in replicas.values())
    upstream = Upstream.open(GatewaySettings(orchestrator_address=address))
    try:
        assert upstream.orchestrator_channels is not None
        for channel in upstream.orchestrator_channels.channels:
            await channel.channel_ready()
        assert set(await _served_by(upstream, 10)) == {"a", "b"}
        await replicas["a"].health.set(ORCHESTRATOR_SERVICE, HealthCheckResponse.NOT_SERVING)
        await _served_by(upstream, 2)  # the watch may still be on its way
        assert set(await _served_by(upstream, 10)) == {"b"}  # a drains: no new calls
        await replicas["a"].health.set(ORCHESTRATOR_SERVICE, HealthCheckResponse.SERVING)
        names: set[str] = set()
        while names != {"a", "b"}:  # back in the rotation once it serves again
            names |= set(await _served_by(upstream, 2))
        await replicas["a"].server.stop(None)
        assert set(await _served_by(upstream, 10)) == {"b"}  # a gone: b takes every call
    finally:
        await upstream.close()


async def test_both_replicas_not_serving_fails_calls_as_unavailable(
    replicas: dict[str, RunningServer],
) -> None:
    address = ",".join(f"127.0.0.1:{s.port}" for s in replicas.values())
    for server in replicas.values():
        await server.health.set(ORCHESTRATOR_SERVICE, HealthCheckResponse.NOT_SERVING)
    upstream = Upstream.open(GatewaySettings(orchestrator_address=address))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await upstream.orchestrator.ListModels(orchestrator_pb2.ListModelsRequest(), timeout=2)
        assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        await upstream.close()


async def test_a_connection_older_than_max_connection_age_is_asked_to_reconnect() -> None:
    """The server's GOAWAY after `max_connection_age` makes a DNS-balanced client resolve its
    name again; the channel leaves READY (a connection that never ages stays READY)."""
    aging = await start_server([], "127.0.0.1:0", max_connection_age=0.3)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{aging.port}") as channel:
            await channel.channel_ready()
            await asyncio.wait_for(
                channel.wait_for_state_change(grpc.ChannelConnectivity.READY), timeout=10
            )
    finally:
        await aging.server.stop(None)


def test_max_connection_age_in_the_configuration(tmp_path: Path) -> None:
    assert load_config(None, env={}).max_connection_age == 300.0
    path = tmp_path / "llmesh.yaml"
    path.write_text("orchestrator: {max_connection_age: 0}\n")
    assert load_config(str(path), env={}).max_connection_age == 0.0
    path.write_text("orchestrator: {max_connection_age: -1}\n")
    with pytest.raises(ValueError, match=r"orchestrator\.max_connection_age"):
        load_config(str(path), env={})


class Counting(processor_pb2_grpc.ProcessorServiceServicer):
    """A processor that answers CountTokens with its own number."""

    def __init__(self, number: int) -> None:
        self.number = number

    async def CountTokens(
        self, request: processor_pb2.CountTokensRequest, context: object
    ) -> processor_pb2.CountTokensResponse:
        return processor_pb2.CountTokensResponse(tokens=self.number)


async def test_processor_replicas_share_the_calls_round_robin() -> None:
    servers = []
    for number in (1, 2):
        binding = ServiceBinding(
            processor_pb2_grpc.add_ProcessorServiceServicer_to_server,
            Counting(number),
            "llmesh.v1.ProcessorService",
        )
        servers.append(await start_server([binding], "127.0.0.1:0"))
    address = ",".join(f"127.0.0.1:{s.port}" for s in servers)
    upstream = Upstream.open(GatewaySettings(processor_address=address))
    try:
        seen = set()
        for _ in range(6):
            reply = await upstream.processor.CountTokens(
                processor_pb2.CountTokensRequest(), timeout=5, wait_for_ready=True
            )
            seen.add(reply.tokens)
        assert seen == {1, 2}
    finally:
        await upstream.close()
        for server in servers:
            await server.server.stop(None)
