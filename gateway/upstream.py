"""The gateway's gRPC side: channels to the upstream services, opened for the app's lifetime
(a pool of them to the orchestrator, so its workers share the calls: `channel_pool`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import grpc
from grpc_health.v1 import health_pb2_grpc
from starlette.requests import HTTPConnection

from llmesh.gateway.balancing import channel_target, service_config
from llmesh.gateway.channel_pool import LOCAL_SUBCHANNELS, ChannelPool
from llmesh.gateway.settings import GatewaySettings
from llmesh.services.common.errors import LlmeshError
from llmesh.services.common.rpc_errors import Peer, from_rpc_error
from llmesh.services.common.tls import channel
from llmesh.services.telemetry.tracing import client_interceptors, traced_channel
from llmesh.v1 import (
    batches_pb2_grpc,
    orchestrator_pb2_grpc,
    processor_pb2_grpc,
    templates_pb2_grpc,
)

_POINT_AT = {
    "orchestrator": "--orchestrator, LLMESH_ORCHESTRATOR_ADDRESS or orchestrator.address in "
    "the configuration file",
    "processor": "--processor, LLMESH_PROCESSOR_ADDRESS or processor.address in the "
    "configuration file",
}


@dataclass
class Upstream:
    """Open channels and their stubs; created in the app's lifespan, closed on shutdown."""

    settings: GatewaySettings
    orchestrator_channels: ChannelPool | None
    """`settings.orchestrator_channels` channels, calls dealt over them; None when the
    orchestrator answers in this process (`in_process`)."""
    processor_channel: grpc.aio.Channel
    orchestrator: orchestrator_pb2_grpc.OrchestratorServiceStub
    """The orchestrator's methods (over the pool, or in-process)."""
    processor: processor_pb2_grpc.ProcessorServiceStub
    health: health_pb2_grpc.HealthStub
    """Health checks of the orchestrator replicas, on a channel of their own."""
    probe_channel: grpc.aio.Channel | None = None
    templates: templates_pb2_grpc.TemplateServiceStub | None = None
    """The orchestrator's prompt templates service (over the pool, or in-process); None:
    not served on this path."""
    batches: batches_pb2_grpc.BatchServiceStub | None = None
    """The orchestrator's batch jobs (over the pool); None on the direct HTTP path."""

    @staticmethod
    def _channel(
        settings: GatewaySettings,
        address: str,
        health_service: str | None,
        *,
        traced: bool = True,
        own_connections: bool = False,
    ) -> grpc.aio.Channel:
        """A channel to `address` (one address, a comma list or a ``dns:///`` target), round
        robin over its replicas, skipping those `health_service` reports NOT_SERVING (None:
        no health checking); over TLS when ``settings.tls`` names a ``ca``;
        `own_connections`: sharing no connection with other channels."""
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", settings.max_grpc_message_bytes),
            ("grpc.max_send_message_length", settings.max_grpc_message_bytes),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.service_config", service_config(health_service)),
        ]
        if own_connections:
            options.append(LOCAL_SUBCHANNELS)
        # the instrumentation's interceptors (its mode) or llmesh's channel wrapper (the other)
        interceptors = client_interceptors(settings.telemetry) if traced else []
        plain = channel(
            channel_target(address),
            settings.tls,
            "gateway",
            options=options,
            interceptors=interceptors or None,
        )
        return traced_channel(plain, settings.telemetry) if traced else plain

    @classmethod
    def open(cls, settings: GatewaySettings) -> Upstream:
        """Create the channels (they connect lazily, on the first call)."""
        address = settings.orchestrator_address
        pool = ChannelPool.open(
            settings.orchestrator_channels,
            lambda _: cls._channel(settings, address, settings.ready_service, own_connections=True),
        )
        # /healthz and /readyz ask the replicas themselves, round robin: on the balanced
        # channel a replica that is NOT_SERVING would be skipped instead of reported
        probe = cls._channel(settings, address, None, traced=False)
        processor = cls._channel(settings, settings.processor_address, None)
        stub = pool.stub(orchestrator_pb2_grpc.OrchestratorServiceStub)
        return cls(
            settings,
            pool,
            processor,
            cast(orchestrator_pb2_grpc.OrchestratorServiceStub, stub),
            processor_pb2_grpc.ProcessorServiceStub(processor),
            health_pb2_grpc.HealthStub(probe),
            probe,
            cast(
                templates_pb2_grpc.TemplateServiceStub,
                pool.stub(templates_pb2_grpc.TemplateServiceStub),
            ),
            cast(
                batches_pb2_grpc.BatchServiceStub,
                pool.stub(batches_pb2_grpc.BatchServiceStub),
            ),
        )

    @classmethod
    def in_process(
        cls, settings: GatewaySettings, orchestrator: Any, health: Any, templates: Any = None
    ) -> Upstream:
        """Stubs answered in this process (the direct HTTP path, `llmesh.services.direct`):
        the orchestrator's calls (and `templates`') reach its servicer with no channel; the
        processor's still go over gRPC to ``settings.processor_address``."""
        processor = cls._channel(settings, settings.processor_address, None)
        stub = processor_pb2_grpc.ProcessorServiceStub(processor)
        return cls(settings, None, processor, orchestrator, stub, health, None, templates)

    def peer(self, service: str = "orchestrator") -> Peer:
        """The upstream `service` (``orchestrator`` or ``processor``) as named in errors."""
        address = (
            self.settings.processor_address
            if service == "processor"
            else self.settings.orchestrator_address
        )
        return Peer(service, address, _POINT_AT[service])

    def error(self, exc: grpc.RpcError, service: str = "orchestrator") -> LlmeshError:
        """The `LlmeshError` of a failed call to `service`; the channel's own failures
        (unreachable, deadline) name the service and its address."""
        return from_rpc_error(exc, self.peer(service))

    async def close(self) -> None:
        """Close every channel, cancelling any call still running on them."""
        if self.orchestrator_channels is not None:
            await self.orchestrator_channels.close()
        await self.processor_channel.close()
        if self.probe_channel is not None:
            await self.probe_channel.close()


def upstream_of(conn: HTTPConnection) -> Upstream:
    """The `Upstream` the app's lifespan put into the request state."""
    return cast(Upstream, conn.state.upstream)


TRAIL_KEYS = {
    "llmesh-attempts": "x-llmesh-attempts",
    "llmesh-overhead-ms": "x-llmesh-overhead-ms",
    "llmesh-priority": "x-llmesh-priority",
}
"""gRPC trailing metadata carrying the attempt trail (and the tier the call ran at), and the
HTTP headers it becomes."""


def trail_headers(metadata: Any) -> dict[str, str]:
    """The attempt trail and overhead from a call's trailing metadata, as HTTP headers."""
    out: dict[str, str] = {}
    if metadata is None:
        return out
    for key, value in metadata:  # not `metadata or ()`: grpc's Metadata counts its values
        header = TRAIL_KEYS.get(key)
        if header is not None and isinstance(value, str):
            out[header] = value
    return out


def call_headers(request_id: str, cache_hit: bool) -> dict[str, str]:
    """The headers naming a call: its request id, and ``x-llmesh-cache: hit`` for a reply
    served from llmesh's response cache."""
    if cache_hit:
        return {"x-request-id": request_id, "x-llmesh-cache": "hit"}
    return {"x-request-id": request_id}
