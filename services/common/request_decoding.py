"""Decode request messages inside the servicer call, so bad bytes get a clear error.

grpc.aio decodes a request with the handler's ``request_deserializer`` before any servicer
code runs; when that raises (a `DecodeError` for garbage, invalid UTF-8 in a string field, or
nesting past protobuf's recursion limit) grpc answers UNKNOWN ``Unexpected <class ...>`` and
logs a traceback. `safe_handler` registers the method without a deserializer and decodes the
raw bytes itself, where it can answer INVALID_ARGUMENT (reason INVALID_REQUEST) with a
message naming the expected type. Each request is still parsed exactly once; the wrapping
happens once, at registration, not per call. A method marked `checks_decoding` (llmesh's
chat methods, the hot path) is not wrapped, so neither the call nor a stream's events pass
through an extra frame: its deserializer hands it an `Undecodable` instead of raising, and
the method raises `Undecodable.error` itself before anything else. The wrapped methods run on
the event loop (as every llmesh servicer does), also a synchronous one such as the
generated base class's "Method not implemented!" stub.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import grpc
from google.protobuf.message import DecodeError

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.rpc_errors import abort

__all__ = ["HandlerWrapper", "SafeRegistrar", "Undecodable", "checks_decoding", "safe_handler"]

Deserializer = Callable[[bytes], Any]
_F = TypeVar("_F", bound=Callable[..., Any])
_MARK = "__llmesh_checks_decoding__"

_UNDECODABLE = (DecodeError, RecursionError, UnicodeDecodeError, ValueError)
"""What protobuf raises for bytes that are not a valid message of the expected type."""


def undecodable(type_name: str) -> LlmeshError:
    """The error for a request that is not a valid `type_name`."""
    return LlmeshError(
        Reason.INVALID_REQUEST,
        f"the request is not a valid {type_name} message: its bytes could not be decoded "
        "(malformed protobuf, invalid UTF-8 in a string field, or nested too deeply)",
        metadata={"message_type": type_name},
    )


class Undecodable:
    """What a `checks_decoding` method receives in place of a request that did not decode."""

    __slots__ = ("error",)

    def __init__(self, type_name: str) -> None:
        self.error = undecodable(type_name)
        """The INVALID_REQUEST error to answer with."""


def checks_decoding(method: _F) -> _F:
    """Mark a servicer method that raises `Undecodable.error` when given one (it is then
    registered unwrapped: no extra frame per call, nor per event for a stream)."""
    setattr(method, _MARK, True)
    return method


def _lenient(decode: Deserializer, name: str) -> Deserializer:
    def deserialize(raw: bytes) -> Any:
        try:
            return decode(raw)
        except _UNDECODABLE:
            return Undecodable(name)

    return deserialize


def _type_name(deserializer: Deserializer) -> str:
    owner = getattr(deserializer, "__self__", None)  # `Message.FromString` is a classmethod
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "request"))


def safe_handler(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """The same handler, decoding its (unary) request itself; streamed requests unchanged."""
    deserializer: Deserializer | None = handler.request_deserializer
    if deserializer is None or handler.request_streaming:
        return handler
    name = _type_name(deserializer)
    decode = deserializer
    if handler.response_streaming:
        inner_stream = handler.unary_stream
        if getattr(inner_stream, _MARK, False):
            return handler._replace(request_deserializer=_lenient(decode, name))  # type: ignore[attr-defined,no-any-return]

        async def unary_stream(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                request = decode(raw)
            except _UNDECODABLE:
                await abort(context, undecodable(name))
                return
            result = inner_stream(request, context)
            if inspect.isasyncgen(result):
                async with contextlib.aclosing(result):  # closed with this one, at once
                    async for message in result:
                        yield message
            elif inspect.isawaitable(result):  # a coroutine writing with `context.write`
                await result
            else:  # a plain iterator (e.g. the generated base class's unimplemented stub)
                for message in result:
                    yield message

        return handler._replace(request_deserializer=None, unary_stream=unary_stream)  # type: ignore[attr-defined,no-any-return]

    inner = handler.unary_unary
    if getattr(inner, _MARK, False):
        return handler._replace(request_deserializer=_lenient(decode, name))  # type: ignore[attr-defined,no-any-return]

    async def unary_unary(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            request = decode(raw)
        except _UNDECODABLE:
            await abort(context, undecodable(name))
            return None
        result = inner(request, context)
        # llmesh's servicers are async; the generated base class's unimplemented stubs are not
        return await result if inspect.isawaitable(result) else result

    return handler._replace(request_deserializer=None, unary_unary=unary_unary)  # type: ignore[attr-defined,no-any-return]


@runtime_checkable
class HandlerWrapper(Protocol):
    """Wraps a method's handler once, at registration (e.g. tracing's server spans), where
    an interceptor would do the same work on every call."""

    def wrap_handler(self, handler: Any, method: str) -> Any:
        """`handler` of `method` (``/package.Service/Method``), wrapped or as it is."""
        ...


class _WrappedGeneric(grpc.GenericRpcHandler):  # type: ignore[misc]
    """A generic handler whose handlers are wrapped, each once per method."""

    def __init__(self, inner: grpc.GenericRpcHandler, wrap: Callable[[Any, str], Any]) -> None:
        self._inner = inner
        self._wrap = wrap
        self._known: dict[str, tuple[Any, Any]] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method  # type: ignore[attr-defined]
        if isinstance(method, bytes):
            method = method.decode()
        known = self._known.get(method)
        if known is None or known[0] is not handler:
            known = self._known[method] = (handler, self._wrap(handler, method))
        return known[1]


class SafeRegistrar:
    """Stands in for a `grpc.aio.Server` while generated ``add_*_to_server`` functions run.

    A service's method handlers are wrapped with `safe_handler` and served through one
    generic handler (a lookup by the method's path), not as grpc's registered methods:
    grpc.aio's server keeps one pending request per registered method and waits on all of
    them (``asyncio.wait``) for every call it accepts, so each registered method made every
    call dearer (the orchestrator's 32 cost some 285 Python-level calls a call, a fifth of
    all it made, and 7 % of its instructions; only reflection's one method is still
    registered, by grpc_reflection). Generic handlers of a service that also gave its
    methods are replaced by that wrapped one; others pass through at `finish`. Every
    handler is then wrapped by `wrappers`, in order (the first innermost).
    """

    def __init__(self, server: grpc.aio.Server, wrappers: Sequence[HandlerWrapper] = ()) -> None:
        self._server = server
        self._generic: list[grpc.GenericRpcHandler] = []
        self._wrappers = tuple(wrappers)

    def _wrapped(self, handler: Any, method: str) -> Any:
        for wrapper in self._wrappers:
            handler = wrapper.wrap_handler(handler, method)
        return handler

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        """Held until `finish` (the generated code adds these before the registered ones)."""
        self._generic.extend(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        """Wrap a service's methods and serve them by path (see the class); drop the
        generic handler the generated code added for them."""
        wrapped = {
            method: self._wrapped(safe_handler(h), f"/{service}/{method}")
            for method, h in handlers.items()
        }
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, wrapped),)
        )
        if self._generic:
            self._generic.pop()  # the generated generic handler for the same methods

    def finish(self) -> None:
        """Register generic handlers that came without registered methods, unchanged."""
        if self._generic:
            generic = self._generic
            if self._wrappers:
                generic = [_WrappedGeneric(g, self._wrapped) for g in generic]
            self._server.add_generic_rpc_handlers(tuple(generic))
            self._generic.clear()
