"""The orchestrator's readiness: its service's gRPC health follows its dependencies."""

from __future__ import annotations

from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llmesh.services.common.config import Config
from llmesh.services.common.policy_settings import PolicyConfig
from llmesh.services.orchestrator.observability import readiness_checks
from llmesh.services.orchestrator.server import SERVICE_NAME, serve

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _status(address: str, service: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(reply.status)


async def test_an_unreachable_redis_makes_the_service_not_serving_but_leaves_it_live(
    tmp_path: Path,
) -> None:
    limits = {
        "rate_limits": {
            "redis_url": "redis://127.0.0.1:1/0",  # nothing listens on port 1
            "tenants": {"acme": {"requests_per_minute": 10}},
        }
    }
    config = Config(
        database_url=f"sqlite:///{tmp_path}/ledger.db", policy=PolicyConfig.from_mapping(limits)
    )
    server = await serve(config, address="127.0.0.1:0", env={})
    address = f"127.0.0.1:{server.port}"
    try:
        async with grpc.aio.insecure_channel(address) as channel:  # the first check runs now
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=20
            )
            async for reply in watch:
                if reply.status == NOT_SERVING:
                    break
        assert await _status(address, "") == SERVING  # live: the process serves
        readiness = server.telemetry.readiness
        assert readiness is not None and set(readiness.problems) == {"redis (rate_limits)"}
    finally:
        await server.stop(0.5)


async def test_the_checks_name_the_ledger_and_each_configured_redis(tmp_path: Path) -> None:
    assert set(readiness_checks(Config(), None)) == set()
    caches = {"cache": {"response": {"enabled": True, "redis_url": "redis://h/0"}}}
    config = Config(policy=PolicyConfig.from_mapping(caches))
    assert set(readiness_checks(config, None)) == {"redis (cache)"}
