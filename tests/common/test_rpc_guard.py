"""The servicers' shared guard over a real grpc.aio server: auth, errors, deadline, drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.request_decoding import Undecodable
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.common.rpc_guard import Rpc, RpcGuard, unary, unary_stream
from llmesh.services.core.caller import Caller
from llmesh.services.core.trail import Trail
from llmesh.services.orchestrator.deadline import Deadline

SERVICE = "test.Tiny"


class Keys:
    """Refuses ``authorization: none``; otherwise acts for the ``tenant`` and ``key`` sent."""

    async def authenticate(self, metadata: Sequence[tuple[str, str | bytes]]) -> Caller:
        sent = {k: str(v) for k, v in metadata}
        if sent.get("authorization") == "none":
            raise LlmeshError(Reason.UNAUTHENTICATED, "missing API key")
        return Caller(sent.get("tenant", "default"), sent.get("key", ""))


@dataclass(frozen=True)
class Done:
    """The tiny stream's terminal event."""


def _encode(event: bytes | Done) -> bytes:
    return b"done" if isinstance(event, Done) else event


def _trailers(trail: Trail) -> list[tuple[str, str]]:
    return [("x-attempts", str(len(trail.attempts)))]


@dataclass
class Tiny:
    """Requests name what the method does: ``ok``, ``fail``, ``bug``, ``stall``, ``quick``."""

    guard: RpcGuard
    callers: list[Caller] = field(default_factory=list)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    called: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def _act(self, request: bytes, rpc: Rpc) -> bytes:
        async with self.called:
            self.callers.append(rpc.caller)
            self.called.notify_all()
        if request == b"fail":
            raise LlmeshError(Reason.MODEL_NOT_FOUND, "no model m", metadata={"model": "m"})
        if request == b"bug":
            raise RuntimeError("secret detail")
        if request == b"quick":
            await asyncio.sleep(0.2)
        if request == b"stall":
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        return b"ok:" + rpc.caller.tenant.encode()

    @unary()
    async def Unary(self, request: bytes, rpc: Rpc) -> bytes:
        return await self._act(request, rpc)

    @unary(traced=True)
    async def Traced(self, request: bytes, rpc: Rpc) -> bytes:
        return await self._act(request, rpc)

    @unary_stream(_encode, terminal=Done, traced=True)
    def Stream(self, request: bytes, rpc: Rpc) -> AsyncGenerator[bytes | Done, None]:
        async def events() -> AsyncGenerator[bytes | Done, None]:
            yield b"first"
            yield await self._act(request, rpc)
            yield Done()

        return events()


def _decode(raw: bytes) -> Any:
    return Undecodable("test.Request") if raw == b"garbage" else raw


@pytest.fixture
async def tiny() -> AsyncIterator[tuple[Tiny, grpc.aio.Channel]]:
    guard = RpcGuard(
        Keys(), log=logging.getLogger("test.tiny"), trailers=_trailers, deadline=Deadline.of
    )
    servicer = Tiny(guard)
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(servicer.Unary, _decode),
        "Traced": grpc.unary_unary_rpc_method_handler(servicer.Traced, _decode),
        "Stream": grpc.unary_stream_rpc_method_handler(servicer.Stream, _decode),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield servicer, channel
    finally:
        await server.stop(None)


def _unary(channel: grpc.aio.Channel, method: str) -> Any:
    return channel.unary_unary(f"/{SERVICE}/{method}")


def _stream(channel: grpc.aio.Channel) -> Any:
    return channel.unary_stream(f"/{SERVICE}/Stream")


async def _called(servicer: Tiny, times: int) -> None:
    async with servicer.called:
        await asyncio.wait_for(servicer.called.wait_for(lambda: len(servicer.callers) >= times), 5)


async def _failure(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        if isinstance(call, grpc.aio.UnaryStreamCall):
            while await call.read() is not grpc.aio.EOF:
                pass
        else:
            await call
    return info.value


async def test_the_method_gets_the_authenticated_caller(
    tiny: tuple[Tiny, grpc.aio.Channel],
) -> None:
    servicer, channel = tiny
    reply = await _unary(channel, "Unary")(b"ok", metadata=(("tenant", "acme"),), timeout=5)
    assert reply == b"ok:acme"
    assert servicer.callers == [Caller("acme", "")]


async def test_a_refused_call_never_reaches_the_method(tiny: tuple[Tiny, grpc.aio.Channel]) -> None:
    servicer, channel = tiny
    for call in (
        _unary(channel, "Unary")(b"ok", metadata=(("authorization", "none"),), timeout=5),
        _unary(channel, "Unary")(b"garbage", metadata=(("authorization", "none"),), timeout=5),
        _stream(channel)(b"ok", metadata=(("authorization", "none"),), timeout=5),
    ):
        err = await _failure(call)
        assert err.code() is grpc.StatusCode.UNAUTHENTICATED
    assert servicer.callers == []


async def test_a_request_that_did_not_decode_is_invalid(
    tiny: tuple[Tiny, grpc.aio.Channel],
) -> None:
    _, channel = tiny
    for call in (
        _unary(channel, "Traced")(b"garbage", timeout=5),
        _stream(channel)(b"garbage", timeout=5),
    ):
        err = await _failure(call)
        assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert from_rpc_error(err).reason is Reason.INVALID_REQUEST


async def test_an_llmesh_error_is_answered_with_its_status_and_details(
    tiny: tuple[Tiny, grpc.aio.Channel],
) -> None:
    _, channel = tiny
    err = await _failure(_unary(channel, "Unary")(b"fail", timeout=5))
    assert err.code() is grpc.StatusCode.NOT_FOUND
    answered = from_rpc_error(err)
    assert answered.reason is Reason.MODEL_NOT_FOUND
    assert answered.message == "no model m"
    assert answered.metadata == {"model": "m"}  # an untraced call has no request id


async def test_a_traced_call_sends_its_trailers_and_its_request_id(
    tiny: tuple[Tiny, grpc.aio.Channel],
) -> None:
    _, channel = tiny
    call = _unary(channel, "Traced")(b"ok", timeout=5)
    assert await call == b"ok:default"
    assert dict(await call.trailing_metadata())["x-attempts"] == "0"
    for call in (_unary(channel, "Traced")(b"fail", timeout=5), _stream(channel)(b"fail")):
        err = await _failure(call)
        assert err.code() is grpc.StatusCode.NOT_FOUND
        assert re.fullmatch(r"req_[0-9a-f]{32}", from_rpc_error(err).metadata["request_id"])
        assert dict(err.trailing_metadata())["x-attempts"] == "0"
    stream = _stream(channel)(b"ok", timeout=5)
    assert [m async for m in stream] == [b"first", b"ok:default", b"done"]
    assert dict(await stream.trailing_metadata())["x-attempts"] == "0"


async def test_a_bug_is_internal_without_details_and_logged(
    tiny: tuple[Tiny, grpc.aio.Channel], caplog: pytest.LogCaptureFixture
) -> None:
    _, channel = tiny
    for call in (_unary(channel, "Unary")(b"bug", timeout=5), _stream(channel)(b"bug", timeout=5)):
        err = await _failure(call)
        assert err.code() is grpc.StatusCode.INTERNAL
        assert "secret" not in (err.details() or "")
        assert from_rpc_error(err).reason is Reason.INTERNAL
    assert "Unary failed" in caplog.text and "Stream failed" in caplog.text
    assert "secret detail" in caplog.text  # the log has what the caller must not see


async def test_a_call_cut_by_its_deadline_is_answered_by_the_server(
    tiny: tuple[Tiny, grpc.aio.Channel],
) -> None:
    servicer, channel = tiny
    for start in (_unary(channel, "Traced"), _stream(channel)):  # one after the other
        err = await _failure(start(b"stall", timeout=0.5))
        assert err.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        answered = from_rpc_error(err)
        assert answered.reason is Reason.DEADLINE_EXCEEDED
        assert "request_id" in answered.metadata  # llmesh's answer, not grpc's own
        assert dict(err.trailing_metadata())["x-attempts"] == "0"
        assert servicer.cancelled.is_set()  # the method's work was stopped
        servicer.cancelled.clear()


async def test_drain_lets_quick_calls_finish_and_ends_the_rest(
    tiny: tuple[Tiny, grpc.aio.Channel],
) -> None:
    servicer, channel = tiny
    quick = _unary(channel, "Unary")(b"quick", timeout=10)
    stuck_unary = _unary(channel, "Traced")(b"stall", timeout=10)
    stuck_stream = _stream(channel)(b"stall", timeout=10)
    assert await stuck_stream.read() == b"first"
    await _called(servicer, 3)  # every call is in its method
    await asyncio.wait_for(servicer.guard.drain(0.5), 5)
    assert await quick == b"ok:default"
    for call in (stuck_unary, stuck_stream):
        err = await _failure(call)
        assert err.code() is grpc.StatusCode.UNAVAILABLE
        assert from_rpc_error(err).reason is Reason.SHUTTING_DOWN
    assert servicer.cancelled.is_set()


async def test_a_caller_going_away_gets_no_answer(
    tiny: tuple[Tiny, grpc.aio.Channel], monkeypatch: pytest.MonkeyPatch
) -> None:
    servicer, channel = tiny
    answered: list[LlmeshError] = []

    async def abort(context: Any, err: LlmeshError, trailers: Any = ()) -> None:
        answered.append(err)

    monkeypatch.setattr("llmesh.services.common.rpc_guard.abort", abort)
    stream = _stream(channel)(b"stall", timeout=10)
    assert await stream.read() == b"first"
    await _called(servicer, 1)
    stream.cancel()
    await asyncio.wait_for(servicer.cancelled.wait(), 5)
    with contextlib.suppress(asyncio.CancelledError):
        await stream.read()
    await asyncio.sleep(0.05)
    assert answered == []
    assert not servicer.guard._active  # no longer in flight


class _CountingContext:
    """A context that counts how often its metadata is read."""

    def __init__(self) -> None:
        self.reads = 0

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        self.reads += 1
        return (("llmesh-priority", "high"),)


def test_the_metadata_is_read_from_grpc_once_per_call() -> None:
    context = _CountingContext()
    rpc = Rpc(context, None)  # type: ignore[arg-type]
    assert rpc.metadata == (("llmesh-priority", "high"),)
    assert rpc.metadata == (("llmesh-priority", "high"),)
    assert context.reads == 1
