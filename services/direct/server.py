"""Serving the direct HTTP path beside a running orchestrator, on the same event loop."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import replace

from grpc_health.v1 import health_pb2

from llmesh.gateway.server import OpenUpstream, RunningGateway, start
from llmesh.gateway.settings import GatewaySettings
from llmesh.gateway.upstream import Upstream
from llmesh.services.common import heap
from llmesh.services.common.config import Config
from llmesh.services.direct.stub import DirectStub
from llmesh.services.orchestrator.server import OrchestratorServer, serve
from llmesh.services.telemetry.tracing import install_tracing
from llmesh.v1 import orchestrator_pb2, templates_pb2

__all__ = ["DirectServer", "direct_upstream", "run", "serve_direct"]

log = logging.getLogger("llmesh.orchestrator")

DirectServer = RunningGateway
"""A running direct HTTP path: the gateway app under uvicorn, on in-process stubs."""


def direct_upstream(orchestrator: OrchestratorServer) -> OpenUpstream:
    """How the gateway app opens stubs that call `orchestrator`'s servicer in-process."""
    stub = DirectStub(
        orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"], orchestrator.servicer
    )
    health = DirectStub(
        health_pb2.DESCRIPTOR.services_by_name["Health"], orchestrator.running.health
    )
    templates = (
        DirectStub(
            templates_pb2.DESCRIPTOR.services_by_name["TemplateService"], orchestrator.templates
        )
        if orchestrator.templates is not None
        else None
    )

    def open_upstream(settings: GatewaySettings) -> Upstream:
        return Upstream.in_process(settings, stub, health, templates)

    return open_upstream


async def serve_direct(
    orchestrator: OrchestratorServer,
    settings: GatewaySettings,
    host: str = "127.0.0.1",
    port: int = 0,
) -> DirectServer:
    """Start the gateway's routes on `host:port`, answered by `orchestrator` in this process.

    The bind follows the gateway's rule (no keys: loopback only, unless allowed). The
    processor's calls (token count, context fit) still go over gRPC to
    ``settings.processor_address``; ``settings.tls`` is the listener's and that channel's."""
    upstream = direct_upstream(orchestrator)
    return await start(settings, host, port, upstream=upstream, service="direct HTTP path")


async def run(config: Config) -> None:
    """The orchestrator with its direct HTTP path (``orchestrator.http.port``), until SIGINT
    or SIGTERM; then the HTTP side stops accepting first and both drain."""
    install_tracing(config.telemetry, "orchestrator")
    orchestrator = await serve(config)
    settings = replace(
        GatewaySettings.from_config(config),
        orchestrator_address="in-process",
        tls=config.tls.service("orchestrator"),  # the orchestrator's process, its files
    )
    try:
        direct = await serve_direct(
            orchestrator, settings, config.orchestrator_http_host, config.orchestrator_http_port
        )
    except BaseException:
        await orchestrator.stop(0)
        raise
    heap.settle()
    print(f"orchestrator listening on {config.orchestrator_address}", flush=True)
    print(f"direct HTTP path listening on {direct.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await direct.stop()
    await orchestrator.stop(config.shutdown_grace)
