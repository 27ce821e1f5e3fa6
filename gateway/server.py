"""Running the gateway under uvicorn: in the foreground (`serve`, `run`) or embedded (`start`).

`start` binds ``host:0`` itself and hands the socket to uvicorn, so tests and benchmarks
learn the port without racing for it. Both refuse a non-loopback host when no API keys
exist, unless ``settings.allow_unauthenticated`` is set (`check_exposure`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass

import uvicorn

from llmesh.gateway.app import create_app
from llmesh.gateway.coalescing import CoalescingHttpToolsProtocol
from llmesh.gateway.settings import GatewaySettings
from llmesh.gateway.upstream import Upstream
from llmesh.services.auth import check_listener
from llmesh.services.common import heap
from llmesh.services.common.config import Config
from llmesh.services.common.tls import check_client, uvicorn_ssl
from llmesh.services.common.workers import notify_ready
from llmesh.services.telemetry.tracing import install_tracing

log = logging.getLogger("llmesh.gateway")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


OpenUpstream = Callable[[GatewaySettings], Upstream]
"""How the app opens its upstream stubs (`Upstream.open`: gRPC channels)."""


def uvicorn_config(
    settings: GatewaySettings,
    host: str,
    port: int,
    upstream: OpenUpstream = Upstream.open,
    service: str = "gateway",
) -> uvicorn.Config:
    """uvicorn's configuration for the app; uvloop and httptools are used when installed.

    With a ``cert`` in ``settings.tls`` it serves HTTPS (and with a ``client_ca``, requires
    client certificates); the files are checked here, a bad one named in a `TlsError`."""
    check_client(settings.tls, service)  # the channels open later, in the app's lifespan
    return uvicorn.Config(
        create_app(settings, upstream),
        host=host,
        port=port,
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,  # nothing reads the client's address or scheme: skip the rewrite
        http=CoalescingHttpToolsProtocol,  # a response's head and body in one segment
        ws_max_size=settings.max_body_bytes,
        timeout_graceful_shutdown=settings.shutdown_grace,
        **uvicorn_ssl(settings.tls, service),
    )


async def check_exposure(settings: GatewaySettings, host: str) -> None:
    """The startup rule for the gateway's bind (`llmesh.services.auth.check_bind`).

    The gateway checks no key itself: it forwards ``authorization`` to the orchestrator
    and the processor, which do. So a non-loopback host needs keys in
    ``settings.key_store_url``, or token issuers (``settings.jwt_issuers``), or
    ``settings.allow_unauthenticated`` (logged loudly).
    """
    await check_listener(
        "gateway",
        host,
        settings.key_store_url,
        allow_unauthenticated=settings.allow_unauthenticated,
        jwt_issuers=settings.jwt_issuers,
    )


async def serve(
    settings: GatewaySettings,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    sockets: list[socket.socket] | None = None,
    reuse_port: bool = False,
) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully.

    With `reuse_port` the listening socket is bound with ``SO_REUSEPORT``, so other
    processes (workers of ``llmesh up --workers N``) serve the same port."""
    await check_exposure(settings, host)
    server = _ForegroundServer(uvicorn_config(settings, host, port))
    if not reuse_port or sockets is not None:
        await server.serve(sockets=sockets)
        return
    with listening_socket(host, port, reuse_port=True) as sock:
        await server.serve(sockets=[sock])


async def run(config: Config, *, reuse_port: bool = False) -> None:
    """Serve the gateway a mesh configuration describes (used by ``llmesh serve gateway``)."""
    install_tracing(config.telemetry, "gateway")
    await serve(
        GatewaySettings.from_config(config),
        config.gateway_host,
        config.gateway_port,
        reuse_port=reuse_port,
    )


def listening_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``host:port`` for uvicorn (which listens on it).

    proto must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only
    then, and without it every response pays Nagle's delay against delayed ACKs (~40 ms).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class _ForegroundServer(uvicorn.Server):
    """A uvicorn server that stops gracefully on SIGINT/SIGTERM and then returns normally.

    (uvicorn itself re-raises the signal after shutting down, so the process would die of it.)
    """

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        heap.settle()  # after the lifespan built the app's clients
        if self.started:
            notify_ready()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class RunningGateway:
    """A gateway started by `start`: where it listens and how to stop it."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    host: str
    port: int
    tls: bool = False
    """Whether it serves HTTPS."""

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234`` (``https://`` over TLS)."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting connections, let open ones finish, close the upstream channels."""
        self.server.should_exit = True
        await self.task


async def start(
    settings: GatewaySettings,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    upstream: OpenUpstream = Upstream.open,
    service: str = "gateway",
) -> RunningGateway:
    """Start the gateway in the running event loop and return once it accepts connections.

    `upstream` opens its stubs (the direct HTTP path passes in-process ones); `service`
    names the listener in TLS errors."""
    await check_exposure(settings, host)
    sock = listening_socket(host, port)
    try:
        bound_port = sock.getsockname()[1]
        config = uvicorn_config(settings, host, bound_port, upstream, service)
        server = _EmbeddedServer(config)
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the gateway stopped while starting")
            await asyncio.sleep(0.005)
    except BaseException:
        sock.close()
        raise
    running = RunningGateway(server, task, host, bound_port, settings.tls.serves_tls)
    log.info("gateway listening on %s", running.url)
    return running
