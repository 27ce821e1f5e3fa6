"""``python -m bench --instructions``: llmesh's cost in instructions, against the bare relay.

Timings on a shared machine drift by a fifth between runs; instruction counts do not. This
runs the orchestrator, then `bench.bare_relay`, under valgrind's callgrind on the service
core, in front of the emulator, and counts the user-space instructions each spends on a
fixed load: sequential unary ``Chat`` calls (short replies) and a few concurrent paced
``StreamChat`` calls (one token per upstream read, so one gRPC message per token). Then it
runs the gateway under callgrind, in front of an orchestrator running normally, and counts
its instructions per OpenAI-compatible ``/v1/chat/completions`` call (short replies).
Both the orchestrator and the gateway are counted twice: with telemetry off, and with
metrics only (`metrics_env`: Prometheus on, the call log and tracing off), so the
difference is what the metrics cost per call (each metrics mesh is scraped once before
counting, to check that it records). Counters are zeroed after a warm-up and dumped right
after the load (``callgrind_control``), so start-up is not counted. It prints instructions
per unary call and per streamed text message for both servers, and their ratio, the
gateway's per call, and what metrics add to each: use it to compare two versions of the
code on a noisy machine.

Kernel time (``sendmsg`` and the like) is not counted. Work done on a timer is counted per
timer tick, and under valgrind everything runs about fifty times slower, so time-batched
work (the ledger's writes every 50 ms) looks costlier per call than it is at full speed.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc

from bench.clients import GrpcPath, HttpPath, http_session, prompt_of
from bench.mesh import PROVIDER, MeshLauncher
from bench.ports import free_port
from bench.procs import Service, clean_env, llmesh_argv, python_argv, start
from bench.report import write_json
from bench.settings import BenchSettings
from bench.system import Pinning
from bench.upstream import FAST_MODEL, PACED_MODEL, start_upstream
from bench.workloads import Log

UNARY_CALLS = 200
"""Sequential unary calls counted."""
STREAMS = 4
"""Concurrent paced streams, each run `STREAM_ROUNDS` times in a row."""
STREAM_ROUNDS = 2
START_TIMEOUT = 900.0
"""Seconds a server under valgrind may take to listen."""
CALL_TIMEOUT = 300.0
"""Deadline of one call (everything runs about fifty times slower under valgrind)."""
METRICS = "llmesh-metrics"
"""The name of the orchestrator counted with metrics on."""


def metrics_env(metrics_port: int) -> dict[str, str]:
    """Metrics only: Prometheus on (the orchestrator's ``/metrics`` at `metrics_port`), the
    call log and tracing off."""
    return {
        "OTEL_METRICS_EXPORTER": "prometheus",
        "LLMESH_ORCHESTRATOR_METRICS_PORT": str(metrics_port),
        "LLMESH_PROCESSOR_METRICS_PORT": "0",
        "LLMESH_CALL_LOG": "false",
    }


@dataclass
class Count:
    """Instructions one server spent on the load."""

    server: str
    per_call: float
    per_message: float
    calls: int
    messages: int


@dataclass
class Metered:
    """Instructions with metrics on: the orchestrator's count and the gateway's per call."""

    orchestrator: Count
    gateway_per_call: float | None


def _valgrind(out: Path, name: str) -> list[str]:
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/callgrind.{name}.%p"]


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True, timeout=60)


def _total(out: Path, name: str, pid: int, part: int) -> int:
    """The instruction total of dump `part` of process `pid`."""
    path = out / f"callgrind.{name}.{pid}.{part}"
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


async def _streams(path: GrpcPath, streams: int, rounds: int) -> int:
    """Run `streams` paced streams `rounds` times each; returns the text messages received."""
    messages = 0

    def count(_at: float, _tokens: int) -> None:
        nonlocal messages
        messages += 1

    async def one() -> None:
        for _ in range(rounds):
            await path.stream(count)

    await asyncio.gather(*(one() for _ in range(streams)))
    return messages


async def _count(
    name: str, service: Service, port: int, out: Path, metrics_url: str | None = None
) -> Count:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        model = f"{PROVIDER}/{FAST_MODEL}"
        unary = GrpcPath(name, channel, model, prompt_of(10), CALL_TIMEOUT)
        paced = GrpcPath(name, channel, f"{PROVIDER}/{PACED_MODEL}", prompt_of(100), CALL_TIMEOUT)
        for _ in range(5):  # warm: connections, caches, the first-call paths
            await unary.unary()
        await _streams(paced, 1, 1)
        if metrics_url is not None:
            await asyncio.to_thread(_scrape, metrics_url, "llmesh_calls_total")
        pid = service.pid
        await asyncio.to_thread(_control, "-z", str(pid))
        for _ in range(UNARY_CALLS):
            await unary.unary()
        await asyncio.to_thread(_control, "-d", str(pid))
        await asyncio.to_thread(_control, "-z", str(pid))
        messages = await _streams(paced, STREAMS, STREAM_ROUNDS)
        await asyncio.to_thread(_control, "-d", str(pid))
    calls_total = _total(out, name, pid, 1)
    stream_total = _total(out, name, pid, 2)
    return Count(name, calls_total / UNARY_CALLS, stream_total / messages, UNARY_CALLS, messages)


async def _count_http(
    service: Service, url: str, out: Path, name: str = "gateway", *, metrics: bool = False
) -> float:
    """Instructions `service` (named `name` in its dumps) spends per ``/v1/chat/completions``
    call at `url` (with `metrics`, ``/metrics`` is scraped first to check that it records)."""
    session = http_session(0)
    try:
        path = HttpPath(
            name, session, f"{url}/v1", f"{PROVIDER}/{FAST_MODEL}", prompt_of(10), CALL_TIMEOUT
        )
        for _ in range(5):
            await path.unary()
        if metrics:
            await asyncio.to_thread(_scrape, f"{url}/metrics", "http_server_request_duration")
        await asyncio.to_thread(_control, "-z", str(service.pid))
        for _ in range(UNARY_CALLS):
            await path.unary()
        await asyncio.to_thread(_control, "-d", str(service.pid))
    finally:
        await session.close()
    return _total(out, name, service.pid, 1) / UNARY_CALLS


def _scrape(url: str, expect: str) -> None:
    """Fail unless ``GET url`` answers metrics text holding `expect` (the leg records)."""
    with urllib.request.urlopen(url, timeout=CALL_TIMEOUT) as reply:
        text = reply.read().decode()
    if expect not in text:
        raise RuntimeError(f"{url}: no {expect} in the metrics: metrics are not recording")


def _table(
    counts: list[Count],
    gateway_per_call: float | None = None,
    metered: Metered | None = None,
    direct_per_call: float | None = None,
) -> str:
    llmesh, bare = counts
    lines = [
        "| instructions (user space, callgrind) | llmesh | bare relay | llmesh / bare |",
        "|---|---:|---:|---:|",
        f"| per unary call ({llmesh.calls} calls, 10-token replies) | {llmesh.per_call:,.0f} | "
        f"{bare.per_call:,.0f} | {llmesh.per_call / bare.per_call:.2f}x |",
        f"| per streamed text message ({STREAMS} x {STREAM_ROUNDS} paced streams) | "
        f"{llmesh.per_message:,.0f} | {bare.per_message:,.0f} | "
        f"{llmesh.per_message / bare.per_message:.2f}x |",
    ]
    if gateway_per_call is not None:
        lines.append(
            f"| gateway, per `/v1/chat/completions` call ({UNARY_CALLS} calls; the orchestrator "
            f"behind it not counted) | {gateway_per_call:,.0f} | — | — |"
        )
    if direct_per_call is not None:
        lines.append(
            f"| direct HTTP path, per `/v1/chat/completions` call ({UNARY_CALLS} calls; the "
            f"orchestrator's whole process) | {direct_per_call:,.0f} | — | — |"
        )
    if metered is not None:
        on = metered.orchestrator
        lines += [
            "",
            "| instructions, metrics only (Prometheus) | telemetry off | metrics on | added |",
            "|---|---:|---:|---:|",
            f"| orchestrator, per unary call | {llmesh.per_call:,.0f} | {on.per_call:,.0f} | "
            f"{on.per_call - llmesh.per_call:+,.0f} |",
            f"| orchestrator, per streamed text message | {llmesh.per_message:,.0f} | "
            f"{on.per_message:,.0f} | {on.per_message - llmesh.per_message:+,.0f} |",
        ]
        if gateway_per_call is not None and metered.gateway_per_call is not None:
            added = metered.gateway_per_call - gateway_per_call
            lines.append(
                f"| gateway, per `/v1/chat/completions` call | {gateway_per_call:,.0f} | "
                f"{metered.gateway_per_call:,.0f} | {added:+,.0f} |"
            )
    return "\n".join(lines)


async def _gateway(
    launcher: MeshLauncher, pinning: Pinning, work: Path, log: Log, *, metrics: bool = False
) -> float:
    """The gateway under callgrind (with metrics on or off), in front of an orchestrator that
    runs normally (metrics off)."""
    port, gateway_port = free_port(), free_port()
    env = launcher.env(f"127.0.0.1:{port}", gateway_port)
    pin = pinning.prefix(pinning.service_core)
    orchestrator = await start(
        "orchestrator", llmesh_argv("serve", "orchestrator"), port=port, pin=pin, logs=work, env=env
    )
    name = "gateway-metrics" if metrics else "gateway"
    gateway_env = {**env, **metrics_env(0)} if metrics else env
    try:
        log(f"instructions: {name} under callgrind (about a minute)")
        gateway = await start(
            name,
            [*_valgrind(work, name), *python_argv("llmesh.services.cli", "serve", "gateway")],
            port=gateway_port,
            pin=pin,
            logs=work,
            env=gateway_env,
            timeout=START_TIMEOUT,
        )
        try:
            url = f"http://127.0.0.1:{gateway_port}"
            return await _count_http(gateway, url, work, name, metrics=metrics)
        finally:
            gateway.stop(timeout=30)
    finally:
        orchestrator.stop()


async def _direct(upstream_url: str, pinning: Pinning, work: Path, log: Log) -> float:
    """The orchestrator serving the direct HTTP path, under callgrind: its instructions per
    ``/v1/chat/completions`` call there (the HTTP side and the call, in one process)."""
    launcher = MeshLauncher(work, upstream_url, pinning, direct_http=True)
    env = launcher.env(f"127.0.0.1:{free_port()}", free_port())
    port = int(env["LLMESH_ORCHESTRATOR_HTTP_PORT"])
    log("instructions: the direct HTTP path under callgrind (about a minute)")
    service = await start(
        "direct",
        [*_valgrind(work, "direct"), *python_argv("llmesh.services.cli", "serve", "orchestrator")],
        port=port,
        pin=pinning.prefix(pinning.service_core),
        logs=work,
        env=env,
        timeout=START_TIMEOUT,
    )
    try:
        return await _count_http(service, f"http://127.0.0.1:{port}", work, "direct")
    finally:
        service.stop(timeout=30)


LEGS = ("llmesh", METRICS, "bare", "gateway", "gateway-metrics", "direct")
"""What ``--instructions`` counts: the orchestrator's gRPC calls and streams (telemetry off,
then metrics only), the bare relay's, the gateway's ``/v1`` calls (off, then metrics only)
and the direct HTTP path's."""


async def run_instructions(
    pinning: Pinning, out_dir: Path, log: Log, legs: tuple[str, ...] = LEGS
) -> tuple[str, Path]:
    """Count the servers' instructions for `legs`; returns the table and the JSON."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install valgrind)")
    settings = BenchSettings()
    counts: list[Count] = []
    gateway_per_call = gateway_metered = direct_per_call = None
    with tempfile.TemporaryDirectory(prefix="llmesh-instructions-") as tmp:
        work = Path(tmp)
        upstream = await start_upstream("emulator", settings, pinning, work)
        try:
            launcher = MeshLauncher(work, upstream.base_url, pinning)
            port = free_port()
            env = launcher.env(f"127.0.0.1:{port}", free_port())
            serve = python_argv("llmesh.services.cli", "serve", "orchestrator")
            servers: list[tuple[str, int, list[str], dict[str, str], str | None]]
            servers = [("llmesh", port, serve, env, None)]
            metered_port, metrics_port = free_port(), free_port()
            metered_env = {
                **launcher.env(f"127.0.0.1:{metered_port}", free_port()),
                **metrics_env(metrics_port),
            }
            metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
            servers.append((METRICS, metered_port, serve, metered_env, metrics_url))
            bare_port = free_port()
            bare_argv = python_argv(
                "bench.bare_relay", "--port", str(bare_port), "--upstream", upstream.base_url
            )
            servers.append(("bare", bare_port, bare_argv, clean_env({}), None))
            for name, server_port, argv, server_env, url in servers:
                if name not in legs:
                    continue
                log(f"instructions: {name} under callgrind (about a minute)")
                service = await start(
                    name,
                    [*_valgrind(work, name), *argv],
                    port=server_port,
                    pin=pinning.prefix(pinning.service_core),
                    logs=work,
                    env=server_env,
                    timeout=START_TIMEOUT,
                )
                try:
                    counts.append(await _count(name, service, server_port, work, url))
                finally:
                    service.stop(timeout=30)
            if "gateway" in legs:
                gateway_per_call = await _gateway(launcher, pinning, work, log)
            if "gateway-metrics" in legs:
                gateway_metered = await _gateway(launcher, pinning, work, log, metrics=True)
            if "direct" in legs:
                direct_per_call = await _direct(upstream.base_url, pinning, work, log)
        finally:
            upstream.stop()
    found = [c for c in counts if c.server == METRICS]
    counts = [c for c in counts if c.server != METRICS]
    metered = Metered(found[0], gateway_metered) if found else None
    if len(counts) == 2:
        table = _table(counts, gateway_per_call, metered, direct_per_call)
    else:
        rows: list[tuple[str, float | None]] = [
            (f"{c.server}: per unary call", c.per_call) for c in [*counts, *found]
        ]
        rows += [("gateway: per `/v1` call", gateway_per_call)]
        rows += [("gateway, metrics on: per `/v1` call", gateway_metered)]
        rows += [("direct HTTP path: per `/v1` call", direct_per_call)]
        table = "\n".join(f"| {name} | {n:,.0f} |" for name, n in rows if n is not None)
    header = f"llmesh instruction counts against the bare relay; {pinning.note}"
    path = write_json(
        out_dir,
        {
            "mode": "instructions",
            "counts": [asdict(c) for c in counts],
            "gateway_per_call": gateway_per_call,
            "metrics": None if metered is None else asdict(metered),
            "direct_per_call": direct_per_call,
            "table": table,
        },
        "instructions-",
    )
    return header + "\n\n" + table, path
