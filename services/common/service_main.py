"""The command line of a service run alone (``python -m llmesh.services.<service>``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from llmesh.services.common.config import Config, load_config, with_overrides
from llmesh.services.common.event_loop import run_service
from llmesh.services.common.logs import apply_service_levels, configure_logging

__all__ = ["service_main"]

Serve = Callable[[Config, argparse.Namespace], Coroutine[Any, Any, None]]
"""Serves the configuration until SIGINT or SIGTERM; the parsed arguments come along."""


def service_main(
    service: str,
    serve: Serve,
    argv: Sequence[str] | None = None,
    *,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parse ``--config``, ``--allow-unauthenticated`` (and the service's own `options`),
    then serve; a bad configuration or a refused bind exits with one line."""
    prog = f"python -m llmesh.services.{service}"
    parser = argparse.ArgumentParser(prog=prog, description=f"Run the llmesh {service}.")
    parser.add_argument("--config", help="configuration file (default: as for llmesh)")
    if options is not None:
        options(parser)
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve a non-loopback address even though no API keys exist",
    )
    args = parser.parse_args(argv)
    configure_logging()
    try:
        config = load_config(args.config)
        apply_service_levels(config.telemetry, service)
        if args.allow_unauthenticated:
            config = with_overrides(config, allow_unauthenticated=True)
        run_service(serve(config, args))
    except ValueError as exc:  # a bad configuration, or a non-loopback bind without keys
        sys.exit(f"{prog}: {exc}")
