"""``python -m bench.observing``: the observing side of the call path, alone, in one process.

Runs `--calls` unary calls through the layers the orchestrator puts outermost on its call
path (metrics, the call log, the call's span, as `--variant` asks) around a handler that
fills in the call's trail as the engine and the accounting layer do (one attempt, its time
to first token, a settlement) and yields a plain reply's events. No network, no database:
what is counted is the observing layers' own work per call.

Under callgrind, instructions per call are the difference of two runs' totals divided by
the difference of their calls (start-up and imports cancel out)::

    valgrind --tool=callgrind --callgrind-out-file=a.out python -m bench.observing --calls 100
    valgrind --tool=callgrind --callgrind-out-file=b.out python -m bench.observing --calls 2100

or ``python -m bench.observing --callgrind`` does both and prints the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from opentelemetry import trace

from llmesh.services.common.config import Config, ProviderConfig
from llmesh.services.common.logs import configure_logging
from llmesh.services.core.call import ChatCall, RoutedCall
from llmesh.services.core.caller import Caller
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role
from llmesh.services.core.events import CallEvent, Completed, Started, TextDelta
from llmesh.services.core.handler import Handler, Layer
from llmesh.services.core.policy import Policy
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Outcome, Settlement, Trail
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.layers import compose
from llmesh.services.orchestrator.observability import observed_layer
from llmesh.services.telemetry import Metrics, MetricsSettings
from llmesh.services.telemetry.lean_trace import LeanSpan, LeanTracerProvider
from llmesh.services.telemetry.settings import LogSettings, TelemetrySettings, TracingSettings

VARIANTS = ("metrics", "log", "tracing", "all")
"""What is on: metrics alone, the call log alone, the call span alone, or all three."""

TARGET = Target("openai", "gpt-4o-mini")
USAGE = Usage(12, 5)


class _Dropped:
    """A span sink that keeps nothing (export is not what is counted here)."""

    def add(self, span: LeanSpan) -> None:
        pass

    def force_flush(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


class _Engine:
    """Answers every call with one attempt, filling the trail as the engine and the
    accounting layer would."""

    async def _reply(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        now = time.monotonic()
        record = call.trail.add(AttemptRecord(TARGET, now))
        record.ttft = 0.001
        yield Started(call.request_id, TARGET.provider, TARGET.model)
        yield TextDelta("hello")
        yield TextDelta(" there")
        record.finish(Outcome.SUCCEEDED, time.monotonic())
        call.trail.settlement = Settlement(((record, USAGE),), USAGE, 0.0001)
        yield Completed(FinishReason.STOP, "stop", USAGE, (record,), 0.0002, 0.0001)

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        return self._reply(call)


def _config(variant: str) -> Config:
    provider = ProviderConfig("openai", "openai", base_url="http://x", models=(TARGET.model,))
    telemetry = TelemetrySettings(
        tracing=TracingSettings(enabled=variant in ("tracing", "all")),
        logs=LogSettings(calls=variant in ("log", "all")),
    )
    return Config(providers={"openai": provider}, telemetry=telemetry)


def _layers(config: Config, metrics: Metrics | None) -> list[Layer]:
    """The observing layers `assemble` puts outermost, as it builds them."""
    observed = observed_layer(config, metrics)
    return [observed] if observed is not None else []


async def _run(handler: Handler, calls: int, traced: bool) -> None:
    request = ChatRequest(messages=(Message(Role.USER, "hi"),))
    chat = ChatCall(f"{TARGET.provider}/{TARGET.model}", request, caller=Caller("acme", "k1"))
    tracer = trace.get_tracer("bench")
    for i in range(calls):
        routed = RoutedCall(chat, (TARGET,), Policy(), f"req_{i}", Trail(time.monotonic()))
        if not traced:
            async for _ in handler.stream(routed):
                pass
            continue
        with tracer.start_as_current_span("server"):  # the gRPC server span's place
            async for _ in handler.stream(routed):
                pass


def run(variant: str, calls: int) -> None:
    """Make `calls` calls through the observing layers of `variant`."""
    config = _config(variant)
    if config.telemetry.tracing.enabled:
        trace.set_tracer_provider(LeanTracerProvider({"service.name": "bench"}, _Dropped()))
    if config.telemetry.logs.calls:
        configure_logging({"LLMESH_LOG_FORMAT": "json"}, stream=open(os.devnull, "w"))  # noqa: SIM115
    metrics = None
    if variant in ("metrics", "all"):
        metrics = Metrics(MetricsSettings(enabled=True, prometheus=False), "orchestrator")
    handler = compose(_Engine(), _layers(config, metrics))
    asyncio.run(_run(handler, calls, config.telemetry.tracing.enabled))


def _count(variant: str, calls: int, out: Path) -> int:
    # a run outside valgrind first: the modules' bytecode is then compiled and cached, not
    # compiled during one counted run and not the other
    argv = [sys.executable, "-m", "bench.observing", "--variant", variant, "--calls", "1"]
    subprocess.run(argv, check=True, capture_output=True)
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "bench.observing",
            "--variant",
            variant,
            "--calls",
            str(calls),
        ],
        check=True,
        capture_output=True,
    )
    match = re.search(r"^totals:\s+(\d+)", out.read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit(f"no totals in {out}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.observing")
    parser.add_argument("--variant", choices=VARIANTS, default="all")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument(
        "--callgrind", action="store_true", help="count instructions per call under callgrind"
    )
    args = parser.parse_args()
    if not args.callgrind:
        run(args.variant, args.calls)
        return
    with tempfile.TemporaryDirectory(prefix="llmesh-observing-") as tmp:
        low = _count(args.variant, 100, Path(tmp) / "low.out")
        high = _count(args.variant, 100 + args.calls, Path(tmp) / "high.out")
    print(f"{args.variant}: {(high - low) / args.calls:,.0f} instructions per call")


if __name__ == "__main__":
    main()
