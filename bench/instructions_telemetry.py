"""``python -m bench --instructions-telemetry``: telemetry's cost in instructions per call.

The load-independent twin of ``python -m bench --telemetry``: for each of its variants
(telemetry off; metrics only, the call log on; metrics and every call traced, exported over
OTLP/gRPC), the orchestrator runs under callgrind and its instructions per unary gRPC
``Chat`` call are counted, then the gateway runs under callgrind (an orchestrator of the same
variant running normally behind it) and its instructions per ``/v1/chat/completions`` call
are counted. Spans go to an OTLP receiver in this process (not counted). Counters are dumped
only once the receiver holds the span that ends last for every counted call (the gRPC server
span, the HTTP server span), so the export of the calls' spans, done by a background thread,
is inside the count.

What a service does on its own, whether called or not (the ledger's flushes, timers,
pollers, the export thread's wake-ups), runs per second, not per call; under valgrind a
call takes tens of milliseconds, so that work would be counted in proportion to how slowly
the machine ran the calls (runs of the same code used to differ by 10 %). Each counted
server is therefore also counted for `IDLE_SECONDS` with no calls, and that rate times the
calls' wall time is taken off their total: what is left is the calls' own work. Both the
net and the raw figures are reported.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc

from bench.clients import GrpcPath, HttpPath, http_session, prompt_of
from bench.instructions import CALL_TIMEOUT, UNARY_CALLS, _control, _total, _valgrind
from bench.mesh import PROVIDER, MeshLauncher
from bench.ports import free_port
from bench.procs import Service, llmesh_argv, python_argv, start
from bench.report import write_json
from bench.settings import BenchSettings
from bench.system import Pinning
from bench.telemetry import variant_env
from bench.telemetry_report import VARIANTS
from bench.upstream import FAST_MODEL, start_upstream
from bench.workloads import Log
from llmesh.services.telemetry.otlp import OtlpReceiver

WARM_CALLS = 5
IDLE_SECONDS = 10.0
"""How long each counted server is counted with no calls (its own work per second)."""
START_TIMEOUT = 600.0
"""Seconds a server under valgrind may take to listen (a traced one imports more, slowly)."""
EXPORT_TIMEOUT = 180.0
"""Seconds the spans of the counted calls may take to reach the receiver (under valgrind)."""

_LAST_SPAN = {
    "orchestrator": ("llmesh-orchestrator", "/llmesh.v1.OrchestratorService/Chat", 2),
    "gateway": ("llmesh-gateway", "POST /v1/chat/completions", 2),
}
"""(service, name, kind) of the span each counted call ends last, per counted server."""


@dataclass(frozen=True)
class Counted:
    """One server's count of `calls` calls, and of an idle stretch right after."""

    calls: int
    total: int
    """Instructions while the calls ran (and their spans were exported)."""
    seconds: float
    """The calls' wall time."""
    idle_total: int
    idle_seconds: float

    @property
    def idle_rate(self) -> float:
        """The server's own instructions per second, with no calls."""
        return self.idle_total / self.idle_seconds

    @property
    def raw(self) -> float:
        """Instructions per call, the server's own per-second work included."""
        return self.total / self.calls

    @property
    def per_call(self) -> float:
        """Instructions per call, less the idle rate over the calls' wall time."""
        return (self.total - self.idle_rate * self.seconds) / self.calls


@dataclass
class VariantCount:
    """Instructions per call of one variant."""

    variant: str
    grpc: Counted
    """The orchestrator's, per unary gRPC ``Chat`` call."""
    gateway: Counted
    """The gateway's, per ``/v1/chat/completions`` call (the orchestrator not counted)."""

    @property
    def grpc_per_call(self) -> float:
        return self.grpc.per_call

    @property
    def gateway_per_call(self) -> float:
        return self.gateway.per_call


def _ended(receiver: OtlpReceiver, server: str) -> int:
    service, name, kind = _LAST_SPAN[server]
    return sum(1 for s in receiver.spans if (s.service, s.name, s.kind) == (service, name, kind))


async def _exported(receiver: OtlpReceiver, server: str, calls: int, traced: bool) -> None:
    """Until the receiver holds the last span of `calls` calls (nothing to wait for untraced)."""
    if traced:
        await receiver.wait_for(lambda _: _ended(receiver, server) >= calls, EXPORT_TIMEOUT)


async def _counted(
    server: str,
    service: Service,
    out: Path,
    call: Callable[[], Awaitable[None]],
    receiver: OtlpReceiver,
    traced: bool,
) -> Counted:
    for _ in range(WARM_CALLS):  # warm: connections, caches, the first-call paths
        await call()
    await _exported(receiver, server, WARM_CALLS, traced)
    pid = service.pid
    await asyncio.to_thread(_control, "-z", str(pid))
    started = time.monotonic()
    for _ in range(UNARY_CALLS):
        await call()
    await _exported(receiver, server, WARM_CALLS + UNARY_CALLS, traced)
    await asyncio.to_thread(_control, "-d", str(pid))  # part 1: the calls (a dump zeroes)
    ended = time.monotonic()
    await asyncio.sleep(IDLE_SECONDS)
    await asyncio.to_thread(_control, "-d", str(pid))  # part 2: nothing but the server's own
    idle = time.monotonic() - ended
    return Counted(
        UNARY_CALLS,
        _total(out, server, pid, 1),
        ended - started,
        _total(out, server, pid, 2),
        idle,
    )


async def _grpc(
    env: dict[str, str], pinning: Pinning, work: Path, receiver: OtlpReceiver, traced: bool
) -> Counted:
    port = int(env["LLMESH_ORCHESTRATOR_ADDRESS"].rpartition(":")[2])
    argv = python_argv("llmesh.services.cli", "serve", "orchestrator")
    service = await start(
        "orchestrator",
        [*_valgrind(work, "orchestrator"), *argv],
        port=port,
        pin=pinning.prefix(pinning.service_core),
        logs=work,
        env=env,
        timeout=START_TIMEOUT,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            model = f"{PROVIDER}/{FAST_MODEL}"
            path = GrpcPath("llmesh", channel, model, prompt_of(10), CALL_TIMEOUT)
            return await _counted("orchestrator", service, work, path.unary, receiver, traced)
    finally:
        service.stop(timeout=30)


async def _gateway(
    env: dict[str, str], pinning: Pinning, work: Path, receiver: OtlpReceiver, traced: bool
) -> Counted:
    port = int(env["LLMESH_ORCHESTRATOR_ADDRESS"].rpartition(":")[2])
    gateway_port = int(env["LLMESH_GATEWAY_PORT"])
    pin = pinning.prefix(pinning.service_core)
    orchestrator = await start(
        "orchestrator", llmesh_argv("serve", "orchestrator"), port=port, pin=pin, logs=work, env=env
    )
    try:
        gateway = await start(
            "gateway",
            [*_valgrind(work, "gateway"), *python_argv("llmesh.services.cli", "serve", "gateway")],
            port=gateway_port,
            pin=pin,
            logs=work,
            env=env,
            timeout=START_TIMEOUT,
        )
        session = http_session(0)
        try:
            url = f"http://127.0.0.1:{gateway_port}/v1"
            path = HttpPath(
                "gateway", session, url, f"{PROVIDER}/{FAST_MODEL}", prompt_of(10), CALL_TIMEOUT
            )
            return await _counted("gateway", gateway, work, path.unary, receiver, traced)
        finally:
            await session.close()
            gateway.stop(timeout=30)
    finally:
        orchestrator.stop()


def _table(counts: list[VariantCount]) -> str:
    off = counts[0]
    lines = [
        "| instructions per call (user space, callgrind; the server's idle rate taken off) "
        "| gRPC `Chat` (orchestrator) | vs off | gateway `/v1` (gateway only) | vs off |",
        "|---|---:|---:|---:|---:|",
    ]
    for c in counts:
        lines.append(
            f"| {c.variant} | {c.grpc_per_call:,.0f} | {c.grpc_per_call - off.grpc_per_call:+,.0f} "
            f"| {c.gateway_per_call:,.0f} | {c.gateway_per_call - off.gateway_per_call:+,.0f} |"
        )
    lines += [
        "",
        "| the same, raw (idle rate not taken off) | gRPC: per call | idle instructions/s "
        "| calls' seconds | gateway: per call | idle instructions/s | calls' seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in counts:
        g, h = c.grpc, c.gateway
        lines.append(
            f"| {c.variant} | {g.raw:,.0f} | {g.idle_rate:,.0f} | {g.seconds:.1f} "
            f"| {h.raw:,.0f} | {h.idle_rate:,.0f} | {h.seconds:.1f} |"
        )
    return "\n".join(lines)


async def run_instructions_telemetry(pinning: Pinning, out_dir: Path, log: Log) -> tuple[str, Path]:
    """Count each variant's instructions per gRPC call and per gateway call."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install valgrind)")
    settings = BenchSettings()
    counts: list[VariantCount] = []
    receiver = await OtlpReceiver().start()
    try:
        with tempfile.TemporaryDirectory(prefix="llmesh-instructions-telemetry-") as tmp:
            work = Path(tmp)
            upstream = await start_upstream("emulator", settings, pinning, work)
            try:
                launcher = MeshLauncher(work, upstream.base_url, pinning)
                for variant in VARIANTS:
                    traced = variant == VARIANTS[2]
                    legs = []
                    for leg in (_grpc, _gateway):
                        receiver.spans.clear()
                        env = {
                            **launcher.env(f"127.0.0.1:{free_port()}", free_port()),
                            **variant_env(variant, receiver.endpoint),
                        }
                        log(f"instructions: {variant}, {leg.__name__[1:]} under callgrind")
                        legs.append(await leg(env, pinning, work, receiver, traced))
                        log(
                            f"instructions: {variant}, {leg.__name__[1:]}: "
                            f"{legs[-1].per_call:,.0f} a call ({legs[-1].raw:,.0f} raw)"
                        )
                    counts.append(VariantCount(variant, *legs))
            finally:
                upstream.stop()
    finally:
        await receiver.stop()
    table = _table(counts)
    header = f"llmesh telemetry's instructions per call; {pinning.note}"
    path = write_json(
        out_dir,
        {
            "mode": "instructions-telemetry",
            "counts": [
                {
                    **asdict(c),
                    "grpc_per_call": c.grpc_per_call,
                    "gateway_per_call": c.gateway_per_call,
                }
                for c in counts
            ],
            "table": table,
        },
        "instructions-telemetry-",
    )
    return header + "\n\n" + table, path
