"""``python -m llmesh.services.emulator [--host H] [--port P] [--allow-unauthenticated]``: serve."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Sequence

from llmesh.services.common.exposure import ExposureError
from llmesh.services.common.logs import configure_logging
from llmesh.services.emulator.app import run
from llmesh.services.emulator.settings import EmulatorSettings, Latency


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve."""
    defaults = EmulatorSettings()
    parser = argparse.ArgumentParser(
        prog="python -m llmesh.services.emulator",
        description="Serve the OpenAI and Anthropic chat APIs with deterministic replies.",
    )
    parser.add_argument("--host", default=defaults.host, help="interface to bind")
    parser.add_argument("--port", type=int, default=defaults.port, help="port to bind (0: any)")
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="bind a non-loopback host even though the emulator has no authentication",
    )
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="default time to first token")
    parser.add_argument("--itl-ms", type=float, default=0.0, help="default inter-token latency")
    args = parser.parse_args(argv)
    settings = dataclasses.replace(
        defaults,
        host=args.host,
        port=args.port,
        allow_unauthenticated=args.allow_unauthenticated,
        default_latency=Latency(args.ttft_ms, args.itl_ms),
    )
    configure_logging(default="WARNING")  # not a line per request
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but optional here
        factory = None
    else:
        factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(run(settings=settings))
    except ExposureError as exc:
        sys.exit(f"python -m llmesh.services.emulator: {exc}")


if __name__ == "__main__":
    main()
