"""``python -m bench.bare_gateway --port P --orchestrator HOST:PORT``: the floor of a gateway.

The least an ASGI app under uvicorn (uvloop, httptools: the gateway's server) can do to
answer an OpenAI ``POST /v1/chat/completions`` by calling the orchestrator's ``Chat`` over
grpc.aio: read the body, build the request, make the call, answer the reply as JSON. No
routing, validation, error mapping, deadlines, metadata or disconnect handling: none of
what the gateway is for. The suite runs it on llmesh's core in front of the same
orchestrator, so the table shows how much of the gateway's added latency any such
translation layer pays, and how much is the gateway's own.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import grpc
import orjson
import uvicorn

from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc

_ROLES = {"system": chat_pb2.ROLE_SYSTEM, "assistant": chat_pb2.ROLE_ASSISTANT}
_HEADERS = [(b"content-type", b"application/json")]


class BareGateway:
    """An ASGI app: ``/v1/chat/completions`` (non-streaming) and nothing else."""

    def __init__(self, orchestrator: str) -> None:
        self._address = orchestrator
        self._stub: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                if (await receive())["type"] == "lifespan.startup":
                    channel = grpc.aio.insecure_channel(self._address)
                    self._stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        req = orjson.loads(body)
        messages = [
            chat_pb2.Message(role=_ROLES.get(m["role"], chat_pb2.ROLE_USER), content=m["content"])
            for m in req["messages"]
        ]
        call = chat_pb2.ChatInput(model=req["model"], messages=messages)
        reply = await self._stub.Chat(orchestrator_pb2.ChatRequest(input=call))
        usage = reply.usage
        out = {
            "id": f"chatcmpl-{reply.request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.message.content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": usage.input_tokens + usage.output_tokens,
            },
        }
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": orjson.dumps(out)})


def main(argv: Sequence[str] | None = None) -> None:
    """Serve under uvicorn (uvloop, httptools) until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_gateway")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--orchestrator", required=True, help="the orchestrator's host:port")
    args = parser.parse_args(argv)
    uvicorn.run(
        BareGateway(args.orchestrator),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
