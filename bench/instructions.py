"""``python -m bench --instructions``: llmesh's cost in instructions, against the bare relay.

Timings on a shared machine drift by a fifth between runs; instruction counts do not. This
runs the orchestrator, then `bench.bare_relay`, under valgrind's callgrind on the service
core, in front of the emulator, and counts the user-space instructions each spends on a
fixed load: sequential unary ``Chat`` calls (short replies) and a few concurrent paced
``StreamChat`` calls (one token per upstream read, so one gRPC message per token). Counters
are zeroed after a warm-up and dumped right after the load (``callgrind_control``), so
start-up is not counted. It prints instructions per unary call and per streamed message for
both, and their ratio: use it to compare two versions of the code on a noisy machine.

Kernel time (``sendmsg`` and the like) is not counted. Work done on a timer is counted per
timer tick, and under valgrind everything runs about fifty times slower, so time-batched
work (the ledger's writes every 50 ms) looks costlier per call than it is at full speed.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc

from bench.clients import prompt_of
from bench.mesh import PROVIDER, MeshLauncher
from bench.procs import Service, clean_env, python_argv, spawn, wait_for_port
from bench.report import write_json
from bench.settings import BenchSettings
from bench.system import Pinning, free_port
from bench.upstream import FAST_MODEL, PACED_MODEL, start_upstream
from bench.workloads import Log

UNARY_CALLS = 200
"""Sequential unary calls counted."""
STREAMS = 4
"""Concurrent paced streams, each run `STREAM_ROUNDS` times in a row."""
STREAM_ROUNDS = 2
START_TIMEOUT = 180.0
"""Seconds a server under valgrind may take to listen."""


@dataclass
class Count:
    """Instructions one server spent on the load."""

    server: str
    per_call: float
    per_message: float
    calls: int
    messages: int


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


async def _unary(stub: orchestrator_pb2_grpc.OrchestratorServiceStub, calls: int) -> None:
    chat = chat_pb2.ChatInput(
        model=f"{PROVIDER}/{FAST_MODEL}",
        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=prompt_of(10))],
    )
    for _ in range(calls):
        await stub.Chat(orchestrator_pb2.ChatRequest(input=chat), timeout=120)


async def _streams(
    stub: orchestrator_pb2_grpc.OrchestratorServiceStub, streams: int, rounds: int
) -> int:
    chat = chat_pb2.ChatInput(
        model=f"{PROVIDER}/{PACED_MODEL}",
        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=prompt_of(100))],
    )
    request = orchestrator_pb2.StreamChatRequest(input=chat)
    messages = 0

    async def one() -> None:
        nonlocal messages
        for _ in range(rounds):
            async for _event in stub.StreamChat(request, timeout=300):
                messages += 1

    await asyncio.gather(*(one() for _ in range(streams)))
    return messages


async def _count(name: str, service: Service, port: int, out: Path) -> Count:
    await wait_for_port(service, port, timeout=START_TIMEOUT)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        await _unary(stub, 5)  # warm: connections, caches, the first-call paths
        await _streams(stub, 1, 1)
        pid = service.pid
        await asyncio.to_thread(_control, "-z", str(pid))
        await _unary(stub, UNARY_CALLS)
        await asyncio.to_thread(_control, "-d", str(pid))
        await asyncio.to_thread(_control, "-z", str(pid))
        messages = await _streams(stub, STREAMS, STREAM_ROUNDS)
        await asyncio.to_thread(_control, "-d", str(pid))
    calls_total = _total(out, name, pid, 1)
    stream_total = _total(out, name, pid, 2)
    return Count(name, calls_total / UNARY_CALLS, stream_total / messages, UNARY_CALLS, messages)


def _table(counts: list[Count]) -> str:
    llmesh, bare = counts
    lines = [
        "| instructions (user space, callgrind) | llmesh | bare relay | llmesh / bare |",
        "|---|---:|---:|---:|",
        f"| per unary call ({llmesh.calls} calls, 10-token replies) | {llmesh.per_call:,.0f} | "
        f"{bare.per_call:,.0f} | {llmesh.per_call / bare.per_call:.2f}x |",
        f"| per streamed message ({STREAMS} x {STREAM_ROUNDS} paced streams) | "
        f"{llmesh.per_message:,.0f} | {bare.per_message:,.0f} | "
        f"{llmesh.per_message / bare.per_message:.2f}x |",
    ]
    return "\n".join(lines)


async def run_instructions(pinning: Pinning, out_dir: Path, log: Log) -> tuple[str, Path]:
    """Count both servers' instructions; returns the table and the JSON path."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install valgrind)")
    settings = BenchSettings()
    counts: list[Count] = []
    with tempfile.TemporaryDirectory(prefix="llmesh-instructions-") as tmp:
        work = Path(tmp)
        upstream = await start_upstream("emulator", settings, pinning, work)
        try:
            launcher = MeshLauncher(work, upstream.base_url, pinning)
            port = free_port()
            env = launcher.env(f"127.0.0.1:{port}", free_port())
            servers = [
                ("llmesh", port, python_argv("services.cli", "serve", "orchestrator"), env),
            ]
            bare_port = free_port()
            bare_argv = python_argv(
                "bench.bare_relay", "--port", str(bare_port), "--upstream", upstream.base_url
            )
            servers.append(("bare", bare_port, bare_argv, clean_env({})))
            for name, server_port, argv, server_env in servers:
                log(f"instructions: {name} under callgrind (about a minute)")
                service = spawn(
                    name,
                    [*_valgrind(work, name), *argv],
                    pin=pinning.prefix(pinning.service_core),
                    logs=work,
                    env=server_env,
                )
                try:
                    counts.append(await _count(name, service, server_port, work))
                finally:
                    service.stop(timeout=30)
        finally:
            upstream.stop()
    table = _table(counts)
    header = f"llmesh instruction counts against the bare relay; {pinning.note}"
    path = write_json(
        out_dir,
        {"mode": "instructions", "counts": [asdict(c) for c in counts], "table": table},
        "instructions-",
    )
    return header + "\n\n" + table, path
