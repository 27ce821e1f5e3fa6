"""The call log: one structured record per finished call, at INFO on ``llmesh.calls``.

Each record carries who and what (request id, trace and span ids when a span is current,
tenant, key id, the model asked for and the target that answered), how it ended (outcome,
reason) and what it took (latency, time to first token, tokens, cost). It never carries
prompt or reply content, API keys or headers: only the fields below, none of them text
a caller wrote except the model name. The format (JSON or a readable line) is the
process's log format (`llmesh.services.common.logs`); the fields travel as the record's
``call`` attribute.

A record is written once per call, so it is made for the interpreter: nothing is built
when INFO is off for the logger, and the message is formatted once, here. When the only
handler the record would reach is the services' own (a `BufferedStreamHandler` writing
JSON, batching the call log: every service off a terminal), the JSON line is made and
queued directly, the very line logging would write, without a `logging.LogRecord` or the
dispatch through loggers, filters and handlers (about 45,000 of a record's 103,000
instructions). Any other handling (a handler or filter of the program's or a test's,
readable lines) gets a `logging.LogRecord`, filled from a template made at start (the attributes
`Logger.makeRecord` gives it, without its per-record work on the source file's name and
the process's name, which never change).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

from opentelemetry.trace.propagation import _SPAN_KEY

from llmesh.services.common.log_buffer import BufferedStreamHandler
from llmesh.services.common.logs import JsonFormatter
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.trail import Outcome
from llmesh.services.telemetry.current import current
from llmesh.services.telemetry.lean_trace import LeanSpan
from llmesh.services.telemetry.metrics_calls import CallEnd
from llmesh.services.telemetry.w3c import span_id_text, trace_id_text

__all__ = ["CALL_LOGGER", "CallLog", "call_fields"]

CALL_LOGGER = "llmesh.calls"
"""The logger of the call log; set its level to WARNING to silence it."""

_log = logging.getLogger(CALL_LOGGER)

_MESSAGE = "call %s %s%s target=%s latency_ms=%s ttft_ms=%s tokens=%d/%d cost_usd=%.6f"
"""The record's message (formatted here, once: see `_message`)."""

_SUCCEEDED = Outcome.SUCCEEDED
_get_ident = threading.get_ident
_current_thread = threading.current_thread


def call_fields(call: RoutedCall[Any], end: CallEnd) -> dict[str, Any]:
    """The call log's fields for `call` (only ids, names, numbers: never content)."""
    attempts = call.trail.attempts
    answered = last = None
    for a in reversed(attempts):
        if a.outcome is _SUCCEEDED:
            answered = last = a
            break
    else:
        if attempts:
            last = attempts[-1]
    settled = call.trail.settlement
    opened = call.opened
    ttft = None
    if answered is not None and answered.ttft is not None:
        first = answered.started + answered.ttft - opened
        ttft = round(first * 1000, 3) if first > 0 else 0.0
    latency = end.ended - opened
    caller = call.caller
    reason = end.reason
    fields: dict[str, Any] = {
        "request_id": call.request_id,
        "tenant": caller.tenant,
        "key_id": caller.key_id,
        "model": call.call.model,
        "target": "" if last is None else last.target.name,
        "outcome": end.status._value_,
        "reason": None if reason is None else reason._value_,
        "latency_ms": round(latency * 1000, 3) if latency > 0 else 0.0,
        "ttft_ms": ttft,
        "attempts": len(attempts),
        "input_tokens": 0 if settled is None else settled.used.input_tokens,
        "output_tokens": 0 if settled is None else settled.used.output_tokens,
        "cost_usd": 0.0 if settled is None else settled.cost,
        "cache_hit": end.cache_hit,
    }
    span: Any = current().get(_SPAN_KEY)  # `trace.get_current_span`, without its chain of calls
    if span is not None:
        # a SpanContext is a tuple (trace id, span id, remote, flags, state, valid): read as
        # one, without its three properties' calls
        ids = span.context if type(span) is LeanSpan else span.get_span_context()
        trace_id, span_id, _, _, _, valid = ids
        if valid:
            fields["trace_id"] = trace_id_text(trace_id)
            fields["span_id"] = span_id_text(span_id)
    return fields


def _task_name() -> str | None:
    """The current asyncio task's name, as `LogRecord` reads it (Python 3.12 and later)."""
    if not getattr(logging, "logAsyncioTasks", True):
        return None
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    try:
        task = asyncio.current_task()
    except Exception:
        return None
    return None if task is None else task.get_name()


def _only_json_handler(logger: logging.Logger) -> BufferedStreamHandler | None:
    """The handler `logger`'s INFO records reach if it is the only one, unfiltered, a
    `BufferedStreamHandler` batching `logger`'s records through a `JsonFormatter` (how
    every service logs when not on a terminal); else None. Looked up for every record:
    handlers and filters can change at any time (a test's capture, an embedding program's
    own handler), and the walk is as short as the loggers' chain."""
    if logger.filters:
        return None
    found: BufferedStreamHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if (
                found is not None
                or type(handler) is not BufferedStreamHandler
                or type(handler.formatter) is not JsonFormatter
                or handler.filters
                or handler.level > logging.INFO
                or logger.name not in handler.batched
            ):
                return None
            found = handler
        current = current.parent if current.propagate else None
    return found


def _message(f: dict[str, Any]) -> str:
    """`_MESSAGE` with `f`'s values, as ``%`` formats them."""
    reason = f["reason"]
    ttft = f["ttft_ms"]
    return (
        f"call {f['request_id']} {f['outcome']}{'' if reason is None else ' ' + reason}"
        f" target={f['target'] or '-'} latency_ms={f['latency_ms']}"
        f" ttft_ms={'-' if ttft is None else ttft}"
        f" tokens={f['input_tokens']:d}/{f['output_tokens']:d} cost_usd={f['cost_usd']:.6f}"
    )


class CallLog:
    """Writes the call log's record of finished calls."""

    def __init__(self, logger: logging.Logger = _log) -> None:
        self._logger = logger
        # what `Logger.makeRecord` gives every record of this method; the per-record
        # attributes are set in `record`
        template = logger.makeRecord(
            logger.name, logging.INFO, __file__, 0, _MESSAGE, (), None, "record"
        )
        self._template = template.__dict__
        self._tasks = "taskName" in self._template  # Python 3.12 and later
        self._start: float = logging._startTime  # type: ignore[attr-defined]
        """When logging was loaded (a record's ``relativeCreated`` counts from it)."""

    def record(self, call: RoutedCall[Any], end: CallEnd) -> None:
        """Log `call` at INFO (nothing is built when INFO is off for the logger)."""
        logger = self._logger
        if not logger.isEnabledFor(logging.INFO):
            return
        f = call_fields(call, end)
        direct = _only_json_handler(logger)
        if direct is not None:
            formatter: JsonFormatter = direct.formatter  # type: ignore[assignment]
            direct.write_routine(formatter.call_line(time.time(), logger.name, _message(f), f))
            return
        record = logging.LogRecord.__new__(logging.LogRecord)
        attributes = record.__dict__
        attributes.update(self._template)
        # as `LogRecord.__init__` sets them
        now = time.time()
        attributes["created"] = now
        attributes["msecs"] = int((now - int(now)) * 1000) + 0.0
        attributes["relativeCreated"] = (now - self._start) * 1000
        if logging.logThreads:
            attributes["thread"] = _get_ident()
            attributes["threadName"] = _current_thread().name
        if logging.logProcesses:
            attributes["process"] = os.getpid()
        if self._tasks:
            attributes["taskName"] = _task_name()
        attributes["msg"] = _message(f)
        attributes["call"] = f
        logger.handle(record)
