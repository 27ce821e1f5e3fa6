"""`StreamChatResponse` events -> the Responses API's streamed semantic events (SSE).

Every event is ``event: <type>`` plus ``data: {"type", "sequence_number", ...}``, numbered
from 0. The stream opens with ``response.created`` and ``response.in_progress``; each output
item is announced (``response.output_item.added``), filled (``response.reasoning_summary_*``,
``response.content_part.*`` and ``response.output_text.*``,
``response.function_call_arguments.*``) and closed (``response.output_item.done``); the
finish event closes what is open and ends the stream with ``response.completed`` (or
``response.incomplete``) carrying the whole response. A failure after the start is an
``error`` event followed by ``response.failed``: a cut stream never looks finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from llmesh.gateway.responses import sse_event
from llmesh.gateway.responses_api.parts import REDACTED_PREFIX
from llmesh.gateway.responses_api.render import (
    function_call_item,
    item_id,
    message_item,
    response_object,
    status_of,
    usage_object,
)
from llmesh.v1 import chat_pb2, orchestrator_pb2

__all__ = ["EventEncoder"]


@dataclass
class _Item:
    """One output item being streamed."""

    kind: str
    """``reasoning``, ``message`` or ``function_call``."""
    id: str
    index: int
    """Its place in ``output``."""
    text: str = ""
    """The reasoning text, message text or call arguments so far."""
    block: int = -1
    """The thinking block (reasoning) or tool call (function_call) index it streams."""
    extra: dict[str, str] = field(default_factory=dict)
    """call_id and name of a call; the signature or redacted data of a thinking block."""
    part_open: bool = False
    """A reasoning item's summary part was announced."""


class EventEncoder:
    """Encodes one response's stream; `final` is the whole response once it finished."""

    def __init__(
        self,
        response_id: str,
        echo: dict[str, Any],
        created_at: int,
        previous_response_id: str | None,
        store: bool,
    ) -> None:
        self.response_id = response_id
        self.request_id = ""
        self.final: dict[str, Any] | None = None
        self._echo = echo
        self._created_at = created_at
        self._previous = previous_response_id
        self._store = store
        self._seq = 0
        self._output: list[dict[str, Any]] = []
        self._open: list[_Item] = []
        self._usage: chat_pb2.Usage | None = None
        self._started = False
        self._discarded: set[int] = set()

    @property
    def finished(self) -> bool:
        """True once the terminal event (completed, incomplete or failed) was encoded."""
        return self.final is not None

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = orjson.dumps({"type": kind, "sequence_number": self._seq, **fields})
        self._seq += 1
        return sse_event(kind, data)

    def _response(self, status: str, **fields: Any) -> dict[str, Any]:
        return response_object(
            self.response_id,
            self._echo,
            created_at=self._created_at,
            status=status,
            previous_response_id=self._previous,
            store=self._store,
            **fields,
        )

    def _begin(self) -> bytes:
        self._started = True
        response = self._response("in_progress", output=[])
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    def encode(self, event: orchestrator_pb2.StreamChatResponse) -> bytes:
        """The SSE bytes for one upstream event (possibly empty)."""
        if self.finished:
            return b""
        kind = event.WhichOneof("event")
        out = b"" if self._started else self._begin()
        if kind == "start":
            self.request_id = event.start.request_id
        elif kind == "reasoning_delta":
            out += self._reasoning(event.reasoning_delta)
        elif kind == "text_delta" and event.text_delta.text:
            out += self._text(event.text_delta.text)
        elif kind == "tool_call_delta":
            out += self._call(event.tool_call_delta)
        elif kind == "usage":
            self._usage = event.usage
        elif kind == "switch" and event.switch.policy == chat_pb2.MID_STREAM_POLICY_RESTART:
            out += self._restart()
        elif kind == "finish":
            out += self._finish(event.finish)
        return out

    def _open_item(
        self, kind: str, prefix: str, block: int = -1, extra: dict[str, str] | None = None
    ) -> tuple[_Item, bytes]:
        out = b""
        if kind != "function_call" or any(i.kind != "function_call" for i in self._open):
            out = self._close_all("completed")
        item = _Item(kind, item_id(prefix), len(self._output), block=block, extra=extra or {})
        self._output.append({})
        self._open.append(item)
        return item, out + self._event(
            "response.output_item.added", output_index=item.index, item=self._item(item, True)
        )

    def _current(self, kind: str, block: int = -1) -> _Item | None:
        for item in self._open:
            if item.kind == kind and (block < 0 or item.block == block):
                return item
        return None

    def _reasoning(self, delta: orchestrator_pb2.ReasoningDelta) -> bytes:
        item = self._current("reasoning", delta.index)
        out = b""
        if item is None:
            item, out = self._open_item("reasoning", "rs", delta.index)
        if delta.signature:
            item.extra["signature"] = item.extra.get("signature", "") + delta.signature
        if delta.redacted_data:
            item.extra["redacted"] = item.extra.get("redacted", "") + delta.redacted_data
        if not delta.text:
            return out
        where = {"item_id": item.id, "output_index": item.index, "summary_index": 0}
        if not item.part_open:
            item.part_open = True
            part = {"type": "summary_text", "text": ""}
            out += self._event("response.reasoning_summary_part.added", **where, part=part)
        item.text += delta.text
        return out + self._event("response.reasoning_summary_text.delta", **where, delta=delta.text)

    def _message(self) -> tuple[_Item, bytes]:
        item, out = self._open_item("message", "msg")
        return item, out + self._event(
            "response.content_part.added",
            item_id=item.id,
            output_index=item.index,
            content_index=0,
            part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
        )

    def _text(self, text: str) -> bytes:
        item = self._current("message")
        out = b""
        if item is None:
            item, out = self._message()
        item.text += text
        return out + self._event(
            "response.output_text.delta",
            item_id=item.id,
            output_index=item.index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _call(self, delta: orchestrator_pb2.ToolCallDelta) -> bytes:
        item = self._current("function_call", delta.index)
        out = b""
        if item is None:  # the call's first delta names it: call_id identifies the item
            extra = {"call_id": delta.id, "name": delta.name}
            item, out = self._open_item("function_call", "fc", delta.index, extra)
        if not delta.arguments_delta:
            return out
        item.text += delta.arguments_delta
        return out + self._event(
            "response.function_call_arguments.delta",
            item_id=item.id,
            output_index=item.index,
            delta=delta.arguments_delta,
        )

    def _item(self, item: _Item, in_progress: bool, status: str = "completed") -> dict[str, Any]:
        status = "in_progress" if in_progress else status
        if item.kind == "message":
            return message_item(item.id, "" if in_progress else item.text, status)
        if item.kind == "function_call":
            call_id, name = item.extra.get("call_id", ""), item.extra.get("name", "")
            return function_call_item(
                item.id, call_id, name, "" if in_progress else item.text, status
            )
        redacted = item.extra.get("redacted")
        summary = (
            [] if in_progress or not item.text else [{"type": "summary_text", "text": item.text}]
        )
        encrypted = REDACTED_PREFIX + redacted if redacted else item.extra.get("signature")
        return {
            "type": "reasoning",
            "id": item.id,
            "summary": summary,
            "encrypted_content": None if in_progress else encrypted or None,
            "status": status,
        }

    def _close(self, item: _Item, status: str) -> bytes:
        where = {"item_id": item.id, "output_index": item.index}
        out = b""
        part: dict[str, Any]
        if item.kind == "reasoning" and item.part_open:
            part = {"type": "summary_text", "text": item.text}
            out += self._event(
                "response.reasoning_summary_text.done", **where, summary_index=0, text=item.text
            )
            out += self._event(
                "response.reasoning_summary_part.done", **where, summary_index=0, part=part
            )
        elif item.kind == "message":
            part = {"type": "output_text", "text": item.text, "annotations": [], "logprobs": []}
            out += self._event(
                "response.output_text.done", **where, content_index=0, text=item.text, logprobs=[]
            )
            out += self._event("response.content_part.done", **where, content_index=0, part=part)
        elif item.kind == "function_call":
            out += self._event(
                "response.function_call_arguments.done",
                **where,
                name=item.extra.get("name", ""),
                arguments=item.text,
            )
        done = self._item(
            item,
            False,
            "incomplete" if item.kind == "message" and status == "incomplete" else "completed",
        )
        self._output[item.index] = done
        return out + self._event("response.output_item.done", output_index=item.index, item=done)

    def _close_all(self, status: str) -> bytes:
        out = b"".join(self._close(item, status) for item in self._open)
        self._open.clear()
        return out

    def _restart(self) -> bytes:
        """Another target starts the reply again: what was sent is closed as incomplete and
        left out of the final output, which holds the new target's items only."""
        self._discarded.update(item.index for item in self._open)
        self._discarded.update(range(len(self._output)))
        return self._close_all("incomplete")

    def _final_output(self) -> list[dict[str, Any]]:
        return [o for i, o in enumerate(self._output) if i not in self._discarded and o]

    def _finish(self, finish: orchestrator_pb2.FinishEvent) -> bytes:
        status, incomplete = status_of(finish.reason)
        out = b""
        if len(self._output) == len(self._discarded):
            out = self._message()[1]  # a reply without any output: one empty message
        out += self._close_all(status)
        usage = finish.usage if finish.HasField("usage") else self._usage
        self.final = self._response(
            status,
            output=self._final_output(),
            usage=usage_object(usage or chat_pb2.Usage()),
            incomplete=incomplete,
        )
        return out + self._event(f"response.{status}", response=self.final)

    def fail(self, code: str, message: str, param: str | None) -> bytes:
        """The ``error`` and ``response.failed`` events ending a stream that broke."""
        out = b"" if self._started else self._begin()
        error = {"code": code, "message": message}
        out += self._event("error", code=code, message=message, param=param)
        self.final = self._response("failed", output=self._final_output(), error=error)
        return out + self._event("response.failed", response=self.final)
