"""``python -m llmesh.gateway``: run the HTTP gateway in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence

from llmesh.gateway.server import serve
from llmesh.gateway.settings import GatewaySettings
from llmesh.services.common.config_fields import ConfigError
from llmesh.services.common.exposure import ExposureError
from llmesh.services.common.logs import configure_logging
from llmesh.services.common.telemetry_settings import parse_telemetry
from llmesh.services.common.tls_settings import parse_tls
from llmesh.services.telemetry.tracing import install_tracing


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve until SIGINT or SIGTERM."""
    defaults = GatewaySettings()
    p = argparse.ArgumentParser(
        prog="python -m llmesh.gateway", description="llmesh's HTTP gateway."
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="TCP port to bind (default 8080)")
    p.add_argument(
        "--orchestrator",
        default=defaults.orchestrator_address,
        help="orchestrator gRPC address: host:port, dns:///name:port, or a comma-separated "
        f"list of IP host:port to balance over (default {defaults.orchestrator_address})",
    )
    p.add_argument(
        "--processor",
        default=defaults.processor_address,
        help=f"processor gRPC address (default {defaults.processor_address})",
    )
    p.add_argument(
        "--database-url",
        default=os.environ.get("LLMESH_DATABASE_URL", defaults.key_store_url),
        help="the mesh's database: its API keys and the stored /v1/responses (default "
        f"$LLMESH_DATABASE_URL or {defaults.key_store_url}); a non-loopback --host needs "
        "keys there",
    )
    p.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve a non-loopback address even though no API keys exist",
    )
    args = p.parse_args(argv)
    configure_logging()
    try:
        telemetry = parse_telemetry(None, os.environ)  # the OTEL_* variables alone
        tls = parse_tls(None, os.environ).service("gateway")  # LLMESH_[GATEWAY_]TLS_* alone
    except ConfigError as exc:
        sys.exit(f"python -m llmesh.gateway: {exc}")
    try:
        settings = GatewaySettings(
            orchestrator_address=args.orchestrator,
            processor_address=args.processor,
            key_store_url=args.database_url,
            response_store_url=args.database_url,
            allow_unauthenticated=args.allow_unauthenticated,
            telemetry=telemetry,
            tls=tls,
        )
    except ValueError as exc:  # a bad --orchestrator list
        sys.exit(f"python -m llmesh.gateway: {exc}")
    install_tracing(telemetry, "gateway")
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(settings, args.host, args.port))
    except (ExposureError, ConfigError) as exc:  # ConfigError: a TLS file, named
        sys.exit(f"python -m llmesh.gateway: {exc}")


if __name__ == "__main__":
    main()
