"""Answering one batch item as the interactive endpoint answers the same body.

A batch item goes through the same parsing, fault rules (by model: ``times`` and ``rate``
make per-item failures), context windows, reply rules, prompt cache and counters as a
request to ``/v1/chat/completions``, ``/v1/embeddings`` or ``/v1/messages``; only the
``x-emulator-*`` headers are absent (a batch line has none). A fault that strikes a reply
mid-stream fails the item as it fails a whole (non-streamed) reply: ``stream_error`` with
the equivalent status error, ``cut``, ``malformed`` and ``timeout`` with the provider's
server error; ``stall`` only delays the interactive reply, so the item is answered.
Streaming is refused per item, as the batch APIs refuse it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from llmesh.services.emulator import anthropic_wire, embeddings_api, openai_wire
from llmesh.services.emulator.anthropic_api import DIALECT as ANTHROPIC
from llmesh.services.emulator.batches import ItemAnswer
from llmesh.services.emulator.errors import ApiError, new_request_id
from llmesh.services.emulator.faults import Controls, request_controls
from llmesh.services.emulator.generation import ChatCall, Dialect, Planning
from llmesh.services.emulator.openai_api import DIALECT as OPENAI
from llmesh.services.emulator.replies import count_tokens, prompt_units
from llmesh.services.emulator.settings import FaultSpec
from llmesh.services.emulator.state import EmulatorState

__all__ = ["answer_anthropic", "answer_openai"]

log = logging.getLogger(__name__)

_SERVER_FAULT = FaultSpec("server_error")
_API_ERROR = ApiError(500, "Internal server error", "api_error")
_AS_SERVER_ERROR = frozenset({"cut", "malformed", "timeout"})


def _fault(state: EmulatorState, model: str) -> FaultSpec | None:
    """The fault the rules give this item, mid-stream ones turned into a server error."""
    fault = request_controls({}, model, state.settings, state.faults).fault
    if fault is None or fault.fault == "stall":
        return None
    if fault.fault in _AS_SERVER_ERROR:
        return _SERVER_FAULT
    return fault


def _chat(
    state: EmulatorState,
    dialect: Dialect,
    body: Any,
    headers: Mapping[str, str],
    fault_error: Callable[[FaultSpec, str, int], ApiError],
    context_error: Callable[[int, int], ApiError],
) -> tuple[int, bytes]:
    """(status, body bytes) of one chat item; raises `ApiError` for an error answer."""
    call: ChatCall = dialect.parse(body)
    if call.stream:
        raise ApiError(400, "stream: streaming is not supported in a batch", param="stream")
    state.stats.saw(call.params)
    fault = _fault(state, call.conv.model)
    units = list(prompt_units(call.conv))
    prompt = sum(u.tokens for u in units)
    if fault is not None:
        raise fault_error(fault, call.conv.model, prompt)
    window = state.settings.context_windows.get(call.conv.model)
    if window is not None and prompt > window:
        raise context_error(window, prompt)
    planning = Planning(state, call, Controls(), units, prompt, headers)
    return 200, dialect.unary_body(planning)


def _model(body: Any) -> str | None:
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


def answer_openai(state: EmulatorState, url: str, body: Any, api_key: str) -> ItemAnswer:
    """Answer one line of an OpenAI batch: `url` is ``/v1/chat/completions`` or
    ``/v1/embeddings``; `api_key` is the batch creator's (named by the ``auth`` fault)."""
    request_id = new_request_id()

    def fault_error(fault: FaultSpec, model: str, prompt: int) -> ApiError:
        return openai_wire.fault_error(fault, model, prompt, api_key)

    with state.stats.track(_model(body)):
        try:
            if url == "/v1/embeddings":
                model, texts, encoding, dimensions = embeddings_api.parse_request(body)
                fault = _fault(state, model)
                if fault is not None:
                    raise fault_error(fault, model, sum(count_tokens(t) for t in texts))
                reply = embeddings_api.response_body(model, texts, encoding, dimensions)
                return ItemAnswer(200, reply, request_id)
            status, raw = _chat(state, OPENAI, body, {}, fault_error, openai_wire.context_error)
            return ItemAnswer(status, orjson.loads(raw), request_id)
        except ApiError as err:
            return ItemAnswer(err.status, orjson.loads(openai_wire.error_body(err)), request_id)
        except Exception:  # a bug answers this item as the server would, not the batch
            log.exception("batch item failed")
            body = orjson.loads(openai_wire.error_body(openai_wire.SERVER_ERROR))
            return ItemAnswer(500, body, request_id)


def answer_anthropic(state: EmulatorState, params: Any, headers: Mapping[str, str]) -> ItemAnswer:
    """Answer the ``params`` of one Anthropic batch request; `headers` are the batch
    creation's (its ``anthropic-beta`` applies to every item)."""
    request_id = "req_" + uuid.uuid4().hex[:24]
    with state.stats.track(_model(params)):
        try:
            status, raw = _chat(
                state,
                ANTHROPIC,
                params,
                headers,
                anthropic_wire.fault_error,
                anthropic_wire.context_error,
            )
            return ItemAnswer(status, orjson.loads(raw), request_id)
        except ApiError as err:
            body = orjson.loads(anthropic_wire.error_body(err, request_id))
            return ItemAnswer(err.status, body, request_id)
        except Exception:  # a bug answers this item as the server would, not the batch
            log.exception("batch item failed")
            body = orjson.loads(anthropic_wire.error_body(_API_ERROR, request_id))
            return ItemAnswer(500, body, request_id)
