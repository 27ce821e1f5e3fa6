"""Building and running the processor's gRPC server."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc

from llmesh.services.auth import Access, Authenticator, check_bind, open_access
from llmesh.services.common import heap
from llmesh.services.common.config import Config
from llmesh.services.common.grpc_server import (
    MAX_MESSAGE_BYTES,
    RunningServer,
    ServiceBinding,
    start_server,
)
from llmesh.services.common.media_settings import grpc_message_limit
from llmesh.services.common.metrics_settings import MetricsSettings
from llmesh.services.common.step_settings import DETECTORS, SCREEN_RULES
from llmesh.services.common.tls import check_listener
from llmesh.services.common.tls_settings import TlsSettings
from llmesh.services.common.workers import notify_ready
from llmesh.services.processor.models import ModelNames
from llmesh.services.processor.screen import ALLOW_ENV
from llmesh.services.processor.servicer import ProcessorServicer
from llmesh.services.processor.tokenizers import Tokenizers
from llmesh.services.telemetry import Metrics, build_metrics
from llmesh.services.telemetry.service import Telemetry, start_metrics_server
from llmesh.services.telemetry.tracing import install_tracing, server_interceptors
from llmesh.v1 import processor_pb2, processor_pb2_grpc

log = logging.getLogger("llmesh.processor")

SERVICE_NAME = "llmesh.v1.ProcessorService"


@dataclass
class ProcessorServer:
    """A running processor: its gRPC server and the key store its calls are checked against."""

    running: RunningServer
    access: Access
    telemetry: Telemetry = field(default_factory=lambda: Telemetry(None))
    """Its metrics and metrics server (none when metrics are off)."""

    @property
    def server(self) -> grpc.aio.Server:
        """The gRPC server."""
        return self.running.server

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self.running.port

    async def stop(self, grace: float | None = 5.0) -> None:
        """Stop serving, let in-flight calls finish within `grace`, close the key store."""
        await self.running.set_serving([SERVICE_NAME], False)
        await self.running.server.stop(grace)
        await self.access.aclose()
        await self.telemetry.aclose()


_SCREEN_LABELS = frozenset((*SCREEN_RULES, "classifier"))
_SCREEN_DECISIONS = frozenset(("clean", "flag", "route", "block"))


def count_redactions(
    metrics: Metrics,
) -> Callable[[Sequence[processor_pb2.StepDecision]], None]:
    """Counts each Prepare's redacted values per detector (``llmesh_redactions_total``); a
    user pattern or word list counts as ``custom``, so a client cannot add labels. Screened
    calls count once per matched rule and decision (``llmesh_screen_matches_total``)."""

    def count(decisions: Sequence[processor_pb2.StepDecision]) -> None:
        for decision in decisions:
            if decision.step == "redact":  # other steps' counts are not redactions (fit: tokens)
                for detector, n in decision.counts.items():
                    metrics.redactions.add(n, detector if detector in DETECTORS else "custom")
            elif decision.step == "screen" and decision.decision in _SCREEN_DECISIONS:
                for rule in decision.rules:
                    if rule in _SCREEN_LABELS:
                        metrics.screen_matches.add(1, rule, decision.decision)

    return count


async def access_for(address: str, config: Config | None) -> Access:
    """The startup rule for the processor's bind, and who its calls act for."""
    if config is None:  # no configuration: no key store, so loopback only
        check_bind(address, False, False, service="processor")
        return Access(Authenticator(None, required=False), None)
    return await open_access(
        "processor",
        address,
        config.database_url,
        allow_unauthenticated=config.allow_unauthenticated,
        jwt_issuers=config.jwt_issuers,
    )


def _listed(raw: str) -> tuple[str, ...]:
    return tuple(name for name in (n.strip() for n in raw.split(",")) if name)


async def serve(
    address: str,
    *,
    config: Config | None = None,
    tokenizers: Tokenizers | None = None,
    reuse_port: bool = False,
) -> ProcessorServer:
    """Load the tokenizers, then start the processor on `address` (``host:0`` allowed).

    `config` names the TLS files (``tls``, ``tls.processor``), the key store
    (``ledger.url``: with keys in it, every call needs one), the
    ``--allow-unauthenticated`` override, and the providers, aliases and routes whose
    models are counted. Without it there are no keys, any model name is counted, and only
    a loopback address may be bound. A non-loopback bind without keys is refused
    (`llmesh.services.common.exposure.ExposureError`) unless the override is set.

    Loading happens before the server accepts calls, so no call waits for it. It runs on
    the event loop (under a second, once): the loader holds the GIL, so a thread would not
    free the loop, and the loader briefly changes the process's warning filters.

    ``LLMESH_SCREEN_CLASSIFIERS`` (comma-separated dotted paths) lists the classifiers a
    screen step may load besides the installed entry points.
    """
    settings = MetricsSettings() if config is None else config.telemetry.metrics
    tls = TlsSettings() if config is None else config.tls.service("processor")
    check_listener(tls, "processor")  # before the key store opens: a bad file names itself
    access = await access_for(address, config)
    try:
        tokenizers = tokenizers or Tokenizers()
        seconds = tokenizers.warm()
        log.info("tokenizers loaded in %.2f s", seconds)
        servicer = ProcessorServicer(
            tokenizers,
            authenticator=access.authenticator,
            models=None if config is None else ModelNames.from_config(config),
            part_limits=None if config is None else config.part_limits,
            screen_classifiers=_listed(os.environ.get(ALLOW_ENV, "")),
        )
        running = await start_server(
            [
                ServiceBinding(
                    processor_pb2_grpc.add_ProcessorServiceServicer_to_server,
                    servicer,
                    SERVICE_NAME,
                )
            ],
            address,
            reuse_port=reuse_port,
            max_message_bytes=(
                MAX_MESSAGE_BYTES
                if config is None
                else grpc_message_limit(config.max_message_bytes)
            ),
            interceptors=server_interceptors(None if config is None else config.telemetry),
            tls=tls,
            service="processor",
        )
    except BaseException:
        await access.aclose()
        raise
    telemetry = Telemetry(None)
    try:
        telemetry.metrics = build_metrics(settings, "processor")
        if telemetry.metrics is not None:
            servicer.on_decisions = count_redactions(telemetry.metrics)
        port = settings.processor_port
        if telemetry.metrics is not None and settings.prometheus and port:
            telemetry.server = await start_metrics_server(
                telemetry.metrics, settings.host, port, tls
            )
    except BaseException:
        await running.server.stop(None)
        await access.aclose()
        await telemetry.aclose()
        raise
    return ProcessorServer(running, access, telemetry)


async def run(config: Config, *, address: str | None = None, grace: float = 5.0) -> None:
    """Serve until SIGINT or SIGTERM, then let in-flight calls finish within `grace`.

    `address` overrides the configured ``processor.address``.
    """
    address = address or config.processor_address
    install_tracing(config.telemetry, "processor")
    server = await serve(address, config=config)
    heap.settle()
    host = address.rpartition(":")[0]
    print(f"processor listening on {host}:{server.port}", flush=True)
    notify_ready()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await server.stop(grace)
