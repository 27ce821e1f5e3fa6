"""``python -m services.emulator [--host H] [--port P]``: serve until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from collections.abc import Sequence

from services.emulator.app import run
from services.emulator.settings import EmulatorSettings, Latency


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve."""
    defaults = EmulatorSettings()
    parser = argparse.ArgumentParser(
        prog="python -m services.emulator",
        description="Serve the OpenAI and Anthropic chat APIs with deterministic replies.",
    )
    parser.add_argument("--host", default=defaults.host, help="interface to bind")
    parser.add_argument("--port", type=int, default=defaults.port, help="port to bind (0: any)")
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="default time to first token")
    parser.add_argument("--itl-ms", type=float, default=0.0, help="default inter-token latency")
    args = parser.parse_args(argv)
    settings = dataclasses.replace(
        defaults,
        host=args.host,
        port=args.port,
        default_latency=Latency(args.ttft_ms, args.itl_ms),
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but optional here
        asyncio.run(run(settings=settings))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run(settings=settings))


if __name__ == "__main__":
    main()
