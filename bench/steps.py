"""``python -m bench.steps``: what a route's processor steps add to a call, on a 2 KB prompt.

Part 1, the steps' own path: the processor runs in its own process on a free loopback port;
this process plays the orchestrator's steps layer: `ProcessorClient.prepare` (one
``Prepare`` RPC: render the template `TEMPLATE`, screen with every rule, then pseudonymize
with every detector) per call,
then restoring a 2 KB reply streamed in 4-character deltas. It prints the p50 and p90 of
each part over sequential calls after a warm-up. A call without steps does none of this
(the layer passes it through), so these are the added times; a ``Prepare`` without steps
or template, alternating with them, shows what the round trip alone costs.

Part 2, the issue's case through the real mesh (``--mesh``, or both by default; with
``--callgrind`` the instructions per call instead): see `bench.steps_mesh`.

Wall-clock figures on a shared machine: compare runs on the same machine, not across
machines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace

import grpc
import uvloop
from google.protobuf import struct_pb2

from bench.ports import free_port
from bench.steps_mesh import PRE_STEPS, TEMPLATE, TEMPLATE_REF, VARIABLES, prompt, run_mesh
from bench.steps_mesh import percentiles as _percentiles
from llmesh.services.common.redaction import Restorer
from llmesh.services.common.step_settings import StepsConfig, parse_steps
from llmesh.services.core.chat import Message, Role
from llmesh.services.orchestrator.steps import ProcessorClient
from llmesh.services.orchestrator.steps.client import messages_to_proto
from llmesh.services.templates import version_from_mapping
from llmesh.services.templates.convert import version_to_proto
from llmesh.v1 import processor_pb2, processor_pb2_grpc

CALLS = 1000
WARMUP = 100


def _render() -> processor_pb2.TemplateRender:
    """`TEMPLATE` as version 1, with `VARIABLES`, as the orchestrator sends it."""
    version = version_from_mapping(TEMPLATE, TEMPLATE_REF.partition("@")[0])
    variables = struct_pb2.Struct()
    variables.update(VARIABLES)
    return processor_pb2.TemplateRender(
        template=version_to_proto(replace(version, version=1)), variables=variables
    )


async def measure(address: str, echo: str) -> None:
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
    messages = (Message(Role.USER, prompt()),)
    floor_channel = grpc.aio.insecure_channel(echo)
    floor_stub = processor_pb2_grpc.ProcessorServiceStub(floor_channel)
    floor_request = processor_pb2.PrepareRequest(messages=messages_to_proto(messages))
    template = _render()
    prepared = await client.prepare(messages, steps, 5, template=template)
    reply = prepared.messages[-1].content
    deltas = [reply[i : i + 4] for i in range(0, len(reply), 4)]
    rpc: list[float] = []
    restore: list[float] = []
    bare: list[float] = []
    floor: list[float] = []
    no_steps = StepsConfig()  # the same messages both ways, no step: the round trip
    for i in range(WARMUP + CALLS):
        started = time.perf_counter()
        await floor_stub.Prepare(floor_request, timeout=5)
        if i >= WARMUP:
            floor.append(time.perf_counter() - started)
        started = time.perf_counter()
        await client.prepare(messages, no_steps, 5)
        if i >= WARMUP:
            bare.append(time.perf_counter() - started)
        started = time.perf_counter()
        prepared = await client.prepare(messages, steps, 5, template=template)
        middle = time.perf_counter()
        restorer = Restorer(prepared.pseudonyms)
        out = "".join(restorer.feed(d) for d in deltas) + restorer.flush()
        ended = time.perf_counter()
        assert out == messages[-1].content
        if i >= WARMUP:
            rpc.append(middle - started)
            restore.append(ended - middle)
    await client.aclose()
    await floor_channel.close()
    server = ", ".join(
        f"{d.step} {d.duration.ToNanoseconds() / 1e6:.3f} ms" for d in prepared.decisions
    )
    total = [a + b for a, b in zip(rpc, restore, strict=True)]
    print(f"prompt {len(messages[-1].content)} chars after template {TEMPLATE_REF}'s ", end="")
    print(f"{len(prepared.messages) - 1} messages, {len(prepared.pseudonyms)} pseudonyms,")
    print(f"reply {len(reply)} chars in {len(deltas)} deltas, {CALLS} sequential calls")
    for name, samples in (("Prepare RPC", rpc), ("restore stream", restore), ("added", total)):
        p50, p90 = _percentiles(samples)
        print(f"{name:>15}: p50 {p50:.3f} ms  p90 {p90:.3f} ms")
    print(f"   (the processor's steps themselves, last call: {server})")
    p50, p90 = _percentiles(bare)
    print(f"   (a Prepare without steps or template, alternating: p50 {p50:.3f} ms ", end="")
    print(f"p90 {p90:.3f} ms)")
    p50, p90 = _percentiles(floor)
    print(
        f"   (the same request echoed by a bare grpc.aio server, alternating: p50 {p50:.3f} ms ",
        end="",
    )
    print(f"p90 {p90:.3f} ms: the floor of any gRPC hop here)")


def run_prepare() -> None:
    """Part 1: the processor alone, called the way the steps layer calls it (both on uvloop,
    as the services run), beside a bare grpc.aio echo of the same request (`bench.grpc_echo`)."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    echo_port = free_port()
    code = (
        "import asyncio\n"
        "from llmesh.services.common.event_loop import run_service\n"
        "from llmesh.services.processor.server import serve\n"
        "async def main():\n"
        f"    server = await serve({address!r})\n"
        "    await asyncio.Event().wait()\n"
        "    await server.stop(None)\n"
        "run_service(main())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})
    echo = subprocess.Popen(
        [sys.executable, "-m", "bench.grpc_echo", "--port", str(echo_port)], env={**os.environ}
    )
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(measure(address, f"127.0.0.1:{echo_port}"))
    finally:
        for p in (proc, echo):
            p.terminate()
            p.wait(timeout=10)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.steps")
    parser.add_argument("--prepare", action="store_true", help="part 1 only")
    parser.add_argument("--mesh", action="store_true", help="part 2 only")
    parser.add_argument(
        "--unix", action="store_true", help="part 2 with the processor on a unix socket"
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="part 2 only, counting instructions per call under callgrind instead of timing",
    )
    args = parser.parse_args(argv)
    if not (args.mesh or args.callgrind):
        run_prepare()
    if not args.prepare:
        run_mesh(args.unix, args.callgrind)


if __name__ == "__main__":
    main()
