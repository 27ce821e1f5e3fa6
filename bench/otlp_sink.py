"""``python -m bench.otlp_sink --port P --counts FILE``: where the traced mesh sends its spans.

It runs llmesh's `OtlpReceiver` (an OTLP/gRPC ``TraceService``) on uvloop, counts the spans
it receives by exporting service and by span name, and writes the counts to `FILE` as JSON
when SIGTERM or SIGINT stops it, so the benchmark can tell a traced leg that exported its
spans from one that exported nothing. Spans are counted and dropped as they arrive (every
half second), so memory stays flat however long the load runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from llmesh.services.telemetry.otlp import OtlpReceiver

DRAIN_INTERVAL = 0.5
"""Seconds between two countings of the spans received."""


class SpanCounts:
    """Spans received, by service (``service.name``) and by ``service span-name``."""

    def __init__(self) -> None:
        self.services: Counter[str] = Counter()
        self.names: Counter[str] = Counter()

    def drain(self, receiver: OtlpReceiver) -> None:
        """Count the spans received since the last drain and let them go."""
        spans, receiver.spans = receiver.spans, []
        for span in spans:
            self.services[span.service] += 1
            self.names[f"{span.service} {span.name}"] += 1

    def as_json(self) -> dict[str, object]:
        """The counts, with their total."""
        return {
            "total": sum(self.services.values()),
            "services": dict(self.services),
            "names": dict(self.names),
        }


async def serve(port: int) -> SpanCounts:
    """Receive spans on ``127.0.0.1:port`` until SIGTERM or SIGINT; return their counts."""
    receiver = await OtlpReceiver().start(port=port)
    counts = SpanCounts()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), DRAIN_INTERVAL)
            counts.drain(receiver)
    finally:
        await receiver.stop()
        counts.drain(receiver)
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    """Serve on uvloop until SIGTERM."""
    import uvloop

    parser = argparse.ArgumentParser(prog="python -m bench.otlp_sink")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--counts", type=Path, required=True, help="where the counts go (JSON)")
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        counts = runner.run(serve(args.port))
    args.counts.write_text(json.dumps(counts.as_json()))


if __name__ == "__main__":
    main()
