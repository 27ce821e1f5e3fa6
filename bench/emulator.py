"""``python -m bench.emulator --port P --latency MODEL=TTFT:ITL``: the emulator, with per-model
latency (its own command line only sets one default latency for every model)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from bench.fast_upstream import parse_latency


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the emulator on uvloop until SIGINT or SIGTERM."""
    import uvloop

    from llmesh.services.emulator.app import run
    from llmesh.services.emulator.settings import EmulatorSettings, Latency

    parser = argparse.ArgumentParser(prog="python -m bench.emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", action="append", default=[], help="MODEL=TTFT_MS:ITL_MS")
    args = parser.parse_args(argv)
    latency = {
        model: Latency(ttft * 1000, itl * 1000)
        for model, (ttft, itl) in parse_latency(args.latency).items()
    }
    settings = EmulatorSettings(host=args.host, port=args.port, latency=latency)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(settings=settings))


if __name__ == "__main__":
    main()
