"""The call log's record: ids, names and numbers of a finished call, never its content."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest

from llmesh.services.common.log_buffer import BufferedStreamHandler
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


@pytest.fixture
def json_logger() -> Iterator[tuple[logging.Logger, BufferedStreamHandler, io.StringIO]]:
    """A logger whose records reach one batching JSON handler, as a service's call log's
    do when it logs off a terminal (not propagated: pytest's own handlers sit on the root)."""
    out = io.StringIO()
    logger = logging.getLogger(f"{CALL_LOGGER}.json-test")
    handler = BufferedStreamHandler(out, batched=frozenset({logger.name}), interval=3600)
    handler.setFormatter(JsonFormatter())
    others = logger.handlers[:]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, handler, out
    logger.handlers = others
    logger.propagate = True
    logger.filters.clear()
    handler.close()


def _alone(logger: logging.Logger, handler: BufferedStreamHandler) -> None:
    """Only `handler` on `logger` (pytest puts its capturing handlers on every logger that
    does not propagate, once a test's body is about to run)."""
    logger.handlers = [handler]


def _line(logger: logging.Logger, handler: BufferedStreamHandler, out: io.StringIO) -> str:
    _alone(logger, handler)
    call = _call()
    CallLog(logger).record(call, CallEnd(CallStatus.OK, None, call.opened + 0.1))
    handler.flush()
    line = out.getvalue()
    out.seek(0)
    out.truncate()
    return line


def test_the_only_json_handler_gets_the_line_without_a_log_record(
    json_logger: tuple[logging.Logger, BufferedStreamHandler, io.StringIO],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logger, handler, out = json_logger

    def no_record(record: logging.LogRecord) -> None:
        raise AssertionError("a LogRecord was made and handled")

    monkeypatch.setattr(logger, "handle", no_record)
    (line,) = _line(logger, handler, out).splitlines()
    written = json.loads(line)
    assert written["logger"] == logger.name and written["request_id"] == "req_1"
    assert SECRET not in line


def test_the_line_written_directly_is_the_one_logging_writes(
    json_logger: tuple[logging.Logger, BufferedStreamHandler, io.StringIO],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logger, handler, out = json_logger
    monkeypatch.setattr(time, "time", lambda: 1_764_000_000.123456)
    direct = _line(logger, handler, out)
    logger.addFilter(lambda record: True)  # a filter: the record goes through logging
    logged = _line(logger, handler, out)
    assert direct == logged
    assert json.loads(direct)["ts"] == "2025-11-24T16:00:00.123+00:00"


@pytest.mark.parametrize(
    "change",
    ["second handler", "filter on the handler", "text format", "handler above INFO", "unbatched"],
)
def test_any_other_handling_gets_the_log_record(
    json_logger: tuple[logging.Logger, BufferedStreamHandler, io.StringIO], change: str
) -> None:
    logger, handler, out = json_logger
    _alone(logger, handler)
    seen: list[logging.LogRecord] = []

    def keep(record: logging.LogRecord) -> bool:
        seen.append(record)
        return True

    def formatted(record: logging.LogRecord) -> str:
        seen.append(record)
        return "x"

    if change == "second handler":
        capture = logging.Handler()
        capture.emit = seen.append  # type: ignore[method-assign]
        logger.addHandler(capture)
    elif change == "filter on the handler":
        handler.addFilter(keep)
    elif change == "text format":
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.format = formatted  # type: ignore[method-assign]
    elif change == "handler above INFO":
        handler.setLevel(logging.WARNING)
    else:
        handler.batched = frozenset()
        handler.format = formatted  # type: ignore[method-assign]
    call = _call()
    CallLog(logger).record(call, CallEnd(CallStatus.OK, None, call.opened + 0.1))
    handler.flush()
    if change == "handler above INFO":
        assert out.getvalue() == ""  # below the handler's level: not written at all
        return
    (record,) = seen
    assert record.call["request_id"] == "req_1"  # type: ignore[attr-defined]
