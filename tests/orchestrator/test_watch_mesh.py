"""WatchMesh over a real gRPC server: snapshots at the asked interval, ended by shutdown."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import grpc
from google.protobuf import duration_pb2

from llmesh.services.common.config import load_config
from llmesh.services.orchestrator.server import serve
from llmesh.v1 import orchestrator_pb2, orchestrator_pb2_grpc


async def test_snapshots_flow_until_the_server_ends_every_watch(tmp_path: Path) -> None:
    config = replace(load_config(None, env={}), database_url=f"sqlite:///{tmp_path}/ledger.db")
    server = await serve(config, address="127.0.0.1:0", env={})
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
            request = orchestrator_pb2.WatchMeshRequest(
                interval=duration_pb2.Duration(nanos=200_000_000)
            )
            call = stub.WatchMesh(request, timeout=60)
            first = await call.read()
            second = await call.read()
            assert first.targets and [t.name for t in first.targets] == sorted(
                t.name for t in first.targets
            )
            assert second.snapshot_time.ToNanoseconds() > first.snapshot_time.ToNanoseconds()
            assert not first.recent_calls  # an empty ledger
            server.servicer.end_watches()  # what stop() does before draining
            while (item := await call.read()) is not grpc.aio.EOF:
                assert isinstance(item, orchestrator_pb2.WatchMeshResponse)
            assert await call.code() == grpc.StatusCode.OK  # ended, not cut
    finally:
        await server.stop(1)
