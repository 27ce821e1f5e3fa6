"""The call log's record: ids, names and numbers of a finished call, never its content."""

from __future__ import annotations

import logging
import time

import pytest

from llmesh.services.common.logs import JsonFormatter
from llmesh.services.core.call import ChatCall, RoutedCall
from llmesh.services.core.caller import Caller
from llmesh.services.core.chat import ChatRequest, Message, Role
from llmesh.services.core.policy import Policy
from llmesh.services.core.reasons import Reason
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Outcome, Settlement, Trail
from llmesh.services.core.usage import CallStatus, Usage
from llmesh.services.telemetry import CALL_LOGGER, CallEnd, CallLog, calllog
from llmesh.services.telemetry.calllog import call_fields

SECRET = "my-secret-prompt-text"


def _call() -> RoutedCall[ChatRequest]:
    request = ChatRequest(messages=(Message(Role.USER, SECRET),))
    call = ChatCall("smart", request, caller=Caller("acme", "key123"))
    now = time.monotonic()
    trail = Trail(now)
    a = trail.add(AttemptRecord(Target("openai", "gpt-4o"), now))
    a.finish(Outcome.FAILED, now + 0.01, Reason.UPSTREAM_UNAVAILABLE)
    b = trail.add(AttemptRecord(Target("anthropic", "claude"), now + 0.01, ttft=0.02))
    b.finish(Outcome.SUCCEEDED, now + 0.05)
    trail.settlement = Settlement(((b, Usage(12, 7)),), Usage(12, 7), 0.25)
    return RoutedCall(call, (a.target, b.target), Policy(), "req_1", trail, opened=now)


def test_the_fields_of_a_call() -> None:
    call = _call()
    f = call_fields(call, CallEnd(CallStatus.OK, None, call.opened + 0.1))
    assert f == {
        "request_id": "req_1",
        "tenant": "acme",
        "key_id": "key123",
        "model": "smart",
        "target": "anthropic/claude",
        "outcome": "ok",
        "reason": None,
        "latency_ms": pytest.approx(100, abs=0.01),
        "ttft_ms": pytest.approx(30, abs=0.01),
        "attempts": 2,
        "input_tokens": 12,
        "output_tokens": 7,
        "cost_usd": 0.25,
        "cache_hit": False,
    }
    assert SECRET not in repr(f)


def test_one_info_record_per_call_and_none_when_info_is_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    call = _call()
    end = CallEnd(CallStatus.ERROR, Reason.UPSTREAM_UNAVAILABLE, call.opened + 0.1)
    with caplog.at_level(logging.INFO, CALL_LOGGER):
        CallLog().record(call, end)
    (record,) = caplog.records
    assert record.getMessage().startswith("call req_1 error UPSTREAM_UNAVAILABLE target=")
    assert record.call["reason"] == "UPSTREAM_UNAVAILABLE"  # type: ignore[attr-defined]
    caplog.clear()
    with caplog.at_level(logging.WARNING, CALL_LOGGER):
        CallLog().record(call, end)
    assert caplog.records == []


def test_the_message_is_formatted_once_for_every_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    call = _call()
    end = CallEnd(CallStatus.ERROR, Reason.UPSTREAM_UNAVAILABLE, call.opened + 0.1)
    with caplog.at_level(logging.INFO, CALL_LOGGER):
        CallLog().record(call, end)
    (record,) = caplog.records
    # the record carries its finished message: a handler reads it without formatting it
    assert not record.args
    assert record.msg == record.getMessage()
    assert record.msg == (
        f"call req_1 error UPSTREAM_UNAVAILABLE target=anthropic/claude "
        f"latency_ms={record.call['latency_ms']} ttft_ms={record.call['ttft_ms']} "  # type: ignore[attr-defined]
        "tokens=12/7 cost_usd=0.250000"
    )


def test_the_record_is_the_one_logger_makes_and_writes_the_same_json(
    caplog: pytest.LogCaptureFixture,
) -> None:
    call = _call()
    end = CallEnd(CallStatus.OK, None, call.opened + 0.1)
    with caplog.at_level(logging.INFO, CALL_LOGGER):
        CallLog().record(call, end)
    (record,) = caplog.records
    logger = logging.getLogger(CALL_LOGGER)
    fields = record.call  # type: ignore[attr-defined]
    made = logger.makeRecord(
        CALL_LOGGER,
        logging.INFO,
        calllog.__file__,
        0,
        "call %s %s%s target=%s latency_ms=%s ttft_ms=%s tokens=%d/%d cost_usd=%.6f",
        (
            "req_1",
            "ok",
            "",
            "anthropic/claude",
            fields["latency_ms"],
            fields["ttft_ms"],
            12,
            7,
            0.25,
        ),
        None,
        "record",
        {"call": fields},
    )
    formatted = {"message", "asctime"}  # added by the capturing handler's formatting
    assert record.__dict__.keys() - formatted == made.__dict__.keys()
    for key in ("name", "levelno", "levelname", "pathname", "filename", "module", "funcName"):
        assert getattr(record, key) == getattr(made, key)
    assert record.process == made.process and record.thread == made.thread
    assert record.created <= made.created and record.msecs == int(record.msecs)
    made.created, made.msecs = record.created, record.msecs
    assert JsonFormatter().format(record) == JsonFormatter().format(made)
    text = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
    assert text.format(record) == text.format(made)
