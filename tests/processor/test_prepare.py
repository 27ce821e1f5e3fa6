"""The processor's Prepare RPC over real gRPC: redaction, pseudonyms, decisions, errors,
and the redaction counter (per detector, never a value)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from llmesh.services.common.errors import Reason
from llmesh.services.common.metrics_settings import MetricsSettings
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.processor.server import ProcessorServer, count_redactions, serve
from llmesh.services.processor.tokenizers import Tokenizers
from llmesh.services.telemetry import build_metrics
from llmesh.v1 import chat_pb2, processor_pb2, processor_pb2_grpc


@pytest.fixture
async def stub(tokenizers: Tokenizers) -> AsyncIterator[processor_pb2_grpc.ProcessorServiceStub]:
    running: ProcessorServer = await serve("127.0.0.1:0", tokenizers=tokenizers)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        yield processor_pb2_grpc.ProcessorServiceStub(ch)
    await running.stop(None)


def _request(mode: int, *messages: chat_pb2.Message) -> processor_pb2.PrepareRequest:
    return processor_pb2.PrepareRequest(
        messages=messages,
        steps=["redact"],
        redaction=processor_pb2.RedactionRules(mode=mode, detectors=["email", "secrets"]),
    )


async def test_prepare_pseudonymizes_texts_and_keeps_everything_else(
    stub: processor_pb2_grpc.ProcessorServiceStub,
) -> None:
    image = chat_pb2.ContentPart(image=chat_pb2.ImagePart(url="https://example.com/a.png"))
    user = chat_pb2.Message(
        role=chat_pb2.ROLE_USER,
        parts=[chat_pb2.ContentPart(text="I am a@example.com"), image],
        name="jane",
    )
    assistant = chat_pb2.Message(
        role=chat_pb2.ROLE_ASSISTANT,
        tool_calls=[chat_pb2.ToolCall(id="c1", name="send", arguments='{"to":"a@example.com"}')],
    )
    tool = chat_pb2.Message(role=chat_pb2.ROLE_TOOL, content="ok, 10.0.0.1", tool_call_id="c1")
    reply = await stub.Prepare(
        _request(processor_pb2.REDACTION_MODE_PSEUDONYMIZE, user, assistant, tool), timeout=5
    )
    assert reply.messages[0].parts[0].text == "I am <EMAIL_1>"
    assert reply.messages[0].parts[1] == image and reply.messages[0].name == "jane"
    assert reply.messages[1].tool_calls[0].arguments == '{"to":"<EMAIL_1>"}'
    assert reply.messages[2].content == "ok, 10.0.0.1"  # ip not among the chosen detectors
    assert [(p.placeholder, p.value) for p in reply.pseudonyms] == [("<EMAIL_1>", "a@example.com")]
    (decision,) = reply.decisions
    assert decision.step == "redact" and decision.decision == "pseudonymize"
    assert dict(decision.counts) == {"email": 2}


async def test_prepare_blocks_with_the_field_and_detector(
    stub: processor_pb2_grpc.ProcessorServiceStub,
) -> None:
    key = "sk-proj-" + "x" * 30
    message = chat_pb2.Message(role=chat_pb2.ROLE_USER, content=f"use {key}")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Prepare(_request(processor_pb2.REDACTION_MODE_BLOCK, message), timeout=5)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    err = from_rpc_error(info.value)
    assert err.reason is Reason.INVALID_REQUEST and err.metadata["detector"] == "openai_key"
    assert err.violations[0].field == "messages[0].content" and key not in str(err)


async def test_prepare_refuses_unknown_steps_and_detectors(
    stub: processor_pb2_grpc.ProcessorServiceStub,
) -> None:
    request = processor_pb2.PrepareRequest(
        steps=["redact", "summarize"],
        redaction=processor_pb2.RedactionRules(detectors=["passport"]),
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Prepare(request, timeout=5)
    assert {v.field for v in from_rpc_error(info.value).violations} == {"steps[1]"}
    request = processor_pb2.PrepareRequest(
        steps=["redact"], redaction=processor_pb2.RedactionRules(detectors=["passport"])
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Prepare(request, timeout=5)
    assert {v.field for v in from_rpc_error(info.value).violations} == {"redaction.detectors[0]"}


def test_redactions_are_counted_per_detector_with_bounded_labels() -> None:
    metrics = build_metrics(MetricsSettings(enabled=True), "processor")
    assert metrics is not None
    decision = processor_pb2.StepDecision(step="redact", counts={"email": 2, "my_secret": 1})
    count_redactions(metrics)([decision])
    text = metrics.render().decode()
    metrics.shutdown()
    lines = [line for line in text.splitlines() if line.startswith("llmesh_redactions")]
    assert any('llmesh_detector="email"' in line and line.endswith(" 2.0") for line in lines)
    assert any('llmesh_detector="custom"' in line for line in lines)
    assert not any("my_secret" in line for line in lines)
