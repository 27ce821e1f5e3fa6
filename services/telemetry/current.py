"""The current OpenTelemetry context, read and changed in one step.

OpenTelemetry's context API goes through several functions for each read (``get_value`` ->
``get_current`` -> the runtime context -> its ``ContextVar``) and copies a context twice to
set a span in it (``set_value``). With the default runtime context (a ``ContextVar``; the
one unless ``OTEL_PYTHON_CONTEXT`` names another) these functions use the variable
directly, with the same contexts, tokens and values; with another runtime context they call
the API. Where the C extension `_current_native` was built (setup.py: optional) and the
runtime context is the default one, the public functions are its C versions: the same
contexts and tokens, without a Python frame (several run on every traced call); the Python
ones below stay the reference, and serve anything unusual.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

from opentelemetry import context as context_api
from opentelemetry.context.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace.propagation import _SPAN_KEY

__all__ = ["attach", "attach_span", "current", "detach", "with_span"]

_log = logging.getLogger("llmesh.telemetry")


def _variable() -> ContextVar[Context] | None:
    """The runtime context's variable, if it is the default runtime context."""
    runtime = context_api._RUNTIME_CONTEXT
    if type(runtime) is not ContextVarsRuntimeContext:  # a subclass may change attach
        return None
    return runtime._current_context


_VARIABLE = _variable()


def _current() -> Context:
    """The current context (``context.get_current()``)."""
    if _VARIABLE is not None:
        return _VARIABLE.get()
    return context_api.get_current()


def _with_span(span: Any, context: Context | None = None) -> Context:
    """`context` (the current one when None) with `span` as its span
    (``trace.set_span_in_context``)."""
    base = _current() if context is None else context
    return Context(base, **{_SPAN_KEY: span})


def _attach_span(span: Any, context: Context | None = None) -> Token[Context]:
    """Make `context` (the current one when None) with `span` as its span current, in one
    step (``attach(with_span(span, context))``); the token restores the one before."""
    if _VARIABLE is None:
        return context_api.attach(_with_span(span, context))
    base = _VARIABLE.get() if context is None else context
    return _VARIABLE.set(Context(base, **{_SPAN_KEY: span}))


def _attach(context: Context) -> Token[Context]:
    """Make `context` current; the token restores the one before (``context.attach``)."""
    if _VARIABLE is not None:
        return _VARIABLE.set(context)
    return context_api.attach(context)


def _detach(token: Token[Context]) -> None:
    """Restore the context `token` replaced (``context.detach``: a failure is logged)."""
    if _VARIABLE is None:
        context_api.detach(token)
        return
    try:
        _VARIABLE.reset(token)
    except Exception:
        _log.exception("Failed to detach context")


def _native() -> Any:
    """`_current_native`, configured with the default runtime context's variable; None where
    it was not built or another runtime context is in use."""
    if _VARIABLE is None:
        return None
    try:
        module = importlib.import_module("llmesh.services.telemetry._current_native")
    except ImportError:
        return None
    module.configure(_VARIABLE, Context, _SPAN_KEY, _with_span, _attach_span, _detach)
    return module


_NATIVE = _native()
PYTHON = {
    "current": _current,
    "with_span": _with_span,
    "attach_span": _attach_span,
    "attach": _attach,
    "detach": _detach,
}
"""The Python functions (tests compare the C ones with them)."""

current: Callable[[], Context] = _current if _NATIVE is None else _NATIVE.current
with_span: Callable[..., Context] = _with_span if _NATIVE is None else _NATIVE.with_span
attach_span: Callable[..., Token[Context]] = (
    _attach_span if _NATIVE is None else _NATIVE.attach_span
)
attach: Callable[[Context], Token[Context]] = _attach if _NATIVE is None else _NATIVE.attach
detach: Callable[[Token[Context]], None] = _detach if _NATIVE is None else _NATIVE.detach
