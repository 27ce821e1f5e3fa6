"""``python -m bench.steps``: what a route's redaction adds to a call, on a 2 KB prompt.

The processor runs in its own process on a free loopback port; this process plays the
orchestrator's steps layer: `ProcessorClient.prepare` (one ``Prepare`` RPC, pseudonymize with
every detector) per call, then restoring a 2 KB reply streamed in 4-character deltas. It
prints the p50 and p90 of each part over sequential calls after a warm-up. A call without
steps does none of this (the layer is not built), so these are the added times. Wall-clock
figures on a shared machine: compare runs on the same machine, not across machines.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time

from bench.system import free_port
from llmesh.services.common.redaction import Restorer
from llmesh.services.common.step_settings import parse_steps
from llmesh.services.core.chat import Message, Role
from llmesh.services.orchestrator.steps import ProcessorClient

CALLS = 1000
WARMUP = 100

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
    steps = parse_steps("bench", {"pre": ["redact"], "post": ["restore"]})
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
    for i in range(WARMUP + CALLS):
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
    server = prepared.decisions[0].duration.ToNanoseconds() / 1e6
    total = [a + b for a, b in zip(rpc, restore, strict=True)]
    print(f"prompt {len(messages[1].content)} chars, {len(prepared.pseudonyms)} pseudonyms,")
    print(f"reply {len(reply)} chars in {len(deltas)} deltas, {CALLS} sequential calls")
    for name, samples in (("Prepare RPC", rpc), ("restore stream", restore), ("added", total)):
        p50, p90 = _percentiles(samples)
        print(f"{name:>15}: p50 {p50:.3f} ms  p90 {p90:.3f} ms")
    print(f"   (the processor's redact step itself, last call: {server:.3f} ms)")


def main() -> None:
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


if __name__ == "__main__":
    main()
