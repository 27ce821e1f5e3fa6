"""llmesh under test: the orchestrator and the gateway as ``llmesh serve`` processes.

They get a bench configuration (the provider ``bench``, kind openai-compatible, at the
upstream's /v1; no response cache; a short shutdown grace), a temporary SQLite database and
ephemeral ports through the ``LLMESH_*`` environment overrides, and run on the service core.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter

import aiohttp
import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.ports import free_port
from bench.procs import Service, StartError, clean_env, llmesh_argv, spawn, wait_for_port
from bench.system import Pinning, rss_mib

SERVICE_NAME = "llmesh.v1.OrchestratorService"
PROVIDER = "bench"
EMBEDDING_MODEL = "text-embedding-3-small"
"""The embeddings model the bench provider lists (both upstreams serve it)."""


def write_config(directory: Path, upstream_base_url: str) -> Path:
    """The bench configuration file; addresses and the database come from the environment."""
    config = {
        "providers": {
            PROVIDER: {
                "kind": "openai-compatible",
                "base_url": upstream_base_url,
                "api_key": "bench",
                "models": ["fast", "paced", EMBEDDING_MODEL],
            }
        },
        "orchestrator": {"shutdown_grace": 1},
        "cache": {"response": {"enabled": False}},
    }
    path = directory / "llmesh.bench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class Mesh:
    """The running orchestrator and gateway, and what starting them cost."""

    orchestrator: Service
    gateway: Service
    orchestrator_address: str
    gateway_url: str
    startup_s: dict[str, float] = field(default_factory=dict)
    """Seconds from spawn to SERVING (orchestrator) and to a healthy /healthz (gateway)."""
    direct_url: str | None = None
    """The orchestrator's direct HTTP path (its own /v1, no gRPC hop), when it serves one."""

    @property
    def pids(self) -> list[int]:
        """Both processes' ids."""
        return [self.orchestrator.pid, self.gateway.pid]

    def rss(self) -> dict[str, float | None]:
        """Each process's resident memory in MiB."""
        return {
            "orchestrator": rss_mib(self.orchestrator.pid),
            "gateway": rss_mib(self.gateway.pid),
        }

    def stop(self) -> None:
        """Stop the gateway, then the orchestrator."""
        self.gateway.stop()
        self.orchestrator.stop()


class MeshLauncher:
    """Starts orchestrators and gateways with one configuration, database and pinning."""

    def __init__(
        self,
        directory: Path,
        upstream_base_url: str,
        pinning: Pinning,
        extra_env: Mapping[str, str] | None = None,
        *,
        direct_http: bool = False,
    ) -> None:
        """`extra_env`: more environment for both services; `direct_http`: the orchestrator
        also serves the direct HTTP path (its own /v1)."""
        self._direct_port = free_port() if direct_http else 0
        self._dir = directory
        self._config = write_config(directory, upstream_base_url)
        self._pinning = pinning
        self._database = f"sqlite:///{directory / 'llmesh.db'}"
        self._extra = dict(extra_env or {})
        """More environment for both services (telemetry switches, for one)."""

    def env(self, orchestrator: str, gateway_port: int) -> dict[str, str]:
        """The services' environment: the bench configuration, database and addresses, and
        the launcher's `extra_env`."""
        return clean_env(
            {
                "LLMESH_CONFIG": str(self._config),
                "LLMESH_DATABASE_URL": self._database,
                "LLMESH_ORCHESTRATOR_ADDRESS": orchestrator,
                "LLMESH_GATEWAY_PORT": str(gateway_port),
                "LLMESH_EMULATOR_PORT": str(free_port()),
                "LLMESH_PROCESSOR_ADDRESS": f"127.0.0.1:{free_port()}",
                "LLMESH_ORCHESTRATOR_HTTP_PORT": str(self._direct_port),
                **self._extra,
            }
        )

    async def orchestrator(self, address: str, gateway_port: int) -> tuple[Service, float]:
        """Spawn an orchestrator; return it and its seconds from spawn to SERVING."""
        service = spawn(
            "orchestrator",
            llmesh_argv("serve", "orchestrator"),
            pin=self._pinning.prefix(self._pinning.service_core),
            logs=self._dir,
            env=self.env(address, gateway_port),
        )
        try:
            await wait_for_port(service, int(address.rpartition(":")[2]), timeout=30)
            await wait_serving(service, address, timeout=30)
        except BaseException:
            service.stop()
            raise
        return service, perf_counter() - service.started

    async def start(self, cold_starts: int) -> Mesh:
        """Time `cold_starts` orchestrator starts, keep the last one, then start a gateway."""
        times: list[float] = []
        gateway_port = free_port()
        address = f"127.0.0.1:{free_port()}"
        orchestrator: Service | None = None
        for i in range(max(cold_starts, 1)):
            address = f"127.0.0.1:{free_port()}"
            orchestrator, seconds = await self.orchestrator(address, gateway_port)
            times.append(seconds)
            if i < cold_starts - 1:
                orchestrator.stop()
        assert orchestrator is not None
        direct_url = None
        if self._direct_port:
            direct_url = f"http://127.0.0.1:{self._direct_port}"
            try:
                await wait_healthy(orchestrator, direct_url, timeout=30)
            except BaseException:
                orchestrator.stop()
                raise
        gateway = spawn(
            "gateway",
            llmesh_argv("serve", "gateway"),
            pin=self._pinning.prefix(self._pinning.service_core),
            logs=self._dir,
            env=self.env(address, gateway_port),
        )
        url = f"http://127.0.0.1:{gateway_port}"
        try:
            await wait_for_port(gateway, gateway_port, timeout=30)
            await wait_healthy(gateway, url, timeout=30)
        except BaseException:
            gateway.stop()
            orchestrator.stop()
            raise
        mesh = Mesh(orchestrator, gateway, address, url, direct_url=direct_url)
        mesh.startup_s = {
            "orchestrator": sorted(times)[len(times) // 2],
            "orchestrator_runs": len(times),
            "gateway": perf_counter() - gateway.started,
        }
        return mesh


async def wait_serving(service: Service, address: str, timeout: float) -> None:
    """Poll the gRPC health check every few milliseconds until it says SERVING."""
    deadline = perf_counter() + timeout
    request = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while perf_counter() < deadline:
            if not service.alive():
                raise StartError(f"orchestrator exited:\n{service.tail()}")
            try:
                reply = await stub.Check(request, timeout=0.5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.005)
    raise StartError(f"orchestrator not SERVING within {timeout} s")


async def wait_healthy(service: Service, url: str, timeout: float) -> None:
    """Poll the gateway's (or the direct HTTP path's) /healthz until it answers 200."""
    deadline = perf_counter() + timeout
    async with aiohttp.ClientSession() as session:
        while perf_counter() < deadline:
            if not service.alive():
                raise StartError(f"gateway exited:\n{service.tail()}")
            try:
                async with session.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.01)
    raise StartError(f"gateway not healthy within {timeout} s")
