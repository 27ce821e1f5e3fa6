"""What every llmesh RPC needs besides its mapping, written once: who calls, drain, errors.

A servicer method decorated with `unary` or `unary_stream` gets an `Rpc` in place of grpc's
context: the call's authenticated `Caller` and, for a traced call, its request id, attempt
trail and deadline. The decorator does the rest, the same way for every method:

- authenticates the call before anything else, then raises the error of a request that did
  not decode (a `checks_decoding` method is handed an `Undecodable`);
- tracks the call while it runs, so `RpcGuard.drain` can let in-flight calls finish at
  shutdown and then cancel the rest;
- answers what escapes the method: an `LlmeshError` with its AIP-193 status and details; a
  call cut by its deadline with DEADLINE_EXCEEDED; a call cancelled by `drain` with
  UNAVAILABLE / SHUTTING_DOWN; any other exception with a bare INTERNAL (logged, no details
  leaked); a caller that went away gets no answer;
- for a traced call, sends the trail as trailing metadata on success and on error alike, and
  puts the request id on the error's metadata;
- with tracing on, an error carries the call's span as a ``traceparent`` trailer.

Why decorators and not a `grpc.aio.ServerInterceptor`: an aio interceptor is awaited on every
RPC (health checks and reflection too) and can only change a call by building a new method
handler around the method; for a streaming method, that handler relays every message through
a second async generator, one more frame per event on StreamChat, the hot path. A decorator
wraps once, when the class is defined. A unary call then runs one coroutine more than its
method. A streaming method is a plain function returning its domain stream, and the
decorator's own generator, the one grpc iterates, encodes it event by event: a stream passes
through no more frames than when each method held this code itself. The caller comes as a
parameter (no contextvar to set and read back), and a `checks_decoding` method is still
registered as it is by `SafeRegistrar`, with no decoding frame around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeAlias, TypeVar

import grpc
from opentelemetry import trace

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.request_decoding import Undecodable
from llmesh.services.common.rpc_errors import abort
from llmesh.services.core.caller import Caller
from llmesh.services.core.ids import new_request_id
from llmesh.services.core.priority import Priority
from llmesh.services.core.trail import Trail

__all__ = ["Guarded", "Rpc", "RpcGuard", "Timer", "unary", "unary_stream"]

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
Metadata: TypeAlias = Sequence[tuple[str, str | bytes]]
Trailers: TypeAlias = Callable[[Trail], Sequence[tuple[str, str]]]
"""The trailing metadata of a traced call, from its trail."""


class Principal(Protocol):
    """Who a call acts for, as an authenticator finds it."""

    @property
    def tenant(self) -> str: ...

    @property
    def key_id(self) -> str: ...


class Authenticates(Protocol):
    """Finds who a call acts for from its metadata, or raises `LlmeshError`."""

    async def authenticate(self, metadata: Metadata) -> Principal: ...


class Timer(Protocol):
    """A call's deadline, enforced by the server itself (see `orchestrator.deadline`)."""

    expired: bool
    """True once the deadline fired and cancelled the call."""

    def arm(self) -> None: ...

    def disarm(self) -> None: ...

    def remaining(self) -> float: ...


class Rpc:
    """One call in flight, as its servicer method sees it."""

    __slots__ = ("_metadata", "_task", "caller", "context", "deadline", "request_id", "trail")

    def __init__(
        self,
        context: Context,
        task: asyncio.Task[Any] | None,
        request_id: str = "",
        trail: Trail | None = None,
        deadline: Timer | None = None,
    ) -> None:
        self.context = context
        """grpc's context of the call."""
        self.caller = Caller()
        """Who the call acts for (set once authenticated, before the method runs)."""
        self.request_id = request_id
        """The call's id (traced calls only)."""
        self.trail = trail
        """The call's attempts, sent as trailing metadata (traced calls only)."""
        self.deadline = deadline
        """The call's deadline, armed while it runs (traced calls with a deadline only)."""
        self._task = task
        self._metadata: Metadata | None = None

    @property
    def metadata(self) -> Metadata:
        """The call's invocation metadata (read from grpc once: authentication, the tier
        and the retry number all look at it)."""
        metadata = self._metadata
        if metadata is None:
            metadata = self._metadata = self.context.invocation_metadata() or ()
        return metadata

    def remaining(self) -> float | None:
        """Seconds the call may still take (None: no limit)."""
        if self.deadline is None:
            remaining: float | None = self.context.time_remaining()
            return remaining
        return self.deadline.remaining()

    def settled(self) -> None:
        """The reply is whole: from now on its deadline no longer cuts it."""
        if self.deadline is not None:
            self.deadline.disarm()


class RpcGuard:
    """A server's calls in flight, and how each is authenticated and answered."""

    def __init__(
        self,
        authenticator: Authenticates,
        *,
        log: logging.Logger,
        trailers: Trailers | None = None,
        deadline: Callable[[float | None], Timer | None] | None = None,
    ) -> None:
        """`trailers` and `deadline` (made from grpc's time remaining, None for no
        deadline) apply to traced calls; `log` records the exceptions answered INTERNAL."""
        self._auth = authenticator
        self._log = log
        self._trailers = trailers
        self._deadline = deadline
        self._active: set[asyncio.Task[Any]] = set()
        self._shutting_down = False

    async def drain(self, grace: float) -> None:
        """Let in-flight calls finish for up to `grace` seconds, then end the rest.

        Calls still running are cancelled (closing their upstream streams) and answered
        with UNAVAILABLE / SHUTTING_DOWN, so no client mistakes a cut stream for a reply.
        """
        if self._active:
            await asyncio.wait(list(self._active), timeout=grace)
        self._shutting_down = True
        leftovers = list(self._active)
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.wait(leftovers, timeout=5)

    def _open(self, context: Context, traced: bool) -> Rpc:
        """The call, tracked from now on (and, traced, its trail begun and deadline armed)."""
        task = asyncio.current_task()
        if task is not None:
            self._active.add(task)
        if not traced:
            return Rpc(context, task)
        rpc = Rpc(context, task, new_request_id(), Trail(started=time.monotonic()))
        if self._deadline is not None:
            rpc.deadline = self._deadline(context.time_remaining())
            if rpc.deadline is not None:
                rpc.deadline.arm()
        return rpc

    def _close(self, rpc: Rpc) -> None:
        if rpc.deadline is not None:
            rpc.deadline.disarm()
        if rpc._task is not None:
            self._active.discard(rpc._task)

    async def _authenticate(self, rpc: Rpc) -> None:
        """Who the call acts for (UNAUTHENTICATED when auth is on and no valid key came)."""
        principal = await self._auth.authenticate(rpc.metadata)
        ceiling = getattr(principal, "max_priority", None)
        rpc.caller = Caller(
            principal.tenant,
            principal.key_id,
            default_priority=getattr(principal, "default_priority", None),
            max_priority=Priority.CRITICAL if ceiling is None else ceiling,
        )

    def _send_trailers(self, rpc: Rpc) -> None:
        if rpc.trail is not None and self._trailers is not None:
            rpc.context.set_trailing_metadata(self._trailers(rpc.trail))

    def _answers(self, rpc: Rpc) -> bool:
        """Whether a cancelled call still gets an answer: its deadline or a shutdown ended it.

        A cancellation by the caller going away needs none. The deadline's own cancellation
        is taken back (`uncancel`), so the answer can still be sent.
        """
        if rpc.deadline is not None and rpc.deadline.expired:
            if rpc._task is not None and rpc._task.cancelling():
                rpc._task.uncancel()
            return True
        return self._shutting_down

    async def _abort(self, rpc: Rpc, exc: BaseException, method: str) -> None:
        """End the call with the error for `exc` (and a traced call's trailers)."""
        err = self._error(rpc, exc, method)
        if rpc.request_id:
            err.metadata.setdefault("request_id", rpc.request_id)
        trailers = () if rpc.trail is None or self._trailers is None else self._trailers(rpc.trail)
        await abort(rpc.context, err, (*trailers, *_traceparent()))

    def _error(self, rpc: Rpc, exc: BaseException, method: str) -> LlmeshError:
        if isinstance(exc, LlmeshError):
            return exc
        if isinstance(exc, asyncio.CancelledError):
            if rpc.deadline is not None and rpc.deadline.expired:
                return LlmeshError(
                    Reason.DEADLINE_EXCEEDED, "the call's deadline passed before the reply finished"
                )
            return LlmeshError(
                Reason.SHUTTING_DOWN,
                "the server is shutting down; the call was stopped",
                retry_after=1.0,
            )
        self._log.error("%s failed", method, exc_info=exc)
        return LlmeshError(Reason.INTERNAL, f"internal error: {type(exc).__name__}")


def _traceparent() -> tuple[tuple[str, str], ...]:
    """The call's span as a ``traceparent`` trailer, so a failed call's trace can be found
    (none when the call is not traced: tracing off, or no span around it)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return ()
    flags = f"{context.trace_flags:02x}"
    return (("traceparent", f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags}"),)


class Guarded(Protocol):
    """A servicer whose methods are decorated with `unary` or `unary_stream`."""

    @property
    def guard(self) -> RpcGuard: ...


S = TypeVar("S", bound=Guarded)
Q = TypeVar("Q")
E = TypeVar("E")
P = TypeVar("P")

UnaryMethod: TypeAlias = Callable[[S, Q, Rpc], Awaitable[P]]
UnaryHandler: TypeAlias = Callable[[S, Q, Context], Coroutine[Any, Any, P]]
StreamMethod: TypeAlias = Callable[[S, Q, Rpc], AsyncGenerator[E, None]]
StreamHandler: TypeAlias = Callable[[S, Q, Context], AsyncGenerator[P, None]]


def unary(*, traced: bool = False) -> Callable[[UnaryMethod[S, Q, P]], UnaryHandler[S, Q, P]]:
    """A unary method `(self, request, rpc) -> reply` as grpc's `(self, request, context)`.

    `traced`: the call gets a request id, an attempt trail (sent as trailing metadata) and
    its deadline enforced.
    """

    def decorate(method: UnaryMethod[S, Q, P]) -> UnaryHandler[S, Q, P]:
        name = method.__name__

        @functools.wraps(method)
        async def handler(self: S, request: Q, context: Context) -> P:
            guard = self.guard
            rpc = guard._open(context, traced)
            try:
                await guard._authenticate(rpc)
                if isinstance(request, Undecodable):
                    raise request.error
                reply = await method(self, request, rpc)
                guard._send_trailers(rpc)
                return reply
            except asyncio.CancelledError as exc:
                if not guard._answers(rpc):
                    raise  # the caller went away: nothing to answer
                await guard._abort(rpc, exc, name)
                raise  # pragma: no cover - abort raises
            except grpc.aio.AbortError:
                raise  # the method answered by itself
            except Exception as exc:  # a bug must not kill the server or leak details
                await guard._abort(rpc, exc, name)
                raise  # pragma: no cover - abort raises
            finally:
                guard._close(rpc)

        return handler

    return decorate


def unary_stream(
    encode: Callable[[E], P], *, terminal: type[Any] | None = None, traced: bool = False
) -> Callable[[StreamMethod[S, Q, E]], StreamHandler[S, Q, P]]:
    """A streaming method `(self, request, rpc) -> domain events` as grpc's
    `(self, request, context) -> messages`, each event turned into a message by `encode`.

    The method is a plain function returning the stream (closed with the call). An event
    of type `terminal` makes the reply whole: the deadline no longer cuts it. `traced` as
    for `unary`.
    """

    def decorate(method: StreamMethod[S, Q, E]) -> StreamHandler[S, Q, P]:
        name = method.__name__

        @functools.wraps(method)
        async def handler(self: S, request: Q, context: Context) -> AsyncGenerator[P, None]:
            guard = self.guard
            rpc = guard._open(context, traced)
            try:
                await guard._authenticate(rpc)
                if isinstance(request, Undecodable):
                    raise request.error
                events = method(self, request, rpc)
                async with contextlib.aclosing(events):
                    async for event in events:
                        if type(event) is terminal:
                            rpc.settled()
                        yield encode(event)
                guard._send_trailers(rpc)
            except asyncio.CancelledError as exc:
                if not guard._answers(rpc):
                    raise  # the caller went away: nothing to answer
                await guard._abort(rpc, exc, name)
            except grpc.aio.AbortError:
                raise  # the method answered by itself
            except Exception as exc:  # a bug must not kill the server or leak details
                await guard._abort(rpc, exc, name)
            finally:
                guard._close(rpc)

        return handler

    return decorate
