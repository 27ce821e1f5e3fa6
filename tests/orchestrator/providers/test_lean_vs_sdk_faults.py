"""The lean transport's reference test, faults: for each emulator fault, and for scripted
replies that stretch the SSE and error parsing (CRLF line ends, comments, multi-line data,
missing terminal events, non-JSON error bodies...), the lean transport and the official SDK
must end with the same events and the same error (`tests.support.lean_reference`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.support.lean_reference import (
    APIS,
    MODEL,
    SAMPLING,
    TEXT,
    Outcome,
    Upstream,
    assert_same_outcome,
    both,
    recording_emulator,
)

# ---------------------------------------------------------------------------------------
# Scripted replies: bytes the emulator never sends, for the corners of SSE and errors


def _oa(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    """One OpenAI chunk's JSON."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    return orjson.dumps({**chunk, "choices": choices, "usage": None, **extra})


_OA_USAGE = orjson.dumps(
    {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [],
        "usage": {
            "prompt_tokens": 9,
            "completion_tokens": 2,
            "total_tokens": 11,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
    }
)


def _an(kind: str, **fields: Any) -> bytes:
    """One Anthropic event frame."""
    return b"event: %s\ndata: %s\n\n" % (kind.encode(), orjson.dumps({"type": kind, **fields}))


_AN_START = _an(
    "message_start",
    message={
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 9, "output_tokens": 1, "cache_read_input_tokens": 3},
    },
)
_AN_BLOCK = _an("content_block_start", index=0, content_block={"type": "text", "text": ""})
_AN_HELLO = _an("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hello"})
_AN_WORLD = _an("content_block_delta", index=0, delta={"type": "text_delta", "text": " world"})
_AN_END = (
    _an("content_block_stop", index=0)
    + _an(
        "message_delta",
        delta={"stop_reason": "end_turn", "stop_sequence": None},
        usage={"output_tokens": 2},
    )
    + _an("message_stop")
)

SSE = {"content-type": "text/event-stream"}
JSON = {"content-type": "application/json"}

SCRIPTS: dict[str, tuple[int, Mapping[str, str], list[bytes]]] = {
    # name: (status, headers, the body's writes, in order)
    "oa_crlf": (
        200,
        SSE,
        [
            b"data: " + _oa({"role": "assistant", "content": ""}) + b"\r",
            b"\n\r\ndata: " + _oa({"content": "Hi"}) + b"\r\n\r",
            b"\ndata: " + _oa({}, "stop") + b"\r\n\r\ndata: " + _OA_USAGE + b"\r\n\r\n",
            b"data: [DONE]\r\n\r\n",
        ],
    ),
    "oa_comments_and_fields": (
        200,
        SSE,
        [
            b": keep-alive\n\n",
            b"id: 1\nretry: 100\ndata: " + _oa({"content": "Hi"}) + b"\n\n",
            b": another comment\ndata: " + _oa({}, "length") + b"\n\n",
            b"data: [DONE]\n\n",
        ],
    ),
    "oa_multiline_data": (
        200,
        SSE,
        [
            b"data: " + _oa({"content": "a\nb"}).replace(b',"choices"', b',\ndata: "choices"'),
            b"\n\ndata: " + _oa({}, "stop") + b"\n\ndata: [DONE]\n\n",
        ],
    ),
    "oa_no_done": (
        200,
        SSE,
        [
            b"data: " + _oa({"content": "Hi"}) + b"\n\ndata: " + _oa({}, "stop") + b"\n\n",
            b"data: " + _OA_USAGE + b"\n\n",
        ],
    ),
    "oa_no_finish": (200, SSE, [b"data: " + _oa({"content": "Hi"}) + b"\n\ndata: [DONE]\n\n"]),
    "oa_named_error_event": (
        200,
        SSE,
        [
            b"data: " + _oa({"content": "Hi"}) + b"\n\n",
            b'event: error\ndata: {"error": {"message": "boom", "type": "server_error"}}\n\n',
        ],
    ),
    "oa_tool_calls_two_indexes": (
        200,
        SSE,
        [
            b"data: "
            + _oa(
                {
                    "tool_calls": [
                        {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f"}},
                        {"index": 1, "id": "call_b", "type": "function", "function": {"name": "g"}},
                    ]
                }
            )
            + b"\n\n",
            b"data: "
            + _oa({"tool_calls": [{"index": 1, "function": {"arguments": '{"x":'}}]})
            + b"\n\ndata: "
            + _oa({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})
            + b"\n\ndata: "
            + _oa({"tool_calls": [{"index": 1, "function": {"arguments": "1}"}}]})
            + b"\n\n",
            b"data: " + _oa({}, "tool_calls") + b"\n\ndata: [DONE]\n\n",
        ],
    ),
    "oa_json_200": (200, JSON, [b'{"id": "c1", "object": "chat.completion", "choices": []}']),
    "oa_429_retry_after_ms": (
        429,
        {**JSON, "retry-after-ms": "1500", "retry-after": "9"},
        [b'{"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}'],
    ),
    "an_ping_unknown_unnamed": (
        200,
        SSE,
        [
            _AN_START,
            b"event: ping\ndata: {}\n\n",
            _an("future_event", detail={"anything": True}),
            _AN_BLOCK,
            b'data: {"type": "message_stop"}\n\n',  # no event name: skipped by both
            _AN_HELLO,
            b"event: content_block_stop\ndata:\n\n",  # empty data: skipped by both
            _AN_WORLD,
            _AN_END,
        ],
    ),
    "an_crlf": (
        200,
        SSE,
        [
            (_AN_START + _AN_BLOCK + _AN_HELLO).replace(b"\n", b"\r\n")[:-1],
            (b"\n" + _AN_WORLD + _AN_END).replace(b"\n", b"\r\n")[1:],
        ],
    ),
    "an_no_message_stop": (200, SSE, [_AN_START, _AN_BLOCK, _AN_HELLO]),
    "an_error_event_text": (200, SSE, [_AN_START, b"event: error\ndata: it broke\n\n"]),
    "an_error_event_typed": (
        200,
        SSE,
        [
            _AN_START,
            _AN_BLOCK,
            _AN_HELLO,
            _an("error", error={"type": "rate_limit_error", "message": "too fast"}),
        ],
    ),
    "an_529_text": (529, {"content-type": "text/plain"}, [b"Overloaded\n"]),
    "html_502": (502, {"content-type": "text/html"}, [b"<html><body>Bad gateway</body></html>"]),
}


async def _scripted(request: web.Request) -> web.StreamResponse:
    status, headers, writes = SCRIPTS[request.match_info["name"]]
    await request.read()
    resp = web.StreamResponse(status=status, headers=headers)
    await resp.prepare(request)
    for data in writes:
        await resp.write(data)
        await asyncio.sleep(0.002)  # separate reads, so chunk boundaries fall as written
    await resp.write_eof()
    return resp


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with recording_emulator({"/script/{name}/{rest:.*}": _scripted}) as recording:
        yield recording


# ---------------------------------------------------------------------------------------
# The same faults

STATUS_FAULTS = (
    "rate_limit",
    "quota",
    "server_error",
    "unavailable",
    "overloaded",
    "auth",
    "bad_request",
    "not_found",
    "context_length",
)


@pytest.mark.parametrize("fault", STATUS_FAULTS)
@pytest.mark.parametrize("api", sorted(APIS))
async def test_same_status_errors(upstream: Upstream, api: str, fault: str) -> None:
    headers = {"x-emulator-fault": fault, "x-emulator-retry-after": "7"}
    lean_out, sdk_out = await both(api, upstream.url, TEXT, headers=headers)
    assert sdk_out.error is not None
    assert_same_outcome(lean_out, sdk_out, same_message=True)


MID_STREAM = [
    ("stream_error", {"x-emulator-fault-after": "3"}, 10.0, True),
    ("cut", {"x-emulator-fault-after": "2"}, 10.0, False),
    ("cut", {"x-emulator-fault-after": "0"}, 10.0, False),
    ("malformed", {"x-emulator-fault-after": "2"}, 10.0, False),
    ("timeout", {}, 0.3, False),
    ("stall", {"x-emulator-fault-after": "1"}, 0.3, False),
    ("stall", {"x-emulator-fault-after": "1", "x-emulator-stall-ms": "50"}, 10.0, False),
]


@pytest.mark.parametrize(("fault", "extra", "timeout", "same_message"), MID_STREAM)
@pytest.mark.parametrize("api", sorted(APIS))
async def test_same_faults_after_the_stream_started(
    upstream: Upstream,
    api: str,
    fault: str,
    extra: Mapping[str, str],
    timeout: float,
    same_message: bool,
) -> None:
    headers = {"x-emulator-fault": fault, **extra}
    request = SAMPLING
    lean_out, sdk_out = await both(api, upstream.url, request, headers=headers, timeout=timeout)
    assert_same_outcome(lean_out, sdk_out, same_message=same_message)


@pytest.mark.parametrize("api", sorted(APIS))
async def test_same_unreachable_upstream(api: str) -> None:
    lean_out, sdk_out = await both(api, "http://127.0.0.1:9", TEXT)
    assert sdk_out.error is not None
    assert_same_outcome(lean_out, sdk_out, same_message=False)


@pytest.mark.parametrize("api", sorted(APIS))
async def test_same_slow_stream_past_the_deadline_is_a_timeout(
    upstream: Upstream, api: str
) -> None:
    """Both give up on a stream that is slower than the deadline, as UPSTREAM_TIMEOUT."""
    headers = {"x-emulator-ttft-ms": "400"}
    lean_out, sdk_out = await both(api, upstream.url, TEXT, headers=headers, timeout=0.2)
    assert_same_outcome(lean_out, sdk_out, same_message=False)
    assert sdk_out.error is not None and sdk_out.error.reason.name == "UPSTREAM_TIMEOUT"


# ---------------------------------------------------------------------------------------
# The same reading of replies the emulator never sends

OPENAI_SCRIPTS = sorted(name for name in SCRIPTS if not name.startswith("an_"))
ANTHROPIC_SCRIPTS = sorted(name for name in SCRIPTS if not name.startswith("oa_"))


async def _scripted_both(url: str, api: str, name: str) -> tuple[Outcome, Outcome]:
    return await both(api, f"{url}/script/{name}", TEXT)


@pytest.mark.parametrize("name", OPENAI_SCRIPTS)
async def test_same_reading_of_scripted_openai_replies(upstream: Upstream, name: str) -> None:
    lean_out, sdk_out = await _scripted_both(upstream.url, "emulator", name)
    assert_same_outcome(lean_out, sdk_out, same_message=True)


@pytest.mark.parametrize("name", ANTHROPIC_SCRIPTS)
async def test_same_reading_of_scripted_anthropic_replies(upstream: Upstream, name: str) -> None:
    lean_out, sdk_out = await _scripted_both(upstream.url, "anthropic", name)
    assert_same_outcome(lean_out, sdk_out, same_message=True)
