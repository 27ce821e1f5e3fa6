"""Secrets never reach a log line, a span or an error: a workload with known secrets, grepped.

An orchestrator and a gateway run in this process with the call log on, every logger at
DEBUG and tracing into memory, with known provider keys (the orchestrator's environment),
a known API key, known JWTs and a known prompt. Calls succeed and fail over gRPC and HTTP
(bad key, bad tokens, provider errors, streams cut by an error). Then every captured log
record (formatted as the services format it, traceback included), every span's name,
attributes, events and status, every error's message, details and trailers, and every HTTP
response's headers (and a failure's body) is searched for each secret. The prompt is allowed
only in a successful reply's body, where the echo model puts it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from llmesh.gateway import GatewaySettings, start
from llmesh.services.auth import open_key_store
from llmesh.services.common.auth_settings import JwtIssuer
from llmesh.services.common.logs import JsonFormatter
from llmesh.services.common.telemetry_settings import (
    LogSettings,
    TelemetrySettings,
    TracingSettings,
)
from llmesh.services.orchestrator.server import serve
from llmesh.services.telemetry.lean_trace import LeanSpan
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.jwt_keys import TokenIssuer, new_key
from tests.support.mesh import Mesh
from tests.support.tracing import SPANS, MemorySpans, global_provider

DUMP = os.environ.get("LLMESH_TEST_DUMP_CAPTURED", "")
"""A file to write everything captured to (to read what the grep covered)."""
PROMPT = f"confidential-prompt-{secrets.token_hex(8)}"
OPENAI_KEY = f"sk-proj-{secrets.token_urlsafe(24)}"
ANTHROPIC_KEY = f"sk-ant-api03-{secrets.token_urlsafe(24)}"
MODELS = {  # model -> the emulator fault it answers with
    "leak-auth": "auth",
    "leak-bad-request": "bad_request",
    "leak-server-error": "server_error",
    "leak-stream-error": "stream_error",
}


@dataclass
class Captured:
    """Everything a workload left behind that a secret must not be in."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    """(where, text) pairs that may hold no secret and no prompt."""
    replies: list[tuple[str, str]] = field(default_factory=list)
    """Successful reply bodies: may hold the prompt (echoed), no secret."""

    def add(self, where: str, value: object) -> None:
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        self.texts.append((where, str(value)))


@pytest.fixture
def exporter() -> Iterator[MemorySpans]:
    global_provider()
    SPANS.clear()
    yield SPANS
    SPANS.clear()


@dataclass
class Workload:
    orchestrator: str
    gateway: str
    api_key: str
    wrong_key: str
    good_jwt: str
    bad_jwts: list[str]


@pytest.fixture
async def workload(mesh: Mesh, tmp_path: Path, exporter: MemorySpans) -> AsyncIterator[Workload]:
    assert mesh.config is not None
    issuer = TokenIssuer()
    issuer.add("k1", "ES256")
    jwks = issuer.write(tmp_path / "jwks.json")
    database_url = f"sqlite:///{tmp_path}/secrets.db"
    store = await open_key_store(database_url)
    try:
        info, api_key = await store.create("acme", "secrets-test")
    finally:
        await store.aclose()
    wrong_key = f"llm_{info.key_id}_{secrets.token_urlsafe(32)}"
    config = replace(
        mesh.config,
        database_url=database_url,
        jwt_issuers=(
            JwtIssuer(issuer=issuer.issuer, audience=issuer.audience, jwks_file=str(jwks)),
        ),
        telemetry=TelemetrySettings(
            tracing=TracingSettings(enabled=True), logs=LogSettings(calls=True)
        ),
    )
    env = {**mesh.env(), "OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}
    server = await serve(config, address="127.0.0.1:0", env=env)
    settings = replace(
        GatewaySettings.from_config(config),
        orchestrator_address=f"127.0.0.1:{server.port}",
        processor_address=mesh.processor_address,
    )
    gateway = await start(settings)
    for model, fault in MODELS.items():
        mesh.set_fault(model, fault, after=1)
    now = int(time.time())
    try:
        yield Workload(
            orchestrator=f"127.0.0.1:{server.port}",
            gateway=gateway.url,
            api_key=api_key,
            wrong_key=wrong_key,
            good_jwt=issuer.token("k1"),
            bad_jwts=[
                issuer.token("k1", exp=now - 600),
                issuer.token("k1", key=new_key("ES256")),
                issuer.token("k1", aud="elsewhere"),
                issuer.unsigned("k1"),
                issuer.hs256_with_public_key("k1"),
            ],
        )
    finally:
        async with httpx.AsyncClient(base_url=mesh.emulator_url) as emulator:
            for model in MODELS:
                await emulator.delete("/emulator/faults", params={"model": model})
        await gateway.stop()
        await server.stop(0.5)


def _request(model: str) -> orchestrator_pb2.ChatRequest:
    message = chat_pb2.Message(role=chat_pb2.ROLE_USER, content=PROMPT)
    return orchestrator_pb2.ChatRequest(input=chat_pb2.ChatInput(model=model, messages=[message]))


async def _grpc_calls(w: Workload, seen: Captured) -> None:
    calls: list[tuple[str, str, bool]] = [  # (bearer, model, stream)
        (w.api_key, "emulator/echo", False),
        (w.good_jwt, "emulator/echo", True),
        (w.wrong_key, "emulator/echo", False),
        ("llm_0123456789ab_" + secrets.token_urlsafe(32), "emulator/echo", False),
        *((bad, "emulator/echo", False) for bad in w.bad_jwts),
        *((w.api_key, f"openai/{m}", m == "leak-stream-error") for m in MODELS),
        *((w.good_jwt, f"anthropic/{m}", True) for m in MODELS),
    ]
    async with grpc.aio.insecure_channel(w.orchestrator) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        for bearer, model, stream in calls:
            metadata = [("authorization", f"Bearer {bearer}")]
            where = f"grpc {model} stream={stream}"
            try:
                if stream:
                    call = stub.StreamChat(_request(model), metadata=metadata, timeout=20)
                    async for event in call:  # text deltas echo the prompt: a reply
                        seen.replies.append((where, str(event)))
                else:
                    await stub.Chat(_request(model), metadata=metadata, timeout=20)
            except grpc.aio.AioRpcError as exc:
                seen.add(f"{where} details", exc.details())
                seen.add(f"{where} debug", exc.debug_error_string())
                for key, value in exc.trailing_metadata() or ():
                    seen.add(f"{where} trailer {key}", value)


async def _http_calls(w: Workload, seen: Captured) -> None:
    body = {"model": "emulator/echo", "messages": [{"role": "user", "content": PROMPT}]}
    requests: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        ("/v1/chat/completions", body, {"authorization": f"Bearer {w.api_key}"}),
        (
            "/v1/chat/completions",
            {**body, "stream": True},
            {"authorization": f"Bearer {w.good_jwt}"},
        ),
        ("/v1/chat/completions", body, {"authorization": f"Bearer {w.wrong_key}"}),
        ("/v1/chat/completions", body, {}),
        *(("/v1/chat/completions", body, {"authorization": f"Bearer {b}"}) for b in w.bad_jwts),
        *(
            ("/v1/messages", {**body, "max_tokens": 32}, {"x-api-key": b, "anthropic-version": "1"})
            for b in (w.wrong_key, *w.bad_jwts)
        ),
        *(
            (
                "/v1/chat/completions",
                {**body, "model": f"openai/{m}", "stream": m == "leak-stream-error"},
                {"authorization": f"Bearer {w.api_key}"},
            )
            for m in MODELS
        ),
        *(
            (
                "/v1/messages",
                {**body, "model": f"anthropic/{m}", "max_tokens": 32},
                {"x-api-key": w.good_jwt, "anthropic-version": "2023-06-01"},
            )
            for m in MODELS
        ),
        *(
            ("/v1/embeddings", {"model": m, "input": PROMPT}, {"authorization": f"Bearer {b}"})
            for m in ("openai/text-embedding-3-small", "openai/leak-auth")
            for b in (w.api_key, w.bad_jwts[0])
        ),
        *(
            ("/v1/responses", {"model": "emulator/echo", "input": PROMPT}, {"authorization": b})
            for b in (f"Bearer {w.good_jwt}", f"Bearer {w.bad_jwts[1]}")
        ),
    ]
    async with httpx.AsyncClient(base_url=w.gateway, timeout=20) as http:
        for path, payload, headers in requests:
            reply = await http.post(path, json=payload, headers=headers)
            where = f"http {path} {payload['model']} {reply.status_code}"
            seen.add(f"{where} headers", dict(reply.headers))
            if reply.status_code >= 400:
                seen.add(f"{where} body", reply.text)
                continue
            if not reply.headers.get("content-type", "").startswith("text/event-stream"):
                seen.replies.append((where, reply.text))
                continue
            for line in reply.text.splitlines():  # a stream's error event is not a reply
                if '"error"' in line:
                    seen.add(f"{where} body", line)
                else:
                    seen.replies.append((where, line))


def _dump(path: Path, seen: Captured) -> None:
    path.write_text("\n".join(f"{where}: {text}" for where, text in seen.texts))


def _span_texts(span: LeanSpan) -> Iterator[str]:
    yield span.name
    yield json.dumps(dict(span.attributes or {}), default=str)
    for event in span.events or ():
        yield event.name
        yield json.dumps(dict(event.attributes or {}), default=str)
    yield span.status.description or ""
    for link in span.links or ():
        yield json.dumps(dict(link.attributes or {}), default=str)


async def test_no_secret_in_logs_spans_or_errors(
    workload: Workload,
    exporter: MemorySpans,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen = Captured()
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="llmesh"):
        await _grpc_calls(workload, seen)
        await _http_calls(workload, seen)
        await asyncio.sleep(0.3)  # spans of streams end after their last message
    formatter = JsonFormatter()
    assert caplog.records, "the workload logged nothing: the capture is broken"
    for record in caplog.records:
        seen.add(f"log {record.name}", formatter.format(record))
        seen.add(f"log {record.name} (plain)", logging.Formatter().format(record))
    spans = exporter.get_finished_spans()
    assert len(spans) > 20, "tracing captured too little: the capture is broken"
    for span in spans:
        for text in _span_texts(span):
            seen.add(f"span {span.name}", text)
    assert any("llmesh.calls" in where for where, _ in seen.texts), "no call log record"
    assert sum("TOKEN_" in text for _, text in seen.texts) >= len(workload.bad_jwts)

    keys = [workload.api_key, workload.wrong_key, OPENAI_KEY, ANTHROPIC_KEY]
    key_secrets = [k.split("_", 2)[2] for k in keys[:2]] + [k[8:] for k in keys[2:]]
    tokens = [workload.good_jwt, *workload.bad_jwts]
    token_parts = [part for t in tokens for part in t.split(".")[1:] if len(part) >= 16]
    forbidden = [*keys, *key_secrets, *tokens, *token_parts]
    leaks = [
        (where, secret[:12])
        for where, text in seen.texts
        for secret in (*forbidden, PROMPT)
        if secret in text
    ]
    leaks += [
        (where, secret[:12])
        for where, text in seen.replies
        for secret in forbidden
        if secret in text
    ]
    if DUMP:
        _dump(Path(DUMP), seen)
    assert not leaks, leaks
    assert any(PROMPT in text for _, text in seen.replies)  # the prompt did go through
