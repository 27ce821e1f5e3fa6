"""The call log: one structured record per finished call, at INFO on ``llmesh.calls``.

Each record carries who and what (request id, trace and span ids when a span is current,
tenant, key id, the model asked for and the target that answered), how it ended (outcome,
reason) and what it took (latency, time to first token, tokens, cost). It never carries
prompt or reply content, API keys or headers: only the fields below, none of them text
a caller wrote except the model name. The format (JSON or a readable line) is the
process's log format (`llmesh.services.common.logs`); the fields travel as the record's
``call`` attribute.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace

from llmesh.services.core.call import RoutedCall
from llmesh.services.core.trail import Outcome
from llmesh.services.telemetry.metrics_calls import CallEnd

__all__ = ["CALL_LOGGER", "CallLog", "call_fields"]

CALL_LOGGER = "llmesh.calls"
"""The logger of the call log; set its level to WARNING to silence it."""

_log = logging.getLogger(CALL_LOGGER)

_MESSAGE = "call %s %s%s target=%s latency_ms=%s ttft_ms=%s tokens=%d/%d cost_usd=%.6f"


def call_fields(call: RoutedCall[Any], end: CallEnd) -> dict[str, Any]:
    """The call log's fields for `call` (only ids, names, numbers: never content)."""
    attempts = call.trail.attempts
    answered = next((a for a in reversed(attempts) if a.outcome is Outcome.SUCCEEDED), None)
    last = answered or (attempts[-1] if attempts else None)
    settled = call.trail.settlement
    fields: dict[str, Any] = {
        "request_id": call.request_id,
        "tenant": call.caller.tenant,
        "key_id": call.caller.key_id,
        "model": call.call.model,
        "target": "" if last is None else last.target.name,
        "outcome": end.status.value,
        "reason": None if end.reason is None else end.reason.value,
        "latency_ms": round(max(end.ended - call.opened, 0.0) * 1000, 3),
        "ttft_ms": None,
        "attempts": len(attempts),
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": 0.0,
        "cache_hit": end.cache_hit,
    }
    if answered is not None and answered.ttft is not None:
        first = answered.started + answered.ttft - call.opened
        fields["ttft_ms"] = round(max(first, 0.0) * 1000, 3)
    if settled is not None:
        fields["input_tokens"] = settled.used.input_tokens
        fields["output_tokens"] = settled.used.output_tokens
        fields["cost_usd"] = settled.cost
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        fields["trace_id"] = format(span.trace_id, "032x")
        fields["span_id"] = format(span.span_id, "016x")
    return fields


class CallLog:
    """Writes the call log's record of finished calls."""

    def __init__(self, logger: logging.Logger = _log) -> None:
        self._logger = logger

    def record(self, call: RoutedCall[Any], end: CallEnd) -> None:
        """Log `call` at INFO (nothing is built when INFO is off for the logger)."""
        if not self._logger.isEnabledFor(logging.INFO):
            return
        f = call_fields(call, end)
        logger = self._logger
        # A record made here, not through `Logger.info`: the same record, without walking
        # the stack for the caller's file and line, which is always this method.
        record = logger.makeRecord(
            logger.name,
            logging.INFO,
            __file__,
            0,
            _MESSAGE,
            (
                f["request_id"],
                f["outcome"],
                "" if f["reason"] is None else f" {f['reason']}",
                f["target"] or "-",
                f["latency_ms"],
                "-" if f["ttft_ms"] is None else f["ttft_ms"],
                f["input_tokens"],
                f["output_tokens"],
                f["cost_usd"],
            ),
            None,
            "record",
            {"call": f},
        )
        logger.handle(record)
