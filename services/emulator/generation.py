"""The request flow shared by both chat APIs; each API plugs in as a `Dialect`.

Read and decode the body, count the request, parse it into a `Conversation`, resolve the
controls (fault, latency, forced cache), answer a status fault or a prompt over the model's
configured context window (`EmulatorSettings.context_windows`) at once, else hand over to
the dialect to compute the reply and send it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import web

from llmesh.services.emulator.errors import ApiError, new_request_id
from llmesh.services.emulator.faults import ControlError, Controls, request_controls
from llmesh.services.emulator.replies import Conversation, Unit, prompt_units
from llmesh.services.emulator.settings import STATUS_FAULTS, FaultSpec
from llmesh.services.emulator.state import STATE, EmulatorState
from llmesh.services.emulator.stats import Tracker
from llmesh.services.emulator.streaming import send_response

INVALID_JSON: Any = object()
"""Passed to `Dialect.parse` in place of a body that is not JSON."""


@dataclass(frozen=True, slots=True)
class ChatCall:
    """A parsed chat request."""

    conv: Conversation
    stream: bool
    include_usage: bool = False
    """OpenAI ``stream_options.include_usage``."""
    n: int = 1
    """OpenAI ``n``: how many choices."""
    thinking_budget: int | None = None
    """Anthropic ``thinking.budget_tokens`` when extended thinking is enabled."""
    params: tuple[str, ...] = ()
    """The optional sampling parameters the request carried (``presence_penalty``,
    ``service_tier=flex``, ...), counted in the stats."""
    service_tier: str = "default"
    """OpenAI: the ``service_tier`` the response reports."""
    logprobs: int | None = None
    """OpenAI: how many ``top_logprobs`` to return per token when ``logprobs`` is on."""


@dataclass(frozen=True, slots=True)
class Planning:
    """What computing one reply needs, without the connection it goes out on (a batch
    item has none)."""

    state: EmulatorState
    call: ChatCall
    controls: Controls
    units: list[Unit]
    prompt_tokens: int
    headers: Mapping[str, str]
    """The request headers (an Anthropic batch: those of the batch's creation)."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """Everything a dialect needs to answer one request."""

    request: web.Request
    tracker: Tracker
    state: EmulatorState
    call: ChatCall
    controls: Controls
    units: list[Unit]
    prompt_tokens: int
    request_id: str
    started: float
    """`time.perf_counter()` when the request arrived."""

    def elapsed_ms(self) -> int:
        """Milliseconds since the request arrived."""
        return int((time.perf_counter() - self.started) * 1000)

    @property
    def planning(self) -> Planning:
        """The part of the exchange the reply is computed from."""
        return Planning(
            self.state,
            self.call,
            self.controls,
            self.units,
            self.prompt_tokens,
            self.request.headers,
        )


class Dialect(Protocol):
    """One provider's wire format for chat requests."""

    def parse(self, body: Any) -> ChatCall:
        """Validate a decoded body (or `INVALID_JSON`); raise `ApiError` like the real API."""
        ...

    def render_error(self, err: ApiError, request_id: str, started: float) -> web.Response:
        """An error response in the provider's body shape, with its headers."""
        ...

    def fault_error(
        self, fault: FaultSpec, call: ChatCall, prompt_tokens: int, request: web.Request
    ) -> ApiError:
        """The error a status fault (or a ``stream_error`` on a non-stream call) answers."""
        ...

    def context_error(self, window: int, prompt_tokens: int, completion: int | None) -> ApiError:
        """The provider's error for a prompt (with the reply's `completion` tokens asked
        for, None: not asked) over the model's context window."""
        ...

    async def respond(self, ex: Exchange) -> web.StreamResponse:
        """Compute usage and the reply, and send it (streamed or whole)."""
        ...

    def unary_body(self, p: Planning) -> bytes:
        """The whole (non-streamed) reply body, as `respond` would send it."""
        ...


async def handle(request: web.Request, dialect: Dialect) -> web.StreamResponse:
    """Serve one chat request through `dialect`."""
    state = request.app[STATE]
    request_id = new_request_id()
    started = time.perf_counter()
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        body = INVALID_JSON
    model = body.get("model") if isinstance(body, dict) else None
    state.contexts.note(request.path, model, request.headers)
    with state.stats.track(model if isinstance(model, str) else None) as tracker:
        try:
            call = dialect.parse(body)
            state.stats.saw(call.params)
            controls = request_controls(
                request.headers, call.conv.model, state.settings, state.faults
            )
            units = list(prompt_units(call.conv))
            prompt = sum(u.tokens for u in units)
            fault = controls.fault
            if fault is not None and (
                fault.fault in STATUS_FAULTS or (fault.fault == "stream_error" and not call.stream)
            ):
                raise dialect.fault_error(fault, call, prompt, request)
            window = state.settings.context_windows.get(call.conv.model)
            asked = call.conv.max_tokens
            if window is not None and prompt + (asked or 0) > window:
                raise dialect.context_error(window, prompt, asked)
        except ControlError as e:
            err = ApiError(400, str(e))
        except ApiError as e:
            err = e
        else:
            ex = Exchange(
                request, tracker, state, call, controls, units, prompt, request_id, started
            )
            return await dialect.respond(ex)
        return await send_response(request, tracker, dialect.render_error(err, request_id, started))
