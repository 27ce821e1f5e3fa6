"""The caller's deadline: answered by llmesh with details, and recorded as such."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from llmesh.services.common.errors import Reason
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.core import CallStatus
from llmesh.services.orchestrator.deadline import MAX_MARGIN, MIN_MARGIN, Deadline, margin
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.ledger import ledger_record
from tests.support.mesh import Mesh, chat_input

# -- the timer -------------------------------------------------------------------------


def test_margin_grows_with_the_timeout_within_bounds() -> None:
    assert margin(0) == MIN_MARGIN
    assert MIN_MARGIN < margin(5) < MAX_MARGIN
    assert margin(3600) == MAX_MARGIN


async def test_a_deadline_cancels_its_task_and_says_so() -> None:
    async def handler() -> Deadline:
        deadline = Deadline(0.05)
        deadline.arm()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            assert deadline.expired and deadline.passed() and deadline.remaining() == 0
            return deadline
        raise AssertionError("the deadline did not fire")

    await asyncio.wait_for(handler(), 2)


async def test_a_disarmed_deadline_leaves_a_finished_call_alone() -> None:
    deadline = Deadline(0.03)
    deadline.arm()
    deadline.disarm()
    await asyncio.sleep(0.1)  # past the deadline: nothing cancels this task
    assert not deadline.expired and deadline.passed()


# -- over gRPC -----------------------------------------------------------------------------


async def _fails(address: str, rpc: str, request: Any, timeout: float = 10) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            if rpc == "StreamChat":
                async for _ in stub.StreamChat(request, timeout=timeout):
                    pass
            else:
                await stub.Chat(request, timeout=timeout)
    return info.value


@pytest.mark.parametrize("rpc", ["StreamChat", "Chat"])
async def test_a_passed_deadline_is_answered_with_details_and_recorded(
    mesh: Mesh, rpc: str
) -> None:
    """Mid-stream, the caller's deadline ends the call: DEADLINE_EXCEEDED with a request id,
    and a ledger record saying so (not 'cancelled')."""
    assert mesh.config is not None
    model = f"dl-stall-{rpc.lower()}"
    await asyncio.to_thread(mesh.set_fault, model, "stall", after=1)
    request_type = (
        orchestrator_pb2.StreamChatRequest if rpc == "StreamChat" else orchestrator_pb2.ChatRequest
    )
    exc = await _fails(
        mesh.orchestrator_address,
        rpc,
        request_type(input=chat_input(f"anthropic/{model}", "one two three four")),
        timeout=1.0,
    )
    assert exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    err = from_rpc_error(exc)
    assert err.reason is Reason.DEADLINE_EXCEEDED
    assert "Stream removed" not in (exc.details() or "")
    request_id = err.metadata["request_id"]
    record = await ledger_record(mesh.config.database_url, request_id)
    assert (record.status, record.error_reason) == (CallStatus.ERROR, "DEADLINE_EXCEEDED")
    assert record.input_tokens > 0, "the provider reported input usage before the stall"


@pytest.mark.parametrize(
    ("inp", "reason"),
    [
        (chat_input("nope/x"), Reason.MODEL_NOT_FOUND),
        (chat_pb2.ChatInput(model="emulator/echo"), Reason.INVALID_REQUEST),
    ],
)
async def test_every_error_names_its_request(
    mesh: Mesh, inp: chat_pb2.ChatInput, reason: Reason
) -> None:
    for rpc, request in (
        ("StreamChat", orchestrator_pb2.StreamChatRequest(input=inp)),
        ("Chat", orchestrator_pb2.ChatRequest(input=inp)),
    ):
        err = from_rpc_error(await _fails(mesh.orchestrator_address, rpc, request))
        assert err.reason is reason
        assert err.metadata["request_id"].startswith("req_")
