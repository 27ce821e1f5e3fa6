"""``python -m bench.steps``: what a route's processor steps add to a call, on a 2 KB prompt.

Part 1, the steps' own path: the processor runs in its own process on a free loopback port;
this process plays the orchestrator's steps layer: `ProcessorClient.prepare` (one
``Prepare`` RPC: screen with every rule, then pseudonymize with every detector) per call,
then restoring a 2 KB reply streamed in 4-character deltas. It prints the p50 and p90 of
each part over sequential calls after a warm-up. A call without steps does none of this
(the layer is not built), so these are the added times; a ``Prepare`` without steps,
alternating with them, shows what the round trip alone costs.

Part 2, the issue's case through the real mesh (``--mesh``, or both by default): an
upstream that streams the prompt back word by word, a processor and an orchestrator, each
its own process; the same 2 KB streamed ``StreamChat`` on a route with
``pre: [screen, redact]``, ``post: [restore]`` and on a route without steps, alternating,
so both see the same load. It prints each route's p50 and the added p50 (the difference).

Wall-clock figures on a shared machine: compare runs on the same machine, not across
machines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.mesh import wait_serving
from bench.procs import Service, clean_env, llmesh_argv, python_argv, spawn, wait_for_port
from bench.system import free_port
from llmesh.services.common.redaction import Restorer
from llmesh.services.common.step_settings import parse_steps
from llmesh.services.core.chat import Message, Role
from llmesh.services.orchestrator.steps import ProcessorClient
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc

CALLS = 1000
WARMUP = 100
MESH_CALLS = 600
"""Calls per route through the mesh (after `MESH_WARMUP` each)."""
MESH_WARMUP = 60
PRE_STEPS = ["screen", "redact"]
"""The pre steps measured (both parts)."""

_SENTENCE = (
    "Please summarize the ticket from jane.doe@example.com about invoice 2024-117; "
    "she wrote from 10.0.0.12 and asked us to call +49 151 1234 5678 before Friday. "
)


def prompt(size: int = 2048) -> str:
    """About `size` characters of text with a few values to redact in each sentence."""
    text = ""
    while len(text) < size:
        text += _SENTENCE
    return text[:size]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=10)
    return statistics.median(samples) * 1000, q[8] * 1000


async def measure(address: str) -> None:
    steps = parse_steps("bench", {"pre": PRE_STEPS, "post": ["restore"]})
    assert steps is not None
    host, _, port = address.rpartition(":")
    for _ in range(30):  # wait for the processor to listen (it loads its tokenizers first)
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            await asyncio.sleep(0.2)
            continue
        writer.close()
        break
    else:
        raise RuntimeError(f"the processor at {address} did not listen")
    client = ProcessorClient(address)
    messages = (Message(Role.SYSTEM, "You are terse."), Message(Role.USER, prompt()))
    prepared = await client.prepare(messages, steps, 5)
    reply = prepared.messages[1].content
    deltas = [reply[i : i + 4] for i in range(0, len(reply), 4)]
    rpc: list[float] = []
    restore: list[float] = []
    bare: list[float] = []
    no_steps = replace(steps, pre=())  # the same messages both ways, no step: the round trip
    for i in range(WARMUP + CALLS):
        started = time.perf_counter()
        await client.prepare(messages, no_steps, 5)
        if i >= WARMUP:
            bare.append(time.perf_counter() - started)
        started = time.perf_counter()
        prepared = await client.prepare(messages, steps, 5)
        middle = time.perf_counter()
        restorer = Restorer(prepared.pseudonyms)
        out = "".join(restorer.feed(d) for d in deltas) + restorer.flush()
        ended = time.perf_counter()
        assert out == messages[1].content
        if i >= WARMUP:
            rpc.append(middle - started)
            restore.append(ended - middle)
    await client.aclose()
    server = ", ".join(
        f"{d.step} {d.duration.ToNanoseconds() / 1e6:.3f} ms" for d in prepared.decisions
    )
    total = [a + b for a, b in zip(rpc, restore, strict=True)]
    print(f"prompt {len(messages[1].content)} chars, {len(prepared.pseudonyms)} pseudonyms,")
    print(f"reply {len(reply)} chars in {len(deltas)} deltas, {CALLS} sequential calls")
    for name, samples in (("Prepare RPC", rpc), ("restore stream", restore), ("added", total)):
        p50, p90 = _percentiles(samples)
        print(f"{name:>15}: p50 {p50:.3f} ms  p90 {p90:.3f} ms")
    print(f"   (the processor's steps themselves, last call: {server})")
    p50, p90 = _percentiles(bare)
    print(f"   (a Prepare without steps, alternating: p50 {p50:.3f} ms  p90 {p90:.3f} ms)")


def mesh_config(directory: Path, upstream_port: int) -> Path:
    """Two routes to the same upstream model: ``plain`` without steps, ``private`` with."""
    config = {
        "providers": {
            "bench": {
                "kind": "openai-compatible",
                "base_url": f"http://127.0.0.1:{upstream_port}/v1",
                "api_key": "bench",
                "models": ["fast"],
            }
        },
        "orchestrator": {"shutdown_grace": 1},
        "cache": {"response": {"enabled": False}},
        "routes": {
            "plain": {"targets": ["bench/fast"]},
            "private": {
                "targets": ["bench/fast"],
                "steps": {"pre": PRE_STEPS, "post": ["restore"]},
            },
        },
    }
    path = directory / "llmesh.steps.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def _stream(
    stub: orchestrator_pb2_grpc.OrchestratorServiceStub, model: str
) -> tuple[str, int]:
    """One streamed call; the reply's text and its number of deltas."""
    chat = chat_pb2.ChatInput(
        model=model, messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=prompt())]
    )
    text = []
    finished = False
    async for event in stub.StreamChat(orchestrator_pb2.StreamChatRequest(input=chat), timeout=10):
        if event.HasField("text_delta"):
            text.append(event.text_delta.text)
        elif event.HasField("finish"):
            finished = True
    if not finished:
        raise RuntimeError(f"{model}: the stream ended without a finish event")
    return "".join(text), len(text)


async def measure_mesh(address: str, orchestrator: Service) -> None:
    """The same call on both routes, alternating; each route's p50 and their difference."""
    await wait_serving(orchestrator, address, timeout=60)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        plain, deltas = await _stream(stub, "plain")  # a fast upstream's reply: few deltas
        private, _ = await _stream(stub, "private")
        if private != plain:  # restored: the upstream echoed placeholders, the caller sees values
            raise RuntimeError("the route with steps did not restore the reply")
        samples: dict[str, list[float]] = {"plain": [], "private": []}
        for i in range(MESH_WARMUP + MESH_CALLS):
            for model, out in samples.items():
                started = time.perf_counter()
                await _stream(stub, model)
                if i >= MESH_WARMUP:
                    out.append(time.perf_counter() - started)
    base, _ = _percentiles(samples["plain"])
    steps, _ = _percentiles(samples["private"])
    pairs = [b - a for a, b in zip(samples["plain"], samples["private"], strict=True)]
    print(f"through the mesh: StreamChat of {len(prompt())} chars echoed back (the reply in")
    print(f"{deltas} text delta(s)), {MESH_CALLS} calls per route, alternating")
    print(f"{'no steps':>15}: p50 {base:.3f} ms")
    print(f"{'steps':>15}: p50 {steps:.3f} ms  (pre {PRE_STEPS}, post ['restore'])")
    print(f"{'added':>15}: p50 {steps - base:.3f} ms  (median of paired differences ", end="")
    print(f"{statistics.median(pairs) * 1000:.3f} ms)")


async def _wait_for_processor(service: Service, address: str, timeout: float) -> None:
    """Poll the processor's health check until it says SERVING; raise if it dies first."""
    deadline = time.perf_counter() + timeout
    request = health_pb2.HealthCheckRequest(service="llmesh.v1.ProcessorService")
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.perf_counter() < deadline:
            if not service.alive():
                raise RuntimeError(f"the processor exited:\n{service.tail()}")
            try:
                reply = await stub.Check(request, timeout=0.5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the processor was not SERVING at {address} within {timeout} s")


def run_mesh(unix: bool = False) -> None:
    """Start an upstream, a processor and an orchestrator; measure; stop them. `unix`: the
    orchestrator reaches the processor over a unix socket instead of loopback TCP."""
    with tempfile.TemporaryDirectory(prefix="llmesh-steps-") as tmp:
        directory = Path(tmp)
        upstream_port = free_port()
        socket = directory / "processor.sock"
        processor = f"unix:{socket}" if unix else f"127.0.0.1:{free_port()}"
        address = f"127.0.0.1:{free_port()}"
        env = clean_env(
            {
                "LLMESH_CONFIG": str(mesh_config(directory, upstream_port)),
                "LLMESH_DATABASE_URL": f"sqlite:///{directory / 'llmesh.db'}",
                "LLMESH_ORCHESTRATOR_ADDRESS": address,
                "LLMESH_PROCESSOR_ADDRESS": processor,
                "LLMESH_ORCHESTRATOR_METRICS_PORT": "0",
                "LLMESH_PROCESSOR_METRICS_PORT": "0",
                "LLMESH_EMULATOR_PORT": str(free_port()),
                "LLMESH_GATEWAY_PORT": str(free_port()),
            }
        )
        argvs = {
            "upstream": python_argv("bench.fast_upstream", "--port", str(upstream_port)),
            "processor": llmesh_argv("serve", "processor"),
            "orchestrator": llmesh_argv("serve", "orchestrator"),
        }
        services = []
        try:
            for name, argv in argvs.items():
                services.append(spawn(name, argv, pin=(), logs=directory, env=env))
            orchestrator = services[-1]

            async def ready_then_measure() -> None:
                await wait_for_port(services[0], upstream_port, timeout=30)
                await _wait_for_processor(services[1], processor, timeout=60)
                print(f"the orchestrator reaches the processor at {processor.split(':')[0]}")
                await measure_mesh(address, orchestrator)

            asyncio.run(ready_then_measure())
        finally:
            for service in reversed(services):
                service.stop()


def run_prepare() -> None:
    """Part 1: the processor alone, called the way the steps layer calls it."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    code = (
        "import asyncio\n"
        "from llmesh.services.processor.server import serve\n"
        "async def main():\n"
        f"    server = await serve({address!r})\n"
        "    await asyncio.Event().wait()\n"
        "    await server.stop(None)\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})
    try:
        asyncio.run(measure(address))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.steps")
    parser.add_argument("--prepare", action="store_true", help="part 1 only")
    parser.add_argument("--mesh", action="store_true", help="part 2 only")
    parser.add_argument(
        "--unix", action="store_true", help="part 2 with the processor on a unix socket"
    )
    args = parser.parse_args(argv)
    if not args.mesh:
        run_prepare()
    if not args.prepare:
        run_mesh(args.unix)


if __name__ == "__main__":
    main()
