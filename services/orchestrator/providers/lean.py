"""A lean transport for the OpenAI and Anthropic wire formats: own HTTP/1.1, orjson, own SSE.

The official SDKs spend about ten times the CPU of a plain aiohttp client on the same bytes
(request building through pydantic models, an SSE decoder over text, a model object per
event). This transport carries the same wire format with none of that: the request body is
the wire module's `to_provider_request` serialized by orjson, the response is split into
SSE events at the bytes level (`llmesh.services.transport.SSEDecoder`) as it arrives from a minimal
HTTP/1.1 client (`llmesh.services.transport.ConnectionPool`: asyncio protocols and httptools' C
parser; under paced streams about a third of the CPU aiohttp took), and each event's JSON
goes as a plain dict to the very parser the SDK adapters use. Errors are classified by the
wire modules too, from the error body and the response status and headers, so the SDK
adapters remain a reference that `tests/orchestrator/providers/test_lean_vs_sdk.py` compares
this transport against.

What differs between the two APIs is a small *dialect*: the path, the credential headers,
the body's streaming options, how an error body is unwrapped, and how events are read.

The request is the SDK's where it matters: method, path, ``content-type``, the body, and
the credentials as the pinned SDKs send them (a bearer token for both APIs, plus
``anthropic-version``), then the provider's configured headers, which win. It asks for
``text/event-stream``, sends no SDK telemetry headers and no ``accept-encoding`` (a
compressed event stream would hold tokens back). Proxy settings in the environment are not
read, and neither SDK is imported.

One `llmesh.services.transport.Transport` per provider, shared by every call: a `ConnectionPool`
built with the provider unless one is given (tests pass a `MockTransport` to run on
recorded exchanges). The pool binds to the running event loop on first use, and `aclose`
closes its connections. Streams are released to the pool once read to the end, and closed
(so the upstream sees the disconnect) when the consumer stops early, closes the iterator or
is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import orjson

from llmesh.services.common.config import ConfigError, ResolvedProvider
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.events import Finish, ProviderEvent, TextDelta
from llmesh.services.orchestrator.providers import anthropic_stream, anthropic_wire, openai_wire
from llmesh.services.orchestrator.providers.errors import classify_transport
from llmesh.services.orchestrator.providers.trace_lines import trace_header_lines
from llmesh.services.transport import ConnectionPool, Reply, SSEDecoder, Transport, render_headers

__all__ = [
    "ANTHROPIC_VERSION",
    "AnthropicDialect",
    "LeanProvider",
    "OpenAIDialect",
    "anthropic_factory",
    "compatible_factory",
    "openai_factory",
]

ANTHROPIC_VERSION = "2026-10-21"
"""The ``anthropic-version`` header: the one the pinned `anthropic` SDK sends (a test checks)."""

DRAIN_TIMEOUT = 0.1
"""Seconds to wait for the end of the body after the terminal event, so that the
connection can go back to the pool; a body that does not end by then is closed."""

KEEPALIVE_TIMEOUT = 15.0
"""Seconds an idle pooled connection is kept open."""

DEADLINE_GRACE = 0.05
"""Seconds added to the caller's `timeout` before this transport gives up on its own. The
caller enforces its deadline itself (and reports DEADLINE_EXCEEDED); the transport's bound
is the backstop, set a little later so the two timers never fire in the same loop turn
and the caller's own deadline is the one reported."""


def _malformed(what: str) -> LlmeshError:
    return LlmeshError(Reason.MALFORMED_RESPONSE, f"upstream sent malformed data: {what}")


def _json_object(data: bytes) -> dict[str, Any]:
    """Decode one event's JSON, which must be an object."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise _malformed(str(exc)) from None
    if type(value) is not dict:
        raise _malformed("an event that is not a JSON object")
    return value


def _error_body(raw: bytes) -> object:
    """An error response's body: its JSON if it has some, else its text."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace").strip()


class _Reader:
    """Reads the events of one streamed reply.

    `event` returns the provider events of one SSE event (never the `Finish`) and sets
    `done` at the terminal event; `finish` returns the `Finish` or raises
    STREAM_INTERRUPTED when the stream ended without its terminal event.
    """

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False

    def event(self, name: bytes | None, data: bytes) -> list[ProviderEvent]:
        raise NotImplementedError

    def finish(self) -> Finish:
        raise NotImplementedError


class _OpenAIReader(_Reader):
    """Bare ``data:`` chunks (any event name is read the same way), then ``[DONE]``."""

    __slots__ = ("_parser",)

    def __init__(self) -> None:
        super().__init__()
        self._parser = openai_wire.OpenAIStreamParser()

    def event(self, name: bytes | None, data: bytes) -> list[ProviderEvent]:
        if data.startswith(b"[DONE]"):
            self.done = True
            return []
        return self._parser.feed(_json_object(data))

    def finish(self) -> Finish:
        return self._parser.end()


class _AnthropicReader(_Reader):
    """Named events: ``ping`` and unnamed events skipped, ``error`` classified by its type."""

    __slots__ = ("_final", "_headers", "_parser")

    def __init__(self, headers: Mapping[str, str], structured_tool: str | None = None) -> None:
        super().__init__()
        self._parser = anthropic_stream.AnthropicStreamParser(structured_tool)
        self._headers = headers
        self._final: Finish | None = None

    def event(self, name: bytes | None, data: bytes) -> list[ProviderEvent]:
        if name is None or name == b"ping":
            return []
        if name == b"error":
            raise anthropic_stream.classify_error_body(
                _error_body(data), status=None, headers=self._headers
            )
        if not data:
            return []
        events = self._parser.feed(_json_object(data))
        if self._parser.finished:
            self.done = True
            last = events[-1] if events else None
            if isinstance(last, Finish):
                self._final = last
                events.pop()
        return events

    def finish(self) -> Finish:
        self._parser.ensure_complete()
        assert self._final is not None  # message_stop always yields a Finish
        return self._final


class OpenAIDialect:
    """OpenAI Chat Completions: ``POST {base_url}/chat/completions``, bearer key."""

    __slots__ = ("max_tokens_field",)

    path = "/chat/completions"
    options = openai_wire.OPTIONS

    def __init__(self, max_tokens_field: str = "max_tokens") -> None:
        self.max_tokens_field = max_tokens_field
        """``max_completion_tokens`` for OpenAI itself, ``max_tokens`` for compatible servers."""

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The credential headers."""
        return {"authorization": f"Bearer {api_key}"}

    def request_headers(self, request: ChatRequest) -> dict[str, str]:
        """Per-request headers: none."""
        return {}

    def body(self, model: str, request: ChatRequest) -> dict[str, Any]:
        """The streamed request body, as the SDK adapter sends it."""
        body = openai_wire.to_provider_request(
            model, request, max_tokens_field=self.max_tokens_field
        )
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        return body

    def status_error(self, raw: bytes, status: int, headers: Mapping[str, str]) -> LlmeshError:
        """Classify an HTTP error response by the ``error`` object in its body."""
        body = _error_body(raw)
        error = body.get("error", body) if isinstance(body, dict) else body
        return openai_wire.classify_error_body(error, status=status, headers=headers)

    def reader(self, headers: Mapping[str, str], model: str, request: ChatRequest) -> _Reader:
        """A reader for one reply."""
        return _OpenAIReader()

    def count(self, model: str, request: ChatRequest) -> tuple[str, dict[str, Any]] | None:
        """None: OpenAI's API has no endpoint counting a request's input tokens."""
        return None


class AnthropicDialect:
    """Anthropic Messages: ``POST {base_url}/v1/messages``, the API version header."""

    __slots__ = ("_structured_output",)

    path = "/v1/messages"
    options = anthropic_wire.OPTIONS

    def __init__(self, structured_output: str = "auto") -> None:
        """`structured_output`: the provider's setting of that name (see `ProviderConfig`)."""
        self._structured_output = structured_output

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The credential and version headers (bearer, as the pinned SDK sends its key)."""
        return {"authorization": f"Bearer {api_key}", "anthropic-version": ANTHROPIC_VERSION}

    def request_headers(self, request: ChatRequest) -> dict[str, str]:
        """Per-request headers: ``anthropic-beta`` when the request enables beta features."""
        return anthropic_wire.request_headers(request)

    def body(self, model: str, request: ChatRequest) -> dict[str, Any]:
        """The streamed request body; raises INVALID_REQUEST as `to_provider_request` does."""
        mode = self._structured_output
        body = anthropic_wire.to_provider_request(model, request, structured_output=mode)
        body["stream"] = True
        return body

    def status_error(self, raw: bytes, status: int, headers: Mapping[str, str]) -> LlmeshError:
        """Classify an HTTP error response by the error type in its body."""
        return anthropic_stream.classify_error_body(
            _error_body(raw), status=status, headers=headers
        )

    def reader(self, headers: Mapping[str, str], model: str, request: ChatRequest) -> _Reader:
        """A reader for one reply of `model` to `request`; `headers` are the 200 response's,
        for in-stream errors."""
        tool = anthropic_wire.structured_tool(request, model, self._structured_output)
        return _AnthropicReader(headers, tool)

    def count(self, model: str, request: ChatRequest) -> tuple[str, dict[str, Any]] | None:
        """The path and body that count the input tokens of `request` to `model`."""
        return anthropic_wire.COUNT_PATH, anthropic_wire.count_request(model, request)


Dialect = OpenAIDialect | AnthropicDialect


def _dumps_default(value: object) -> object:
    """orjson's fallback: mappings that are not dicts (read-only schemas) as dicts."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class LeanProvider:
    """Streams replies from an OpenAI- or Anthropic-API endpoint over one connection pool."""

    def __init__(
        self, resolved: ResolvedProvider, dialect: Dialect, transport: Transport | None = None
    ) -> None:
        """`transport` carries the requests, already bound to the provider's base URL; None
        builds a `ConnectionPool` for ``resolved.base_url``."""
        cfg = resolved.config
        self.name = cfg.name
        self.options = dialect.options
        self._dialect = dialect
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            **dialect.auth_headers(resolved.api_key),
        }
        headers.update((k.lower(), v) for k, v in cfg.headers.items())  # the config wins
        try:
            self._headers = render_headers(headers)
            if transport is None:
                transport = ConnectionPool(
                    resolved.base_url,
                    max_connections=cfg.max_connections,
                    keepalive_timeout=KEEPALIVE_TIMEOUT,
                )
        except ValueError as exc:  # a header with a line break, a base URL that is not http(s)
            raise ConfigError(f"providers.{cfg.name}: {exc}") from None
        self._transport = transport
        self._secret = resolved.api_key
        self._connect_timeout = cfg.connect_timeout
        self._default_timeout = cfg.timeout

    def _error(self, exc: BaseException, *, started: bool) -> LlmeshError:
        err = classify_transport(exc, started=started) or LlmeshError(
            Reason.UPSTREAM_UNAVAILABLE, f"upstream call failed: {type(exc).__name__}"
        )
        return self._redacted(err)

    def _redacted(self, err: LlmeshError) -> LlmeshError:
        key = self._secret
        if len(key) >= 8 and key in err.message:  # never echo a credential
            err.message = err.message.replace(key, "[redacted]")
        return err

    async def stream(
        self, model: str, request: ChatRequest, *, timeout: float | None
    ) -> AsyncGenerator[ProviderEvent, None]:
        """Stream one reply; closing the iterator (or cancelling its task) closes the response.

        `timeout` bounds the whole call, from connecting to the last byte (plus
        `DEADLINE_GRACE`); None means the provider's configured ``timeout``, and a deadline
        already passed fails at once.
        """
        payload = orjson.dumps(self._dialect.body(model, request), default=_dumps_default)
        headers = self._headers
        extra = self._dialect.request_headers(request)
        if extra:
            try:
                headers += render_headers(extra)
            except ValueError as exc:
                raise LlmeshError(Reason.INVALID_REQUEST, str(exc)) from None
        if timeout is not None and timeout <= 0:
            raise LlmeshError(Reason.UPSTREAM_TIMEOUT, "no time left to call the upstream")
        headers += trace_header_lines()  # the attempt's W3C context (b"": tracing off)
        try:
            resp = await self._transport.request(
                "POST",
                self._dialect.path,
                headers,
                payload,
                timeout=self._default_timeout if timeout is None else timeout + DEADLINE_GRACE,
                connect_timeout=self._connect_timeout,
            )
        except Exception as exc:
            raise self._error(exc, started=False) from exc
        released = False
        try:
            if not 200 <= resp.status < 300:
                try:
                    raw = await resp.read()
                except Exception as exc:
                    raise self._error(exc, started=False) from exc
                resp.release()
                released = True
                raise self._redacted(self._dialect.status_error(raw, resp.status, resp.headers))
            reader = self._dialect.reader(resp.headers, model, request)
            decoder = SSEDecoder()
            read = resp.read_chunk
            try:
                while chunk := await read():
                    # Text deltas that arrived in one read are passed on as one: under load
                    # that means fewer, fuller gRPC messages (each costs ~80 us of grpc's own
                    # CPU, whatever its size); with one token per read nothing changes, so
                    # this never adds latency.
                    text: list[TextDelta] = []
                    for name, data in decoder.feed(chunk):
                        try:
                            events = reader.event(name, data)
                        except BaseException:
                            if text:
                                yield _joined(text)
                            raise
                        for event in events:
                            if type(event) is TextDelta:
                                text.append(event)
                                continue
                            if text:
                                yield _joined(text)
                                text = []
                            yield event
                        if reader.done:
                            break
                    if text:
                        yield _joined(text)
                    if reader.done:
                        break
                if reader.done and not resp.at_eof:
                    await _drain(resp)
                finish = reader.finish()
            except LlmeshError as err:
                self._redacted(err)
                raise
            except Exception as exc:
                raise self._error(exc, started=True) from exc
            resp.release()  # read to the end: the connection goes back to the pool
            released = True
            yield finish
        finally:
            if not released:
                resp.close()  # abandoned mid-body: close, so the upstream sees it

    async def count_tokens(
        self, model: str, request: ChatRequest, *, timeout: float | None
    ) -> int | None:
        """The input tokens of `request` to `model` as the API counts them, or None when the
        API cannot count (OpenAI's)."""
        counting = self._dialect.count(model, request)
        if counting is None:
            return None
        path, body = counting
        headers = self._headers
        extra = self._dialect.request_headers(request)
        if extra:
            headers += render_headers(extra)
        try:
            resp = await self._transport.request(
                "POST",
                path,
                headers,
                orjson.dumps(body, default=_dumps_default),
                timeout=self._default_timeout if timeout is None else timeout + DEADLINE_GRACE,
                connect_timeout=self._connect_timeout,
            )
            raw = await resp.read()
            resp.release()
        except Exception as exc:
            raise self._error(exc, started=False) from exc
        if not 200 <= resp.status < 300:
            raise self._redacted(self._dialect.status_error(raw, resp.status, resp.headers))
        tokens = _json_object(raw).get("input_tokens")
        if isinstance(tokens, bool) or not isinstance(tokens, int):
            raise _malformed("a token count without input_tokens")
        return tokens

    async def aclose(self) -> None:
        """Close the transport's connections (it opens new ones if used again)."""
        await self._transport.aclose()


def _joined(deltas: list[TextDelta]) -> TextDelta:
    """Text deltas as one (the delta itself when it is alone, as it is at a slow pace)."""
    if len(deltas) == 1:
        return deltas[0]
    logprobs = tuple(lp for d in deltas for lp in d.logprobs)
    return TextDelta("".join(d.text for d in deltas), logprobs)


async def _drain(resp: Reply) -> None:
    """Read what follows the terminal event (normally just the end of the body)."""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(DRAIN_TIMEOUT):
            while await resp.read_chunk():
                pass


def openai_factory(resolved: ResolvedProvider, transport: Transport | None = None) -> LeanProvider:
    """The `openai` kind: OpenAI itself, whose reasoning models want ``max_completion_tokens``."""
    return LeanProvider(resolved, OpenAIDialect("max_completion_tokens"), transport)


def compatible_factory(
    resolved: ResolvedProvider, transport: Transport | None = None
) -> LeanProvider:
    """The `openai-compatible` and `emulator` kinds: servers that speak ``max_tokens``."""
    return LeanProvider(resolved, OpenAIDialect("max_tokens"), transport)


def anthropic_factory(
    resolved: ResolvedProvider, transport: Transport | None = None
) -> LeanProvider:
    """The `anthropic` kind: Anthropic's Messages API (or the emulator standing in for it)."""
    dialect = AnthropicDialect(resolved.config.structured_output)
    return LeanProvider(resolved, dialect, transport)
