"""The harness of the lean transport's reference tests (`tests/orchestrator/providers/
test_lean_vs_sdk.py` for requests, `test_lean_vs_sdk_faults.py` for faults): the same call
made through the lean transport and through the official SDK, against a recording emulator,
and the two outcomes compared.

The recording emulator is the built-in one with a middleware that keeps each request it
receives (method, path, headers, body), so a test can compare what the two transports sent;
a test module may add routes of its own (scripted replies, say). Each call of `both` runs
on a freshly reset emulator, whose prompt cache would otherwise serve the second call from
what the first one wrote.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDict

from llmesh.services.common.config import ProviderConfig, ResolvedProvider
from llmesh.services.common.errors import LlmeshError
from llmesh.services.core.chat import ChatRequest, Message, Role
from llmesh.services.core.events import ProviderEvent, TextDelta
from llmesh.services.emulator.app import create_app
from llmesh.services.emulator.settings import EmulatorSettings
from llmesh.services.orchestrator.providers import anthropic_sdk, lean, openai_sdk
from llmesh.services.orchestrator.providers.base import Provider

__all__ = [
    "APIS",
    "EXTRA_HEADERS",
    "KEY",
    "MODEL",
    "SAMPLING",
    "TEXT",
    "Outcome",
    "Seen",
    "Upstream",
    "assert_same_outcome",
    "both",
    "json_body",
    "recording_emulator",
    "upstream",
]

MODEL = "claude-test"  # any name outside the anthropic SDK's deprecation list
KEY = "sk-reference-test-key-0123"
EXTRA_HEADERS = {"X-Llmesh-Test": "reference"}
"""A configured header every call sends (the tests check it arrives, the same in both)."""

Factory = Callable[[ResolvedProvider], Provider]

APIS: dict[str, tuple[str, str, Factory, Factory]] = {
    # api: (kind, base URL suffix, lean factory, SDK factory)
    "openai": ("openai", "/v1", lean.openai_factory, openai_sdk.openai_factory),
    "emulator": ("emulator", "/v1", lean.compatible_factory, openai_sdk.compatible_factory),
    "anthropic": ("anthropic", "", lean.anthropic_factory, anthropic_sdk.factory),
}
"""The APIs compared: `openai` sends ``max_completion_tokens``, the OpenAI-compatible
`emulator` kind ``max_tokens``, and `anthropic` its Messages API."""

TEXT = ChatRequest((Message(Role.USER, "The quick brown fox"),))
"""The plainest call."""
SAMPLING = ChatRequest(
    (Message(Role.USER, "The quick brown fox jumps over the lazy dog"),),
    temperature=0.3,
    top_p=0.9,
    max_tokens=5,
    seed=7,
    stop=(" lazy", "never"),
)
"""A call with sampling settings and limits (a longer reply, for the mid-stream faults)."""

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclasses.dataclass
class Seen:
    """One request as the upstream received it."""

    method: str
    path: str
    headers: CIMultiDict[str]
    body: bytes


@dataclasses.dataclass
class Upstream:
    """The recording emulator: its URL and the requests it received."""

    url: str
    seen: list[Seen]


@contextlib.asynccontextmanager
async def recording_emulator(routes: Mapping[str, Route] | None = None) -> AsyncIterator[Upstream]:
    """The built-in emulator, recording every POST but its own control calls, with more POST
    `routes` (path pattern to handler) beside its own."""
    seen: list[Seen] = []

    @web.middleware
    async def record(request: web.Request, handler: Route) -> web.StreamResponse:
        if request.method == "POST" and not request.path.startswith("/emulator/"):
            body = await request.read()  # cached: the handler reads it again
            seen.append(Seen(request.method, request.path, CIMultiDict(request.headers), body))
        return await handler(request)

    app = create_app(EmulatorSettings(host="127.0.0.1", port=0, cache_min_tokens=8))
    app.middlewares.append(record)
    for path, route in (routes or {}).items():
        app.router.add_post(path, route)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    try:
        yield Upstream(f"http://127.0.0.1:{port}", seen)
    finally:
        await runner.cleanup()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """The recording emulator, for a test module that imports this fixture (one that adds
    routes of its own makes its own fixture with `recording_emulator`)."""
    async with recording_emulator() as recording:
        yield recording


def json_body(body: bytes) -> dict[str, Any]:
    """A recorded request's JSON body."""
    value = orjson.loads(body)
    assert isinstance(value, dict)
    return value


@dataclasses.dataclass
class Outcome:
    """What a call produced: its events and, if it failed, its error."""

    events: list[ProviderEvent]
    error: LlmeshError | None

    def error_key(self) -> tuple[str, float | None, dict[str, str]] | None:
        if self.error is None:
            return None
        return (self.error.reason.name, self.error.retry_after, dict(self.error.metadata))


def _build(
    api: str, transport: str, url: str, headers: Mapping[str, str] | None = None
) -> Provider:
    kind, suffix, lean_factory, sdk_factory = APIS[api]
    config = ProviderConfig(api, kind, headers={**EXTRA_HEADERS, **(headers or {})}, timeout=10.0)
    factory = lean_factory if transport == "lean" else sdk_factory
    return factory(ResolvedProvider(config, url + suffix, KEY, True))


async def _run(
    provider: Provider, request: ChatRequest, *, timeout: float | None = 10.0
) -> Outcome:
    events: list[ProviderEvent] = []
    error: LlmeshError | None = None
    try:
        async with contextlib.aclosing(provider.stream(MODEL, request, timeout=timeout)) as stream:
            async for event in stream:
                events.append(event)
    except LlmeshError as err:
        error = err
    finally:
        await provider.aclose()
    return Outcome(events, error)


async def both(
    api: str,
    url: str,
    request: ChatRequest,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = 10.0,
) -> tuple[Outcome, Outcome]:
    """(lean, sdk) outcomes of the same call, each on a freshly reset emulator."""
    outcomes = []
    for transport in ("lean", "sdk"):
        await _reset(url)
        provider = _build(api, transport, url, headers)
        outcomes.append(await _run(provider, request, timeout=timeout))
    return outcomes[0], outcomes[1]


async def _reset(url: str) -> None:
    root = url.split("/script/", 1)[0]
    with contextlib.suppress(httpx.TransportError):  # no emulator: nothing to reset
        async with httpx.AsyncClient() as client:
            (await client.post(f"{root}/emulator/reset")).raise_for_status()


def _merged(events: list[ProviderEvent]) -> list[ProviderEvent]:
    """Events with adjacent text deltas joined: the lean transport passes on text that
    arrived in one read as one delta, so only the chunking may differ, never the content."""
    out: list[ProviderEvent] = []
    for event in events:
        if isinstance(event, TextDelta) and out and isinstance(out[-1], TextDelta):
            out[-1] = TextDelta(out[-1].text + event.text, out[-1].logprobs + event.logprobs)
        else:
            out.append(event)
    return out


def assert_same_outcome(lean_out: Outcome, sdk_out: Outcome, *, same_message: bool) -> None:
    """The same events (text chunking aside) and the same error: reason, retry-after,
    metadata and, when `same_message`, message (the key redacted in the lean one's)."""
    assert _merged(lean_out.events) == _merged(sdk_out.events)
    assert lean_out.error_key() == sdk_out.error_key()
    if same_message and lean_out.error is not None and sdk_out.error is not None:
        assert KEY not in lean_out.error.message
        assert lean_out.error.message == sdk_out.error.message.replace(KEY, "[redacted]")
