"""Building and running the processor's gRPC server."""

from __future__ import annotations

import asyncio
import logging
import signal

from llmesh.v1 import processor_pb2_grpc

from services.common import heap
from services.common.grpc_server import RunningServer, ServiceBinding, start_server
from services.processor.servicer import ProcessorServicer
from services.processor.tokenizers import Tokenizers

log = logging.getLogger("llmesh.processor")

SERVICE_NAME = "llmesh.v1.ProcessorService"


async def serve(
    address: str, *, tokenizers: Tokenizers | None = None, reuse_port: bool = False
) -> RunningServer:
    """Load the tokenizers, then start the processor on `address` (``host:0`` allowed).

    Loading happens before the server accepts calls, so no call waits for it. It runs on
    the event loop (under a second, once): the loader holds the GIL, so a thread would not
    free the loop, and the loader briefly changes the process's warning filters.
    """
    tokenizers = tokenizers or Tokenizers()
    seconds = tokenizers.warm()
    log.info("tokenizers loaded in %.2f s", seconds)
    return await start_server(
        [
            ServiceBinding(
                processor_pb2_grpc.add_ProcessorServiceServicer_to_server,
                ProcessorServicer(tokenizers),
                SERVICE_NAME,
            )
        ],
        address,
        reuse_port=reuse_port,
    )


async def run(address: str, *, grace: float = 5.0) -> None:
    """Serve until SIGINT or SIGTERM, then let in-flight calls finish within `grace`."""
    running = await serve(address)
    heap.settle()
    host = address.rpartition(":")[0]
    print(f"processor listening on {host}:{running.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await running.set_serving([SERVICE_NAME], False)
        await running.server.stop(grace)
