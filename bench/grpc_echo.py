"""``python -m bench.grpc_echo --port P``: the floor under a ``Prepare`` round trip.

A grpc.aio server on uvloop whose ``ProcessorService.Prepare`` answers the request's messages
back unchanged: no llmesh code (no key check, no request guard, no step, no telemetry), only
grpc.aio decoding and encoding the same messages. `bench.steps` calls it with the same
request as the steps layer sends, alternating with the real processor, so the round trip a
Python gRPC hop costs on the machine is measured beside what the processor adds to it.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import Any

import grpc

from llmesh.v1 import processor_pb2, processor_pb2_grpc


class Echo(processor_pb2_grpc.ProcessorServiceServicer):  # type: ignore[misc]
    """``Prepare`` only: the request's messages, answered back."""

    async def Prepare(
        self, request: processor_pb2.PrepareRequest, context: Any
    ) -> processor_pb2.PrepareResponse:
        return processor_pb2.PrepareResponse(messages=request.messages)


async def serve(port: int) -> None:
    """Serve `Echo` on 127.0.0.1:`port` until cancelled."""
    server = grpc.aio.server()
    processor_pb2_grpc.add_ProcessorServiceServicer_to_server(Echo(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        await server.wait_for_termination()
    finally:
        await server.stop(None)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve on uvloop until killed."""
    import uvloop

    parser = argparse.ArgumentParser(prog="python -m bench.grpc_echo")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.port))


if __name__ == "__main__":
    main()
