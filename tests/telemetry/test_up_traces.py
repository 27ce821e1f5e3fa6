"""`llmesh up` exporting its traces to an OTLP receiver, as a user would run it.

The mesh runs as its own processes, configured only by the standard ``OTEL_*`` variables;
the test runs an OTLP/gRPC receiver and checks that each call is one connected trace,
gateway -> orchestrator -> provider attempt, with the GenAI attributes. With telemetry
switched off (``OTEL_SDK_DISABLED``) nothing reaches the receiver or the provider.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from llmesh.services.telemetry.otlp import OtlpReceiver, ReceivedSpan
from tests.support.up import BIN, start_up, up_env, up_ports

INTERNAL, SERVER, CLIENT = 1, 2, 3
"""OTLP span kinds."""


@dataclass
class Up:
    proc: subprocess.Popen[str]
    gateway: str
    emulator: str
    started: str
    """What the mesh printed while starting."""
    env: dict[str, str]
    """The environment it runs with."""


async def _up(tmp: Path, extra_env: dict[str, str]) -> Up:
    ports = up_ports()
    env = up_env(tmp, ports, without_prefixes=("OPENAI_", "ANTHROPIC_", "OTEL_", "LLMESH_"))
    config = tmp / "llmesh.yaml"  # the file up_env names
    config.write_text("resilience: {retry: {initial_backoff: 0.01, jitter: 0}}\n")
    env |= extra_env
    # one process: its counts are the totals; started in a thread, reading its output
    proc, lines = await asyncio.to_thread(start_up, env, "--workers", "1")
    gateway, emulator = f"http://127.0.0.1:{ports['gw']}", f"http://127.0.0.1:{ports['emu']}"
    return Up(proc, gateway, emulator, "".join(lines), env)


async def _down(up: Up) -> str:
    """Stop the mesh (its services flush their spans as they exit); all it printed."""
    up.proc.send_signal(signal.SIGINT)
    rest, _ = await asyncio.to_thread(up.proc.communicate, timeout=60)
    assert up.proc.returncode == 0, rest
    return up.started + rest


@pytest.fixture
async def receiver() -> AsyncIterator[OtlpReceiver]:
    r = await OtlpReceiver().start()
    try:
        yield r
    finally:
        await r.stop()


def _traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


async def _chat(client: httpx.AsyncClient, up: Up, model: str, **extra: object) -> str:
    """Make a call under a fresh trace; its trace id."""
    trace_id, parent = _traceparent()
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], **extra}
    reply = await client.post(
        f"{up.gateway}/v1/chat/completions", json=body, headers={"traceparent": parent}
    )
    assert reply.status_code == 200, reply.text
    return trace_id


def _complete(spans: list[ReceivedSpan], trace_id: str, attempts: int) -> bool:
    mine = [s for s in spans if s.trace_id == trace_id]
    services = {s.service for s in mine if s.kind == SERVER}
    chat = [s for s in mine if s.kind == CLIENT and s.name.startswith("chat ")]
    return {"llmesh-gateway", "llmesh-orchestrator"} <= services and len(chat) >= attempts


def _check_trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    """The trace's attempt spans, once its chain gateway -> orchestrator -> attempt holds."""
    mine = {s.span_id: s for s in spans if s.trace_id == trace_id}
    (http,) = [s for s in mine.values() if s.service == "llmesh-gateway" and s.kind == SERVER]
    assert http.name == "POST /v1/chat/completions"
    (server,) = [
        s for s in mine.values() if s.service == "llmesh-orchestrator" and s.kind == SERVER
    ]
    assert server.name == "/llmesh.v1.OrchestratorService/Chat"
    client = mine[server.parent_span_id]
    assert client.service == "llmesh-gateway" and client.kind == CLIENT
    assert client.parent_span_id == http.span_id
    attempts = sorted(
        (s for s in mine.values() if s.kind == CLIENT and s.name.startswith("chat ")),
        key=lambda s: s.attributes["llmesh.attempt.number"],
    )
    # the call is the whole request: its facts are on the server span, no span of its own
    assert not [s for s in mine.values() if s.kind == INTERNAL]
    assert server.attributes["llmesh.attempts"] == len(attempts)
    for attempt in attempts:
        assert attempt.parent_span_id == server.span_id
        assert attempt.service == "llmesh-orchestrator"
        a = attempt.attributes
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] in ("openai", "emulator")
        assert attempt.name == f"chat {a['gen_ai.request.model']}"
        assert a["server.address"] == "127.0.0.1"
    winner = attempts[-1].attributes
    assert winner["llmesh.attempt.winner"] is True
    assert winner["gen_ai.usage.input_tokens"] > 0 and winner["gen_ai.usage.output_tokens"] > 0
    assert winner["gen_ai.response.finish_reasons"] == ("stop",)
    assert winner["gen_ai.response.model"] == winner["gen_ai.request.model"]
    return attempts


async def test_llmesh_up_exports_one_connected_trace_per_call(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    up = await _up(
        tmp_path,
        {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"},
    )
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            faults = f"{up.emulator}/emulator/faults"
            await client.post(faults, json={"model": "once", "fault": "server_error", "times": 1})
            await client.post(faults, json={"model": "down", "fault": "server_error"})
            plain = await _chat(client, up, "openai/gpt-4o-mini")
            retried = await _chat(client, up, "emulator/once")
            fallback = await _chat(client, up, "emulator/down", fallbacks=["emulator/echo"])
            await receiver.wait_for(
                lambda spans: (
                    _complete(spans, plain, 1)
                    and _complete(spans, retried, 2)
                    and _complete(spans, fallback, 4)
                )
            )
            seen = (await client.get(f"{up.emulator}/emulator/trace-context")).json()
            chat = await asyncio.to_thread(
                subprocess.run,
                [str(BIN / "llmesh"), "chat", "--model", "emulator/echo", "from the terminal"],
                env=up.env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert chat.returncode == 0, chat.stderr
            await receiver.wait_for(lambda spans: any(s.service == "llmesh-cli" for s in spans))
            await receiver.wait_for(lambda spans: _served_for_the_terminal(spans) is not None)
    finally:
        output = await _down(up)
    assert output.count("tracing on") == 3, output  # gateway, orchestrator, processor

    (attempt,) = _check_trace(receiver.spans, plain)
    assert attempt.attributes["gen_ai.provider.name"] == "openai"
    assert attempt.attributes["gen_ai.request.model"] == "gpt-4o-mini"

    first, second = _check_trace(receiver.spans, retried)
    assert first.status_code == 2 and first.attributes["error.type"] == "UPSTREAM_UNAVAILABLE"
    assert second.attributes["llmesh.attempt.retry"] is True

    attempts = _check_trace(receiver.spans, fallback)
    assert [a.name for a in attempts] == ["chat down"] * 3 + ["chat echo"]
    assert attempts[-1].attributes["llmesh.attempt.fallback"] is True

    # each upstream request carried its own attempt's context
    sent = {e["traceparent"].split("-")[2] for e in seen}
    assert {a.span_id for a in [attempt, first, second, *attempts]} <= sent


def _served_for_the_terminal(spans: list[ReceivedSpan]) -> ReceivedSpan | None:
    """The orchestrator's server span of the ``llmesh chat`` call, once it arrived."""
    (cli,) = [s for s in spans if s.service == "llmesh-cli"]
    assert cli.name == "/llmesh.v1.OrchestratorService/StreamChat" and cli.kind == CLIENT
    assert cli.parent_span_id == ""  # the terminal starts the trace
    served = [s for s in spans if s.parent_span_id == cli.span_id]
    return served[0] if served else None


async def test_with_telemetry_off_nothing_is_exported_or_propagated(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    up = await _up(
        tmp_path,
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_SDK_DISABLED": "true",
        },
    )
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            _, parent = _traceparent()
            reply = await client.post(
                f"{up.gateway}/v1/chat/completions",
                json={"model": "emulator/echo", "messages": [{"role": "user", "content": "x"}]},
                headers={"traceparent": parent},
            )
            assert reply.status_code == 200
            assert "traceparent" not in reply.headers  # no tracing middleware
            seen = (await client.get(f"{up.emulator}/emulator/trace-context")).json()
    finally:
        output = await _down(up)  # the services have exited: anything batched was flushed
    assert seen == []  # no span, so no context went upstream
    assert receiver.spans == [] and receiver.metrics == []
    assert "tracing on" not in output
