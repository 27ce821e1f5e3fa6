"""``python -m bench.bare_relay --port P --upstream URL``: the floor of a Python gRPC relay.

The least a grpc.aio server can do to answer llmesh's ``Chat`` and ``StreamChat`` from an
OpenAI-compatible upstream over aiohttp. ``Chat`` streams the completion (as llmesh does),
joins the text deltas and replies; ``StreamChat`` sends the text of each read as one
message (llmesh's coalescing) and a finish event at ``[DONE]``. No authentication,
validation, routing, retries, breakers, accounting or usage: none of what llmesh is for.
The suite runs it on llmesh's core as a reference path, so the table shows how much of
llmesh's cost is the gRPC and HTTP machinery every such relay pays, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import grpc
import orjson

from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc

_ROLES = {
    chat_pb2.ROLE_SYSTEM: "system",
    chat_pb2.ROLE_USER: "user",
    chat_pb2.ROLE_ASSISTANT: "assistant",
}


class BareRelay(orchestrator_pb2_grpc.OrchestratorServiceServicer):  # type: ignore[misc]
    """``Chat`` only, straight through to ``{upstream}/chat/completions``."""

    def __init__(self, upstream: str) -> None:
        self._url = upstream.rstrip("/") + "/chat/completions"
        self._session: aiohttp.ClientSession | None = None

    async def _reads(self, inp: chat_pb2.ChatInput) -> AsyncIterator[tuple[list[str], bool]]:
        """Per read of the upstream's body: its text deltas, and whether ``[DONE]`` came."""
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        body = {
            "model": inp.model.partition("/")[2] or inp.model,
            "messages": [
                {"role": _ROLES.get(m.role, "user"), "content": m.content} for m in inp.messages
            ],
            "stream": True,
        }
        headers = {"content-type": "application/json"}
        async with self._session.post(self._url, data=orjson.dumps(body), headers=headers) as r:
            async for chunk in r.content.iter_any():
                text: list[str] = []
                done = False
                for line in chunk.split(b"\n"):
                    if line.startswith(b"data: [DONE]"):
                        done = True
                    elif line.startswith(b"data: {"):
                        for choice in orjson.loads(line[6:]).get("choices") or ():
                            content = (choice.get("delta") or {}).get("content")
                            if content:
                                text.append(content)
                yield text, done

    async def Chat(
        self, request: orchestrator_pb2.ChatRequest, context: Any
    ) -> orchestrator_pb2.ChatResponse:
        text: list[str] = []
        async for part, _ in self._reads(request.input):
            text.extend(part)
        message = chat_pb2.Message(role=chat_pb2.ROLE_ASSISTANT, content="".join(text))
        return orchestrator_pb2.ChatResponse(model=request.input.model, message=message)

    async def StreamChat(
        self, request: orchestrator_pb2.StreamChatRequest, context: Any
    ) -> AsyncIterator[orchestrator_pb2.StreamChatResponse]:
        async for part, done in self._reads(request.input):
            if part:
                event = orchestrator_pb2.StreamChatResponse()
                event.text_delta.text = "".join(part)
                yield event
            if done:
                finish = orchestrator_pb2.StreamChatResponse()
                finish.finish.reason = chat_pb2.FINISH_REASON_STOP
                yield finish


async def serve(servicer: orchestrator_pb2_grpc.OrchestratorServiceServicer, port: int) -> None:
    """Serve `servicer` on ``127.0.0.1:port`` until cancelled."""
    server = grpc.aio.server()
    orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def run_on_uvloop(servicer: orchestrator_pb2_grpc.OrchestratorServiceServicer, port: int) -> None:
    """Serve `servicer` on uvloop until SIGTERM."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(servicer, port))


def main(argv: Sequence[str] | None = None) -> None:
    """Serve on uvloop until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_relay")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the upstream's /v1 base URL")
    args = parser.parse_args(argv)
    run_on_uvloop(BareRelay(args.upstream), args.port)


if __name__ == "__main__":
    main()
