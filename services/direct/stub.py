"""The orchestrator's gRPC stub interface, answered in-process by its servicer.

`DirectStub` has one attribute per method of a service, called the way grpc's generated
stubs are (``stub.Chat(request, timeout=..., metadata=...)``) and answering the same way: a
unary call is awaitable, a streaming call has ``read()`` (``grpc.aio.EOF`` at the end) and
async iteration, both have ``trailing_metadata()`` and ``cancel()``, and a failed call raises
`grpc.aio.AioRpcError` with the status (and AIP-193 details) the gRPC server would send. So
every gateway route runs unchanged on top of it, with no serialization and no socket.

The servicer's own decorated handlers run the call (`llmesh.services.common.rpc_guard`): the
caller's ``authorization`` is checked by the same authenticator, the timeout becomes the
call's deadline, and the request id, tenant, priority and retry-count metadata reach the
call as they do over gRPC. The handler runs in the HTTP request's own task, so a client that
disconnects cancels the call exactly as a gRPC client going away does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator, Sequence
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

__all__ = ["DirectContext", "DirectStub"]

Metadata = Sequence[tuple[str, str | bytes]]


class DirectContext:
    """The part of ``grpc.aio.ServicerContext`` a guarded servicer method uses."""

    __slots__ = ("_deadline", "_metadata", "code", "details", "trailers")

    def __init__(self, metadata: Metadata | None, timeout: float | None) -> None:
        self._metadata = tuple(metadata or ())
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self.code = grpc.StatusCode.OK
        """The status the call ended with (set by `abort`)."""
        self.details = ""
        self.trailers: tuple[tuple[str, str | bytes], ...] = ()
        """The trailing metadata the call sent."""

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    def time_remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(self._deadline - time.monotonic(), 0.0)

    def set_trailing_metadata(self, trailers: Metadata) -> None:
        self.trailers = tuple(trailers)

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()
    ) -> None:
        """End the call with a status, as grpc's ``abort``: raises ``grpc.aio.AbortError``."""
        self.code = code
        self.details = details
        self.trailers = tuple(trailing_metadata)
        raise grpc.aio.AbortError()

    def error(self) -> grpc.aio.AioRpcError:
        """The error a gRPC client would have raised for the call's status."""
        return grpc.aio.AioRpcError(
            self.code,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(*self.trailers),
            self.details,
        )


class UnaryCall:
    """One unary call: await it for the reply (or its `grpc.aio.AioRpcError`)."""

    __slots__ = ("_context", "_coro", "_state", "_task")

    def __init__(
        self,
        handler: Callable[..., Coroutine[Any, Any, Any]],
        request: Any,
        context: DirectContext,
    ) -> None:
        self._context = context
        self._coro = handler(request, context)
        self._task: asyncio.Task[Any] | None = None
        self._state = "new"  # -> running -> done

    async def _run(self) -> Any:
        self._state = "running"
        self._task = asyncio.current_task()
        try:
            return await self._coro
        except grpc.aio.AbortError:
            raise self._context.error() from None
        finally:
            self._state = "done"

    def __await__(self) -> Generator[Any, None, Any]:
        return self._run().__await__()

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata(*self._context.trailers)

    def cancel(self) -> bool:
        """Cancel a call still running in another task (as `asyncio.gather` runs them)."""
        if self._state == "new":
            self._state = "done"
            self._coro.close()  # never awaited: nothing ran
            return True
        task = self._task
        if self._state == "running" and task is not None and task is not asyncio.current_task():
            return task.cancel()
        return False


_closing: set[asyncio.Task[Any]] = set()
"""Streams closed by `cancel` while suspended, kept alive until their cleanup ran."""


class StreamCall:
    """One server-streaming call: `read` messages (``grpc.aio.EOF`` at the end) or iterate."""

    __slots__ = ("_context", "_done", "_events")

    def __init__(
        self,
        handler: Callable[..., AsyncGenerator[Any, None]],
        request: Any,
        context: DirectContext,
    ) -> None:
        self._context = context
        self._events = handler(request, context)
        self._done = False

    async def read(self) -> Any:
        if self._done:
            return grpc.aio.EOF
        try:
            return await self._events.__anext__()
        except StopAsyncIteration:
            self._done = True
            return grpc.aio.EOF
        except grpc.aio.AbortError:
            self._done = True
            raise self._context.error() from None
        except BaseException:
            self._done = True
            raise

    def __aiter__(self) -> StreamCall:
        return self

    async def __anext__(self) -> Any:
        message = await self.read()
        if message is grpc.aio.EOF:
            raise StopAsyncIteration
        return message

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata(*self._context.trailers)

    def cancel(self) -> bool:
        """Close a stream left unfinished: its call is cancelled and cleans up."""
        if self._done:
            return False
        self._done = True
        task = asyncio.ensure_future(self._events.aclose())
        _closing.add(task)
        task.add_done_callback(_closing.discard)
        return True


class _UnaryMethod:
    __slots__ = ("_handler",)

    def __init__(self, handler: Callable[..., Coroutine[Any, Any, Any]]) -> None:
        self._handler = handler

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        **_: Any,
    ) -> UnaryCall:
        return UnaryCall(self._handler, request, DirectContext(metadata, timeout))


class _StreamMethod:
    __slots__ = ("_handler",)

    def __init__(self, handler: Callable[..., AsyncGenerator[Any, None]]) -> None:
        self._handler = handler

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        **_: Any,
    ) -> StreamCall:
        return StreamCall(self._handler, request, DirectContext(metadata, timeout))


class DirectStub:
    """A stub for `service` whose methods call `servicer`'s handlers in-process.

    Every method of the service becomes an attribute of the same name; ``timeout``,
    ``metadata`` and nothing else of grpc's call options apply (others are accepted and
    ignored, as there is no channel)."""

    def __init__(self, service: ServiceDescriptor, servicer: Any) -> None:
        for method in service.methods:
            handler = getattr(servicer, method.name)
            if method.server_streaming:
                setattr(self, method.name, _StreamMethod(handler))
            else:
                setattr(self, method.name, _UnaryMethod(handler))

    def __getattr__(self, name: str) -> Any:  # for type checkers: methods are set per service
        raise AttributeError(name)
