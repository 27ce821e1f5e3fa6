"""A small gRPC client of the mesh for the terminal (``llmesh chat``, ``llmesh models``)."""

from __future__ import annotations

import sys

import grpc

from llmesh.services.common.rpc_errors import Peer, from_rpc_error
from llmesh.services.common.telemetry_settings import TelemetrySettings
from llmesh.services.common.tls import channel
from llmesh.services.common.tls_settings import TlsSettings
from llmesh.services.telemetry.tracing import client_interceptors, traced_channel
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc


def _peer(address: str) -> Peer:
    """The orchestrator the CLI calls, as named when it cannot be reached."""
    return Peer(
        "orchestrator",
        address,
        "--address, LLMESH_ORCHESTRATOR_ADDRESS or orchestrator.address in the configuration file",
    )


def _channel(
    address: str, tls: TlsSettings | None, telemetry: TelemetrySettings | None
) -> grpc.aio.Channel:
    """The CLI's channel to `address`, its calls traced as `telemetry` says."""
    interceptors = client_interceptors(telemetry) or None
    return traced_channel(channel(address, tls, "CLI", interceptors=interceptors), telemetry)


def _metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    """The call metadata carrying `api_key` as ``authorization: Bearer <key>`` (none if empty)."""
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


async def chat_to_terminal(
    address: str,
    prompt: str,
    *,
    model: str,
    system: str = "",
    max_tokens: int | None = None,
    timeout: float = 120.0,
    api_key: str | None = None,
    telemetry: TelemetrySettings | None = None,
    tls: TlsSettings | None = None,
) -> int:
    """Stream one reply to stdout; a summary line goes to stderr. Returns an exit status.

    `api_key` is sent as ``authorization: Bearer <key>``; a mesh with keys refuses calls
    without one. With tracing on in `telemetry`, the call is a span of its own, the root
    of the call's trace. With a ``ca`` in `tls` the channel speaks TLS (presenting
    ``client_cert`` when set).
    """
    messages = []
    if system:
        messages.append(chat_pb2.Message(role=chat_pb2.ROLE_SYSTEM, content=system))
    messages.append(chat_pb2.Message(role=chat_pb2.ROLE_USER, content=prompt))
    inp = chat_pb2.ChatInput(model=model, messages=messages)
    if max_tokens is not None:
        inp.max_tokens = max_tokens
    async with _channel(address, tls, telemetry) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        try:
            async for ev in stub.StreamChat(
                orchestrator_pb2.StreamChatRequest(input=inp),
                timeout=timeout,
                metadata=_metadata(api_key),
            ):
                kind = ev.WhichOneof("event")
                if kind == "text_delta":
                    sys.stdout.write(ev.text_delta.text)
                    sys.stdout.flush()
                elif kind == "tool_call_delta":
                    d = ev.tool_call_delta
                    sys.stdout.write(f"[tool {d.name}] " if d.name else d.arguments_delta)
                elif kind == "start":
                    print(
                        f"[{ev.start.provider}/{ev.start.model} {ev.start.request_id}]",
                        file=sys.stderr,
                    )
                elif kind == "finish":
                    u = ev.finish.usage
                    reason = chat_pb2.FinishReason.Name(ev.finish.reason)
                    print(
                        f"\n[{reason.removeprefix('FINISH_REASON_').lower()}; "
                        f"in {u.input_tokens + u.cache_read_tokens + u.cache_write_tokens} "
                        f"out {u.output_tokens} tokens{' (estimated)' if u.estimated else ''}]",
                        file=sys.stderr,
                    )
        except grpc.RpcError as exc:
            err = from_rpc_error(exc, _peer(address))
            print(f"\nllmesh: {err.reason.value}: {err.message}", file=sys.stderr)
            return 1
    return 0


async def print_models(
    address: str,
    *,
    api_key: str | None = None,
    telemetry: TelemetrySettings | None = None,
    tls: TlsSettings | None = None,
) -> int:
    """Print the routable models, one a line; `api_key`, `telemetry` and `tls` as in
    `chat_to_terminal`."""
    async with _channel(address, tls, telemetry) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        try:
            resp = await stub.ListModels(
                orchestrator_pb2.ListModelsRequest(), timeout=10, metadata=_metadata(api_key)
            )
        except grpc.RpcError as exc:
            err = from_rpc_error(exc, _peer(address))
            print(f"llmesh: {err.reason.value}: {err.message}", file=sys.stderr)
            return 1
    for m in resp.models:
        print(m.name + (f"  -> {m.alias_for}" if m.alias_for else ""))
    return 0
