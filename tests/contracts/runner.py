"""Runs the language-neutral contract cases of `contracts/cases/` against one surface.

A surface is how a client reaches llmesh: gRPC streaming or unary, or the gateway's SSE or
unary JSON endpoints. Each run yields an `Outcome` (the events seen, the unary reply, or
the error), and `check` compares it with the case's expectations, so all four surfaces are
held to the same contract. An embeddings case (``call: embed``) has two surfaces: the
``Embed`` RPC and the gateway's ``/v1/embeddings``.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import yaml
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from llmesh.services.common.errors import ERROR_TABLE, FieldViolation, LlmeshError, Reason
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.v1 import chat_pb2, embeddings_pb2, errors_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.contracts import surface_messages
from tests.contracts.surface_responses import (
    RESPONSES_SURFACES,
    expressible,
    responses_expectations,
    run_responses,
)

CASES_DIR = Path(__file__).parents[2] / "contracts" / "cases"
SURFACES = (
    "grpc-stream",
    "grpc-unary",
    "gateway-sse",
    "gateway-unary",
    "direct-sse",
    "direct-unary",
)
"""``direct-*``: the gateway's same /v1 routes on the direct HTTP path (no gRPC hop)."""
EMBED_SURFACES = ("grpc-unary", "gateway-unary", "direct-unary")
"""For ``call: embed``: the Embed RPC, and ``/v1/embeddings`` (OpenAI's shape) through the
gateway and on the direct HTTP path."""


def surfaces(case: dict[str, Any]) -> tuple[str, ...]:
    """The surfaces a case runs on: the two unary ones for embeddings; for chat the four,
    plus the Messages API's two and the Responses API's two where each can express the case."""
    if case.get("call") == "embed":
        return EMBED_SURFACES
    messages = surface_messages.SURFACES if surface_messages.applies(case) else ()
    return SURFACES + messages + (RESPONSES_SURFACES if expressible(case) else ())


def load_cases() -> list[dict[str, Any]]:
    """Every case of every file, in file order."""
    cases: list[dict[str, Any]] = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        cases.extend(yaml.safe_load(path.read_text()) or [])
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "contract case names must be unique"
    return cases


@dataclass
class Outcome:
    """What one call produced on one surface."""

    events: list[orchestrator_pb2.StreamChatResponse] = field(default_factory=list)
    reply: orchestrator_pb2.ChatResponse | None = None
    error: LlmeshError | None = None
    http_status: int | None = None
    """For the gateway: the HTTP status of an error answered before any event."""
    grpc_code: grpc.StatusCode | None = None
    error_infos: int | None = None
    """For gRPC: how many ErrorInfo details the status carried."""
    vectors: list[list[float]] | None = None
    """For an embeddings call: the vectors, decoded, in input order."""
    vector_encoding: str | None = None
    """For an embeddings call: how the vectors came back, ``float`` or ``base64``."""
    input_tokens: int | None = None
    """For an embeddings call: the tokens read."""


def _request(case: dict[str, Any]) -> chat_pb2.ChatInput:
    return json_format.ParseDict(case["request"], chat_pb2.ChatInput())


def _timeout(case: dict[str, Any]) -> float:
    return case.get("deadline_ms", 30_000) / 1000


def _grpc_error(exc: grpc.aio.AioRpcError, out: Outcome) -> None:
    out.error = from_rpc_error(exc)
    out.grpc_code = exc.code()
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    out.error_infos = sum(
        1
        for d in (status.details if status else ())
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)
    )


async def run_grpc(address: str, case: dict[str, Any], unary: bool) -> Outcome:
    out = Outcome()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        try:
            if unary:
                out.reply = await stub.Chat(
                    orchestrator_pb2.ChatRequest(input=_request(case)), timeout=_timeout(case)
                )
            else:
                call = stub.StreamChat(
                    orchestrator_pb2.StreamChatRequest(input=_request(case)), timeout=_timeout(case)
                )
                async for ev in call:
                    out.events.append(ev)
        except grpc.aio.AioRpcError as exc:
            _grpc_error(exc, out)
    return out


def _error_from_body(body: dict[str, Any]) -> LlmeshError:
    err = body["error"]
    return LlmeshError(
        Reason[err["reason"]],
        err.get("message", ""),
        err.get("retryAfter"),
        tuple(FieldViolation(v["field"], v["description"]) for v in err.get("fieldViolations", [])),
    )


async def run_gateway(url: str, case: dict[str, Any], unary: bool) -> Outcome:
    out = Outcome()
    body = {"input": case["request"]}
    headers = {"x-llmesh-timeout": str(_timeout(case))}
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        if unary:
            r = await client.post("/api/v1/chat", json=body, headers=headers)
            if r.status_code == 200:
                out.reply = json_format.ParseDict(r.json(), orchestrator_pb2.ChatResponse())
            else:
                out.http_status = r.status_code
                out.error = _error_from_body(r.json())
            return out
        async with client.stream("POST", "/api/v1/chat/stream", json=body, headers=headers) as r:
            if r.status_code != 200:
                out.http_status = r.status_code
                out.error = _error_from_body(json.loads(await r.aread()))
                return out
            event_name = "message"
            async for line in r.aiter_lines():
                if line.startswith("event:"):
                    event_name = line[6:].strip()
                elif line.startswith("data:"):
                    data = json.loads(line[5:])
                    if event_name == "error":
                        out.error = _error_from_body(data)
                    else:
                        out.events.append(
                            json_format.ParseDict(data, orchestrator_pb2.StreamChatResponse())
                        )
                    event_name = "message"
    return out


def _unpack(data: bytes) -> list[float]:
    return list(struct.unpack(f"<{len(data) // 4}f", data))


async def run_grpc_embed(address: str, case: dict[str, Any]) -> Outcome:
    out = Outcome()
    request = json_format.ParseDict(case["request"], embeddings_pb2.EmbedRequest())
    async with grpc.aio.insecure_channel(address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        try:
            reply = await stub.Embed(request, timeout=_timeout(case))
        except grpc.aio.AioRpcError as exc:
            _grpc_error(exc, out)
            return out
    packed = [bool(e.data) for e in reply.embeddings]
    assert not any(packed) or all(packed), "every vector in one encoding"
    out.vector_encoding = "base64" if any(packed) else "float"
    out.vectors = [_unpack(e.data) if e.data else list(e.values) for e in reply.embeddings]
    assert [e.index for e in reply.embeddings] == list(range(len(reply.embeddings)))
    out.input_tokens = reply.usage.input_tokens
    return out


def _openai_embed_body(request: dict[str, Any]) -> dict[str, Any]:
    """An EmbedRequest in protobuf JSON as OpenAI's /v1/embeddings body."""
    body: dict[str, Any] = {"model": request["model"], "input": request.get("inputs", [])}
    for key in ("dimensions", "max_cost_usd", "cache"):  # llmesh's own keep their names
        if key in request:
            body[key] = request[key]
    encoding = request.get("encoding", "EMBEDDING_ENCODING_UNSPECIFIED")
    # OpenAI's default is base64 in its SDK but float on the wire: say it every time
    body["encoding_format"] = "base64" if encoding == "EMBEDDING_ENCODING_BASE64" else "float"
    return body


async def run_gateway_embed(url: str, case: dict[str, Any]) -> Outcome:
    out = Outcome()
    headers = {"x-llmesh-timeout": str(_timeout(case))}
    body = _openai_embed_body(case["request"])
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        r = await client.post("/v1/embeddings", json=body, headers=headers)
    if r.status_code != 200:
        out.http_status = r.status_code
        err = r.json()["error"]
        param = err.get("param")
        violations = (FieldViolation(param, err["message"]),) if param else ()
        out.error = LlmeshError(Reason[err["code"].upper()], err["message"], None, violations)
        return out
    data = r.json()["data"]
    assert [d["index"] for d in data] == list(range(len(data)))
    kinds = {type(d["embedding"]).__name__ for d in data}
    assert kinds in ({"str"}, {"list"}), "every vector in one encoding"
    out.vector_encoding = "base64" if kinds == {"str"} else "float"
    out.vectors = [
        _unpack(base64.b64decode(d["embedding"]))
        if isinstance(d["embedding"], str)
        else d["embedding"]
        for d in data
    ]
    out.input_tokens = r.json()["usage"]["prompt_tokens"]
    return out


async def run(surface: str, mesh: Any, case: dict[str, Any]) -> Outcome:
    """Run one case on one surface of a running mesh."""
    if case.get("call") == "embed":
        if surface.startswith("grpc"):
            return await run_grpc_embed(mesh.orchestrator_address, case)
        return await run_gateway_embed(_http_url(surface, mesh), case)
    if surface in RESPONSES_SURFACES:
        return await run_responses(mesh.gateway_url, case, surface.endswith("stream"), Outcome())
    if surface in surface_messages.SURFACES:
        return await surface_messages.run(mesh.gateway_url, case, surface, Outcome())
    if surface.startswith("grpc"):
        return await run_grpc(mesh.orchestrator_address, case, surface.endswith("unary"))
    return await run_gateway(_http_url(surface, mesh), case, surface.endswith("unary"))


def _http_url(surface: str, mesh: Any) -> str:
    """The gateway's URL, or the direct HTTP path's for a ``direct-*`` surface."""
    return str(mesh.direct_url if surface.startswith("direct") else mesh.gateway_url)


# -- checking ---------------------------------------------------------------------------


def _summary(out: Outcome) -> dict[str, Any]:
    """Text, tool calls, finish, usage and start of a successful outcome, surface-neutral."""
    if out.reply is not None:
        r = out.reply
        return {
            "text": r.message.content,
            "tool_calls": [
                {"name": c.name, "arguments": c.arguments} for c in r.message.tool_calls
            ],
            "finish": {
                "reason": chat_pb2.FinishReason.Name(r.finish_reason),
                "provider_reason": r.provider_finish_reason,
            },
            "usage": json_format.MessageToDict(
                r.usage, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            ),
            "start": {"provider": r.provider, "model": r.model},
            "reasoning": {
                "text": "".join(b.thinking for b in r.message.thinking),
                "blocks": len(r.message.thinking),
                "signed": bool(r.message.thinking) and all(b.signature for b in r.message.thinking),
            },
        }
    text, calls, summary = [], {}, {}
    thinking: dict[int, dict[str, str]] = {}
    for ev in out.events:
        kind = ev.WhichOneof("event")
        if kind == "text_delta":
            text.append(ev.text_delta.text)
        elif kind == "tool_call_delta":
            d = ev.tool_call_delta
            c = calls.setdefault(d.index, {"name": "", "arguments": ""})
            c["name"] = c["name"] or d.name
            c["arguments"] += d.arguments_delta
        elif kind == "reasoning_delta":
            r = ev.reasoning_delta
            block = thinking.setdefault(r.index, {"text": "", "signature": ""})
            block["text"] += r.text
            block["signature"] += r.signature
        elif kind == "finish":
            summary["finish"] = {
                "reason": chat_pb2.FinishReason.Name(ev.finish.reason),
                "provider_reason": ev.finish.provider_reason,
            }
            summary["usage"] = json_format.MessageToDict(
                ev.finish.usage,
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
            )
        elif kind == "start":
            summary["start"] = {"provider": ev.start.provider, "model": ev.start.model}
        elif kind == "switch":
            summary["switch"] = {
                "to_provider": ev.switch.to_provider,
                "to_model": ev.switch.to_model,
                "reason": errors_pb2.ErrorReason.Name(ev.switch.reason).removeprefix(
                    "ERROR_REASON_"
                ),
            }
            if ev.switch.policy == chat_pb2.MID_STREAM_POLICY_RESTART:
                text.clear()  # the client discards what it got
                calls.clear()
    summary["text"] = "".join(text)
    summary["tool_calls"] = [calls[i] for i in sorted(calls)]
    blocks = [thinking[i] for i in sorted(thinking)]
    summary["reasoning"] = {
        "text": "".join(b["text"] for b in blocks),
        "blocks": len(blocks),
        "signed": bool(blocks) and all(b["signature"] for b in blocks),
    }
    return summary


def _subset(expected: dict[str, Any], actual: dict[str, Any], what: str) -> None:
    for key, value in expected.items():
        got = actual.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            got = int(got or 0)
        if isinstance(value, bool):
            got = bool(got)
        assert got == value, f"{what}.{key}: expected {value!r}, got {got!r}"


def check(case: dict[str, Any], surface: str, out: Outcome) -> None:
    """Assert that an outcome honours the case's expectations."""
    if surface in surface_messages.SURFACES:
        return surface_messages.check(case, out, _summary, _subset)
    if surface in RESPONSES_SURFACES:
        case = responses_expectations(case)
    expect = case["expect"]
    streaming = surface.endswith(("stream", "sse"))
    if streaming and "sequence" in expect:
        kinds = " ".join(ev.WhichOneof("event") for ev in out.events)
        assert re.fullmatch(expect["sequence"], kinds), f"event sequence {kinds!r}"
    if streaming:
        finishes = sum(1 for ev in out.events if ev.WhichOneof("event") == "finish")
        assert finishes == (0 if out.error else 1), "exactly one finish, and none with an error"
        if finishes:
            assert out.events[-1].WhichOneof("event") == "finish", "finish is the last event"
    if "error" in expect:
        want = expect["error"]
        assert out.error is not None, f"expected {want['reason']}, got success {_summary(out)}"
        reason = Reason[want["reason"]]
        assert out.error.reason is reason, f"reason {out.error.reason} ({out.error.message})"
        spec = ERROR_TABLE[reason]
        if out.grpc_code is not None:
            assert out.grpc_code is grpc.StatusCode[spec.grpc_code]
            # grpc itself produces DEADLINE_EXCEEDED at the client, with no details
            if reason is not Reason.DEADLINE_EXCEEDED:
                assert out.error_infos == 1, "exactly one ErrorInfo"
        if out.http_status is not None:
            assert out.http_status == spec.http_status
        if "field" in want:
            assert want["field"] in [v.field for v in out.error.violations]
        if "retry_after" in want:
            assert out.error.retry_after is not None
            assert abs(out.error.retry_after - want["retry_after"]) < 0.01
        return
    assert out.error is None, f"unexpected error {out.error}"
    if case.get("call") == "embed":
        _check_embeddings(expect, out)
        return
    summary = _summary(out)
    if "text" in expect:
        assert summary["text"] == expect["text"], f"text {summary['text']!r}"
    if "json" in expect:
        assert json.loads(summary["text"]) == expect["json"], f"text {summary['text']!r}"
    if "tool_calls" in expect:
        got = summary["tool_calls"]
        assert [c["name"] for c in got] == [c["name"] for c in expect["tool_calls"]]
        for g, e in zip(got, expect["tool_calls"], strict=True):
            assert json.loads(g["arguments"]) == json.loads(e["arguments"])
    for part in ("finish", "usage", "start", "switch", "reasoning"):
        if part == "switch" and not streaming:
            continue  # a whole reply does not show how it was assembled
        if part in expect:
            _subset(expect[part], summary.get(part, {}), part)


def _check_embeddings(expect: dict[str, Any], out: Outcome) -> None:
    assert out.vectors is not None
    want = expect.get("embeddings", {})
    if "count" in want:
        assert len(out.vectors) == want["count"], f"{len(out.vectors)} vectors"
    if "dimensions" in want:
        assert [len(v) for v in out.vectors] == [want["dimensions"]] * len(out.vectors)
    if "encoding" in want:
        assert out.vector_encoding == want["encoding"]
    if want.get("distinct"):
        assert len({tuple(v) for v in out.vectors}) == len(out.vectors), "one vector per text"
    if "usage" in expect:
        _subset(expect["usage"], {"input_tokens": out.input_tokens}, "usage")
