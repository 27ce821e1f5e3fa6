"""Building and running the orchestrator's gRPC server."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field

from grpc_health.v1.health_pb2 import HealthCheckResponse

from llmesh.services.batch.native_seam import NativeFactory
from llmesh.services.common import heap
from llmesh.services.common.config import Config, resolve_provider
from llmesh.services.common.grpc_server import RunningServer, ServiceBinding, start_server
from llmesh.services.common.media_settings import grpc_message_limit
from llmesh.services.common.tls import check_client, check_listener
from llmesh.services.common.workers import notify_ready
from llmesh.services.orchestrator.assembly import Assembly, assemble
from llmesh.services.orchestrator.batch_service import BATCH_SERVICE_NAME, Batches, build_batches
from llmesh.services.orchestrator.engine import Orchestrator
from llmesh.services.orchestrator.media import MediaPlan
from llmesh.services.orchestrator.observability import readiness_checks
from llmesh.services.orchestrator.providers import ProviderRegistry, default_registry
from llmesh.services.orchestrator.providers.base import Provider
from llmesh.services.orchestrator.providers.media_fetch import MediaFetcher
from llmesh.services.orchestrator.reload import Reloader
from llmesh.services.orchestrator.resilience import Breakers, RetryBudget, TargetLimiter
from llmesh.services.orchestrator.servicer import OrchestratorServicer
from llmesh.services.orchestrator.templates_servicer import TemplateServicer
from llmesh.services.telemetry import Readiness, build_metrics
from llmesh.services.telemetry.service import Telemetry, start_metrics_server
from llmesh.services.telemetry.trace_attempts import attempt_spans, upstream_info
from llmesh.services.telemetry.tracing import install_tracing, server_interceptors
from llmesh.v1 import batches_pb2_grpc, orchestrator_pb2_grpc, templates_pb2_grpc

log = logging.getLogger("llmesh.orchestrator")

SERVICE_NAME = "llmesh.v1.OrchestratorService"
TEMPLATE_SERVICE_NAME = "llmesh.v1.TemplateService"


@dataclass
class OrchestratorServer:
    """A running orchestrator: its gRPC server and its engine."""

    running: RunningServer
    engine: Orchestrator
    servicer: OrchestratorServicer
    assembly: Assembly
    telemetry: Telemetry = field(default_factory=lambda: Telemetry(None))
    """Its metrics, readiness checks and metrics server."""
    reloader: Reloader | None = None
    """Reloads routes, pools and providers from the configuration file (SIGHUP, changes)."""
    templates: TemplateServicer | None = None
    """The prompt templates' service, on the same server."""
    batches: Batches | None = None
    """The batch jobs' store, executor and service."""

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self.running.port

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting calls, let in-flight calls finish within `grace`, then end the rest.

        Calls still running after `grace` get UNAVAILABLE / SHUTTING_DOWN (and their
        upstream streams are closed); nothing waits longer than `grace` plus a few seconds.
        """
        await self.telemetry.readiness_aclose()
        await self.running.set_serving([SERVICE_NAME, BATCH_SERVICE_NAME], False)
        stopping = asyncio.ensure_future(self.running.server.stop(grace + 5.0))
        await asyncio.sleep(0)  # the server stops accepting before we wait
        self.servicer.end_watches()
        guards = [self.servicer.guard, *([self.templates.guard] if self.templates else [])]
        await asyncio.gather(*(g.drain(grace) for g in guards))
        if self.batches is not None:
            await self.batches.aclose(grace)
        await stopping
        if self.reloader is not None:
            await self.reloader.aclose()
        await self.assembly.aclose()  # flushes the ledger: no usage lost on shutdown
        await self.engine.aclose()
        await self.telemetry.aclose()


def build_engine(
    config: Config,
    registry: ProviderRegistry | None = None,
    env: Mapping[str, str] | None = None,
    fetcher: MediaFetcher | None = None,
) -> Orchestrator:
    """One shared adapter (and connection pool) per configured provider.

    `fetcher` replaces the media fetcher ``media_fetch`` implies (tests inject one whose
    resolver and dialer reach a local server)."""
    registry = registry or default_registry()
    providers: dict[str, Provider] = {}
    upstreams = {}
    for name, pc in config.providers.items():
        resolved = resolve_provider(pc, config.emulator, env)
        providers[name] = registry.build(resolved)
        upstreams[name] = upstream_info(name, pc.kind, resolved.base_url)
        where = "the built-in emulator" if resolved.uses_emulator else resolved.base_url
        log.info("provider %s (%s) -> %s", name, pc.kind, where)
    res = config.resilience
    return Orchestrator(
        providers,
        breakers=Breakers(res.breaker),
        budget=RetryBudget(res.budget),
        limiter=TargetLimiter(res.queue),
        retry=res.retry,
        media=MediaPlan.from_config(config, fetcher),
        trace=attempt_spans(config.telemetry, upstreams),
    )


async def serve(
    config: Config,
    *,
    address: str | None = None,
    engine: Orchestrator | None = None,
    reuse_port: bool = False,
    env: Mapping[str, str] | None = None,
    registry: ProviderRegistry | None = None,
    native: NativeFactory | None = None,
) -> OrchestratorServer:
    """Start the orchestrator; `address` overrides the configured one (``host:0`` allowed).

    `native` gives a provider's batch API for provider-native batches (None: every batch
    runs on the mesh).

    `env` is where provider keys and base URLs are read (None: the process environment);
    pass the one given to `build_engine` for `engine`, and its `registry` (the reloader
    builds the adapters of changed providers with it). Its TLS files (``tls``, and
    ``tls.orchestrator``) are checked before anything is built. With a configuration file
    (`Config.source`), routes, pools and providers reload on SIGHUP and on changes."""
    tls = config.tls.service("orchestrator")
    check_listener(tls, "orchestrator")
    check_client(tls, "orchestrator")  # the direct HTTP path's channel to the processor
    engine = engine or build_engine(config, registry, env=env)
    address = address or config.orchestrator_address
    settings = config.telemetry.metrics
    metrics = build_metrics(settings, "orchestrator")
    assembly = await assemble(
        config, engine, bind_host=address.rpartition(":")[0], env=env, metrics=metrics
    )
    servicer = OrchestratorServicer(
        assembly.path,
        engine,
        authenticator=assembly.authenticator,
        max_request_bytes=config.max_message_bytes,
        part_limits=config.part_limits,
        usage_store=assembly.ledger_store,
        tenant_priority=config.resilience.queue.tenant_priority,
        admin_tenants=config.admin_tenants,
        budgets=config.policy.budgets,
    )
    bindings = [
        ServiceBinding(
            orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server,
            servicer,
            SERVICE_NAME,
        )
    ]
    templates = None
    if assembly.templates is not None:
        templates = TemplateServicer(
            assembly.templates,
            authenticator=assembly.authenticator,
            admin_tenants=config.admin_tenants,
        )
        bindings.append(
            ServiceBinding(
                templates_pb2_grpc.add_TemplateServiceServicer_to_server,
                templates,
                TEMPLATE_SERVICE_NAME,
            )
        )
    batches = build_batches(config, assembly, env=env, native=native)
    bindings.append(
        ServiceBinding(
            batches_pb2_grpc.add_BatchServiceServicer_to_server,
            batches.servicer,
            BATCH_SERVICE_NAME,
        )
    )
    running = await start_server(
        bindings,
        address,
        reuse_port=reuse_port,
        max_message_bytes=grpc_message_limit(config.max_message_bytes),
        interceptors=server_interceptors(config.telemetry),
        max_connection_age=config.max_connection_age,
        tls=tls,
        service="orchestrator",
    )

    async def serving(ready: bool) -> None:  # the service's own status; "" stays SERVING
        status = HealthCheckResponse.SERVING if ready else HealthCheckResponse.NOT_SERVING
        await running.health.set(SERVICE_NAME, status)

    readiness = Readiness(readiness_checks(config, assembly.ledger_store), serving)
    telemetry = Telemetry(metrics, readiness)
    try:
        port = settings.orchestrator_port
        if metrics is not None and settings.prometheus and port:
            telemetry.server = await start_metrics_server(metrics, settings.host, port, tls)
        readiness.start()
        await batches.runner.start()
    except BaseException:
        await running.server.stop(None)
        await batches.aclose(0)
        await assembly.aclose()
        await telemetry.aclose()
        raise
    reloader = Reloader(
        config.source,
        config,
        engine,
        assembly.path,
        prices=assembly.prices,
        registry=registry,
        env=env,
    )
    if config.source:
        await reloader.start(config.reload_interval)
        if metrics is not None:
            metrics.observe("llmesh.config.reloads", reloader.counts)
    return OrchestratorServer(
        running, engine, servicer, assembly, telemetry, reloader, templates, batches=batches
    )


async def run(config: Config, *, reuse_port: bool = False) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully.

    `reuse_port` lets other processes (workers of ``llmesh up --workers N``) share the port."""
    install_tracing(config.telemetry, "orchestrator")
    from llmesh.services.orchestrator.batch_native import native_batches_for  # SDKs: on use

    # batches for OpenAI and Anthropic targets go to their batch APIs (mode auto/native)
    server = await serve(config, reuse_port=reuse_port, native=native_batches_for)
    heap.settle()
    print(f"orchestrator listening on {config.orchestrator_address}", flush=True)
    notify_ready()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(config.shutdown_grace)
