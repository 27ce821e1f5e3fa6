"""``python -m bench.grpc_floor --port P --paced TTFT_MS:ITL_MS``: grpc.aio on its own.

A grpc.aio server whose ``StreamChat`` paces its own reply the way the paced upstream does
(a wait for the first token, then one word per message on an absolute schedule, then a
finish event), with no upstream, no HTTP and no relaying at all. At a given number of paced
streams its CPU is what a Python gRPC server spends on sending that many messages (and on
the timers that pace them, as the upstream spends on its own), before any relay work. The
suite runs it on llmesh's core beside the bare relay, at the paced level where llmesh
stopped holding, so the table shows the floor under the floor.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from bench.bare_relay import run_on_uvloop
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc


class PacedFloor(orchestrator_pb2_grpc.OrchestratorServiceServicer):  # type: ignore[misc]
    """``StreamChat`` only: one word of the prompt per message, paced, then a finish."""

    def __init__(self, ttft: float, itl: float) -> None:
        self._ttft = ttft
        self._itl = itl

    async def StreamChat(
        self, request: orchestrator_pb2.StreamChatRequest, context: Any
    ) -> AsyncIterator[orchestrator_pb2.StreamChatResponse]:
        words = " ".join(m.content for m in request.input.messages).split()
        loop = asyncio.get_running_loop()
        start = loop.time() + self._ttft
        for i, word in enumerate(words):
            delay = start + i * self._itl - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            event = orchestrator_pb2.StreamChatResponse()
            event.text_delta.text = f" {word}" if i else word
            yield event
        finish = orchestrator_pb2.StreamChatResponse()
        finish.finish.reason = chat_pb2.FINISH_REASON_STOP
        yield finish


def main(argv: Sequence[str] | None = None) -> None:
    """Serve on uvloop until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_floor")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--paced", required=True, help="TTFT_MS:ITL_MS, as the paced upstream")
    args = parser.parse_args(argv)
    ttft_ms, _, itl_ms = args.paced.partition(":")
    run_on_uvloop(PacedFloor(float(ttft_ms) / 1000, float(itl_ms) / 1000), args.port)


if __name__ == "__main__":
    main()
