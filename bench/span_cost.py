"""``python -m bench.span_cost``: tracing's own instructions per orchestrator-shaped call.

One process, no network: each call makes the spans a traced unary gRPC ``Chat`` makes in
the orchestrator (the gRPC server span from a caller's ``traceparent``, which the call takes
as its own span and writes its facts on, and the provider attempt's CLIENT span, whose
``traceparent`` the provider writes), through the same code the services run
(`ServerSpans`' handler wrapper, `CallTracer`, `AttemptSpans`, ``trace_headers``, the lean
tracer), and the spans are batched and encoded for OTLP as the export thread does
(512-span batches, the bytes dropped). With ``--callgrind`` the run is repeated under
callgrind with two numbers of calls and the difference divided by the difference of calls:
instructions per call, load-independent (one fixed hash seed, `HASH_SEED`), traced and
untraced (``--off``: the same calls without the server span's wrapper, the call's span and
the attempt span), and their difference, tracing's own share.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import grpc
from opentelemetry import trace

from llmesh.services.core.call import ChatCall, RoutedCall
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role
from llmesh.services.core.events import Completed, Finish, ProviderEvent, TextDelta
from llmesh.services.core.policy import Policy
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Outcome, Trail
from llmesh.services.core.usage import Usage
from llmesh.services.telemetry.current import attach, detach
from llmesh.services.telemetry.grpc_spans import ServerSpans
from llmesh.services.telemetry.lean_trace import LeanSpan, LeanTracerProvider, SpanBatcher
from llmesh.services.telemetry.otlp_wire import SpanEncoder
from llmesh.services.telemetry.trace_attempts import AttemptSpans, UpstreamInfo
from llmesh.services.telemetry.trace_calls import CallTracer
from llmesh.services.telemetry.tracing import call_trace_id, trace_headers, trace_line

METHOD = "/llmesh.v1.OrchestratorService/Chat"
RESOURCE = {"service.name": "llmesh-orchestrator", "llmesh.service": "orchestrator"}
REQUEST = ChatRequest(messages=(Message(Role.USER, "hello"),), max_tokens=64)
TARGET = Target("openai", "gpt-4o")
UPSTREAMS = {"openai": UpstreamInfo("openai", "127.0.0.1", 8000)}
USAGE = Usage(input_tokens=7, output_tokens=1)
POLICY = Policy()
COMPLETED = Completed(FinishReason.STOP, "stop", USAGE, overhead=0.000412, cost_usd=2.75e-05)
NON_RECORDING = trace.INVALID_SPAN
HASH_SEED = "0"
"""The counted runs' ``PYTHONHASHSEED``: with a random one, dicts and sets lay out
differently in each run and the same code's count moved by about 12,000 instructions a
call; with a fixed one, sequential runs of the same code on an idle machine mostly agree
within about 1,000, but have differed by up to 7,000 (and by 17,000 with two counts running
at once): compare before and after in alternating runs, more than one of each."""


class _Encoding:
    """An exporter that encodes each batch and drops the bytes (with `keep`, the spans are
    kept, for a harness that encodes them again)."""

    def __init__(self, keep: bool) -> None:
        self.encoder = SpanEncoder(RESOURCE)
        self.kept: list[list[LeanSpan]] | None = [] if keep else None
        self.sent = 0

    def export(self, spans: Sequence[LeanSpan]) -> bool:
        self.sent += len(self.encoder.encode(spans))
        if self.kept is not None:
            self.kept.append(list(spans))
        return True

    def shutdown(self) -> None:
        pass


class _Context:
    """The servicer context's part the server span reads."""

    def __init__(self, number: int) -> None:
        self._metadata = (
            ("traceparent", f"00-{number + 1:032x}-{number + 7:016x}-01"),
            ("user-agent", "grpc-python/1.76.0 grpc-c/50.0.0 (linux; chttp2)"),
        )

    def invocation_metadata(self) -> Any:
        return self._metadata

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"

    def code(self) -> Any:
        return None  # no status set: OK

    def details(self) -> str:
        return ""


async def _upstream(number: int) -> AsyncGenerator[ProviderEvent, None]:
    if trace_line() is None:  # what the provider adapter puts on its request
        trace_headers()
    yield TextDelta("hi")
    yield Finish(FinishReason.STOP, "stop", USAGE, f"chatcmpl-{number}", "gpt-4o")


async def _calls(count: int, keep: bool, off: bool = False) -> _Encoding:
    exporter = _Encoding(keep)
    provider = LeanTracerProvider(RESOURCE, SpanBatcher(exporter, delay=30.0))
    if not off:
        trace.set_tracer_provider(provider)  # once a process: one run a process
    attempts = AttemptSpans(UPSTREAMS)

    calls = CallTracer()

    async def behavior(number: int, context: Any) -> int:
        call_trace_id(context.invocation_metadata())
        trail = Trail(started=0.0)
        record = trail.add(AttemptRecord(TARGET, 0.0))
        routed = RoutedCall(
            ChatCall("openai/gpt-4o", REQUEST), (TARGET,), POLICY, f"req-{number}", trail
        )
        span, token = (NON_RECORDING, None) if off else calls.open(routed)
        try:
            span.set_attribute("llmesh.cache_hit", False)
            events = _upstream(number)
            attempt = None if off else attempts(record, REQUEST, trail, events)
            if attempt is not None:  # as the engine: the request sent under the attempt's span
                events = attempt.events
                sending = attach(attempt.context)
                try:
                    first = await anext(events)
                finally:
                    detach(sending)
            else:
                first = await anext(events)
            async for event in events:
                first = event
            record.ttft = 0.001
            record.finish(Outcome.SUCCEEDED, 0.002)
            record.terminal = first if isinstance(first, Finish) else None
            record.usage = USAGE
            await (events.aclose() if attempt is None else attempt.close())
            CallTracer.completed(span, COMPLETED, routed)
        finally:
            CallTracer.close(span, token)
        return number

    handler = grpc.unary_unary_rpc_method_handler(behavior)
    traced = behavior
    if not off:
        traced = ServerSpans(lambda method: False).wrap_handler(handler, METHOD).unary_unary
    for number in range(count):
        await traced(number, _Context(number))
    provider.shutdown()
    return exporter


def _count(module: str, calls: int, out: Path, off: bool = False) -> int:
    args = [sys.executable, "-m", module, "--calls", str(calls)]
    if off:
        args.append("--off")
    path = out / f"callgrind.{calls}.{int(off)}"
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={path}", *args],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": HASH_SEED},
    )
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def per_call(module: str, calls: int) -> tuple[float, float]:
    """Instructions per call of ``python -m <module> --calls N`` under callgrind, traced and
    untraced (``--off``): the runs of 512 + `calls` calls less those of 512, per call."""
    base = 512
    with tempfile.TemporaryDirectory() as out:
        low = _count(module, base, Path(out))
        high = _count(module, base + calls, Path(out))
        low_off = _count(module, base, Path(out), off=True)
        high_off = _count(module, base + calls, Path(out), off=True)
    return (high - low) / calls, (high_off - low_off) / calls


Runs = Callable[[int, bool], Coroutine[Any, Any, _Encoding]]
"""A harness's `count` calls, untraced when told (its exporter holds what was sent)."""


def harness_main(
    module: str, doc: str | None, noun: str, runs: Runs, argv: Sequence[str] | None
) -> None:
    """A span-cost harness's command line: `module`'s calls (called `noun`), run once, or
    under callgrind for instructions per call (``--callgrind``)."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc)
    parser.add_argument("--calls", type=int, default=2048, help=noun)
    parser.add_argument("--off", action="store_true", help=f"the same {noun}, untraced")
    parser.add_argument("--callgrind", action="store_true", help="instructions per call")
    args = parser.parse_args(argv)
    if not args.callgrind:
        exporter = asyncio.run(runs(args.calls, args.off))
        print(f"{noun} {args.calls}, bytes sent {exporter.sent}")
        return
    traced, untraced = per_call(module, args.calls)
    print(
        f"traced: {traced:,.0f} instructions per {noun.removesuffix('s')} (2 spans); "
        f"untraced: {untraced:,.0f}; tracing's own: {traced - untraced:,.0f}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    harness_main("bench.span_cost", __doc__, "calls", lambda n, off: _calls(n, False, off), argv)


if __name__ == "__main__":
    main()
