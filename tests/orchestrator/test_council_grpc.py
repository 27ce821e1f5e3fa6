"""The council over gRPC: its proto mapping, and `StreamCouncil` on the real mesh (the core,
on in-memory providers, is `test_council.py`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.core.chat import Message, Role
from llmesh.services.core.events import TextDelta
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.council import BranchFailed, BranchItem, Judge
from llmesh.services.orchestrator.council_convert import council_from_proto, council_item_to_proto
from llmesh.v1 import chat_pb2, errors_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.mesh import Mesh

# -- proto mapping --------------------------------------------------------------------


def _input(text: str = "hello council", **kw: object) -> chat_pb2.ChatInput:
    return chat_pb2.ChatInput(
        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=text)],
        **kw,
    )


def test_council_from_proto_defaults_names_and_ignores_the_input_model() -> None:
    request = orchestrator_pb2.StreamCouncilRequest(
        input=_input(model="whatever", temperature=0.5),
        members=[
            orchestrator_pb2.CouncilMember(model="a/m", persona="p"),
            orchestrator_pb2.CouncilMember(name="named", model=" b/m "),
            orchestrator_pb2.CouncilMember(model="c/m"),
        ],
        judge=orchestrator_pb2.CouncilJudge(model="j/m"),
        fail_fast=True,
    )
    c = council_from_proto(request, max_request_bytes=1 << 20)
    assert [(m.name, m.model, m.persona) for m in c.members] == [
        ("branch-0", "a/m", "p"),
        ("named", "b/m", ""),
        ("branch-2", "c/m", ""),
    ]
    assert c.judge == Judge("j/m") and c.fail_fast
    assert c.call.request.temperature == 0.5
    assert c.call.request.messages == (Message(Role.USER, "hello council"),)


def test_council_from_proto_reports_every_bad_field_at_once() -> None:
    request = orchestrator_pb2.StreamCouncilRequest(
        input=chat_pb2.ChatInput(temperature=9),
        members=[
            orchestrator_pb2.CouncilMember(model="a/m"),
            orchestrator_pb2.CouncilMember(),
            orchestrator_pb2.CouncilMember(name="judge", model="a/m"),
        ],
        judge=orchestrator_pb2.CouncilJudge(),
    )
    with pytest.raises(LlmeshError) as info:
        council_from_proto(request, max_request_bytes=1 << 20)
    assert info.value.reason is Reason.INVALID_REQUEST
    assert [v.field for v in info.value.violations] == [
        "input.messages",
        "input.temperature",
        "members[1].model",
        "members[2].name",
        "judge.model",
    ]
    with pytest.raises(LlmeshError) as info:
        council_from_proto(orchestrator_pb2.StreamCouncilRequest(), max_request_bytes=1 << 20)
    assert [v.field for v in info.value.violations] == ["input", "members"]
    big = orchestrator_pb2.StreamCouncilRequest(input=_input("x" * 100))
    with pytest.raises(LlmeshError) as info:
        council_from_proto(big, max_request_bytes=50)
    assert info.value.reason is Reason.INVALID_REQUEST


def test_council_items_to_proto() -> None:
    failed = council_item_to_proto(
        BranchItem("b", BranchFailed(Reason.OVERLOADED, "busy", Usage(5, 1)))
    )
    assert failed.branch == "b" and failed.WhichOneof("body") == "error"
    assert failed.error.reason == errors_pb2.ERROR_REASON_OVERLOADED
    assert failed.error.message == "busy" and failed.error.usage.input_tokens == 5
    assert not council_item_to_proto(
        BranchItem("b", BranchFailed(Reason.OVERLOADED, "busy"))
    ).error.HasField("usage")
    delta = council_item_to_proto(BranchItem("a", TextDelta("hi")))
    assert delta.branch == "a" and delta.event.text_delta.text == "hi"


# -- StreamCouncil over the real mesh ---------------------------------------------------


def _member(name: str, model: str, persona: str = "") -> orchestrator_pb2.CouncilMember:
    return orchestrator_pb2.CouncilMember(name=name, model=model, persona=persona)


async def _council_call(
    mesh: Mesh, request: orchestrator_pb2.StreamCouncilRequest, timeout: float = 30
) -> list[orchestrator_pb2.StreamCouncilResponse]:
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        return [r async for r in stub.StreamCouncil(request, timeout=timeout)]


def _texts(responses: Sequence[orchestrator_pb2.StreamCouncilResponse]) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in responses:
        if r.WhichOneof("body") == "event" and r.event.WhichOneof("event") == "text_delta":
            out[r.branch] = out.get(r.branch, "") + r.event.text_delta.text
    return out


async def test_stream_council_over_the_mesh(mesh: Mesh) -> None:
    await asyncio.to_thread(mesh.set_fault, "council-overloaded", "overloaded")
    request = orchestrator_pb2.StreamCouncilRequest(
        input=_input("what is the capital of France"),
        members=[
            _member("echo", "emulator/echo", "You are a geographer."),
            _member("openai", "openai/gpt-4o-mini"),
            _member("busy", "anthropic/council-overloaded"),
        ],
        judge=orchestrator_pb2.CouncilJudge(model="emulator/echo"),
    )
    responses = await _council_call(mesh, request)
    branches = [r.branch for r in responses]
    assert set(branches) == {"echo", "openai", "busy", "judge"}
    last = {r.branch: r for r in responses}
    assert last["busy"].WhichOneof("body") == "error"
    assert last["busy"].error.reason == errors_pb2.ERROR_REASON_OVERLOADED
    for name in ("echo", "openai", "judge"):
        assert last[name].event.WhichOneof("event") == "finish", name
    texts = _texts(responses)
    assert texts["echo"] == texts["openai"] == "what is the capital of France"
    judge = texts["judge"]
    assert '<answer branch="echo">\nwhat is the capital of France\n</answer>' in judge
    assert '<answer branch="openai">\nwhat is the capital of France\n</answer>' in judge
    assert '<answer branch="busy" failed="OVERLOADED">' in judge
    first_judge = branches.index("judge")
    assert set(branches[first_judge:]) == {"judge"}
    assert responses[first_judge].event.start.request_id.endswith(".judge")


async def test_stream_council_validation_is_an_aip193_status(mesh: Mesh) -> None:
    request = orchestrator_pb2.StreamCouncilRequest(
        input=_input(), members=[_member("a", "emulator/echo"), _member("b", "")]
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _council_call(mesh, request)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(info.value)  # type: ignore[arg-type]
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad) for d in status.details if d.Is(bad.DESCRIPTOR))
    assert [v.field for v in bad.field_violations] == ["members[1].model"]

    unknown = orchestrator_pb2.StreamCouncilRequest(
        input=_input(), members=[_member("a", "emulator/echo"), _member("b", "nowhere/x")]
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _council_call(mesh, unknown)
    err = from_rpc_error(info.value)
    assert err.reason is Reason.MODEL_NOT_FOUND and err.metadata["field"] == "members[1].model"


async def test_stream_council_fail_fast_ends_with_the_first_error(mesh: Mesh) -> None:
    await asyncio.to_thread(mesh.set_fault, "council-ff-busy", "overloaded")
    await asyncio.to_thread(mesh.set_fault, "council-ff-stall", "stall", after=1)
    stats = await asyncio.to_thread(mesh.stats)
    before = stats.get("by_model", {}).get("council-ff-stall", {}).get("disconnects", 0)
    request = orchestrator_pb2.StreamCouncilRequest(
        input=_input("a b c d"),
        members=[
            _member("stalled", "openai/council-ff-stall"),
            _member("busy", "anthropic/council-ff-busy"),
        ],
        fail_fast=True,
    )
    got: list[orchestrator_pb2.StreamCouncilResponse] = []
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for r in stub.StreamCouncil(request, timeout=30):
                got.append(r)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert from_rpc_error(info.value).reason is Reason.OVERLOADED
    assert got[-1].branch == "busy" and got[-1].error.reason == errors_pb2.ERROR_REASON_OVERLOADED
    started = time.monotonic()
    while True:  # the stalled branch's upstream stream was closed
        stats = await asyncio.to_thread(mesh.stats)
        if stats.get("by_model", {}).get("council-ff-stall", {}).get("disconnects", 0) > before:
            break
        assert time.monotonic() - started < 5, "the cancelled branch's upstream stayed open"
        await asyncio.sleep(0.02)
