"""Build `grpc.aio` servers that always serve health checking and reflection.

Every unary-request method is registered through `safe_handler`, so a request that does not
decode answers INVALID_ARGUMENT (reason INVALID_REQUEST) instead of grpc's UNKNOWN
"Unexpected <class DecodeError>" with a logged traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from llmesh.services.common.media_settings import (
    DEFAULT_MAX_MESSAGE_BYTES,
    grpc_message_limit,
)
from llmesh.services.common.request_decoding import HandlerWrapper, SafeRegistrar
from llmesh.services.common.tls import server_credentials
from llmesh.services.common.tls_settings import TlsSettings

MAX_MESSAGE_BYTES = grpc_message_limit(DEFAULT_MAX_MESSAGE_BYTES)
"""The largest request or response message a server accepts by default (34 MiB: the
default ``limits.max_message_bytes`` plus a margin); servers take theirs from the config."""


@dataclass(frozen=True)
class ServiceBinding:
    """One servicer to mount: its `add_*_to_server` function and its full service name."""

    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any
    full_name: str


@dataclass
class RunningServer:
    """A started server, the port it bound and its health servicer."""

    server: grpc.aio.Server
    port: int
    health: health.HealthServicer

    async def set_serving(self, names: Sequence[str], serving: bool) -> None:
        """Mark the named services (and the overall server "") SERVING or NOT_SERVING."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *names):
            await self.health.set(name, status)


async def start_server(
    bindings: Sequence[ServiceBinding],
    address: str,
    *,
    reuse_port: bool = False,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    max_connection_age: float = 0.0,
    tls: TlsSettings | None = None,
    service: str = "server",
) -> RunningServer:
    """Create, bind and start a server for the bindings plus health and reflection.

    `address` may end in ``:0`` for an ephemeral port; the bound port is returned. A message
    over `max_message_bytes` is refused by grpc itself (RESOURCE_EXHAUSTED). `interceptors`
    (tracing's, when on) see every call; none by default. One that can wrap handlers
    (a `HandlerWrapper`, as llmesh's own server spans) wraps each registered method once
    instead of running on every call. `max_connection_age` seconds
    (0: none): each client connection is then asked to reconnect (GOAWAY; its calls in
    flight finish), so a client balancing over a DNS name resolves it again. With a
    ``cert`` in `tls` the port speaks TLS (and with a ``client_ca``, mutual TLS); its files
    are checked first, a bad one failing with a `TlsError` naming it and `service`.
    """
    credentials = server_credentials(tls, service) if tls is not None and tls.serves_tls else None
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ]
    if max_connection_age > 0:
        options.append(("grpc.max_connection_age_ms", int(max_connection_age * 1000)))
    # an interceptor that can wrap handlers (tracing's spans) does so once, at registration
    wrappers = [i for i in interceptors or () if isinstance(i, HandlerWrapper)]
    others = [i for i in interceptors or () if not isinstance(i, HandlerWrapper)]
    server = grpc.aio.server(options=options, interceptors=others or None)
    registrar = SafeRegistrar(server, wrappers)
    for b in bindings:
        b.add_to_server(b.servicer, registrar)  # type: ignore[arg-type]
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registrar)  # type: ignore[arg-type]
    registrar.finish()
    names = [b.full_name for b in bindings]
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise OSError(f"cannot bind gRPC server to {address}")
    await server.start()
    running = RunningServer(server, port, health_servicer)
    await running.set_serving(names, True)
    return running
