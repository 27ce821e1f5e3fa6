"""The gateway's HTTP span middleware on a bare ASGI app."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from llmesh.services.common.telemetry_settings import EXCLUDED_URLS
from llmesh.services.telemetry import trace_http
from llmesh.services.telemetry.current import attach_span, detach
from llmesh.services.telemetry.lean_trace import LeanTracerProvider
from llmesh.services.telemetry.trace_http import TracingMiddleware, request_url
from tests.telemetry.conftest import MemorySpans

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    status = 503 if scope["path"] == "/down" else 200
    await send({"type": "http.response.start", "status": status, "headers": [(b"x-a", b"1")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _client(provider: LeanTracerProvider, excluded: tuple[str, ...] = ()) -> httpx.AsyncClient:
    app = TracingMiddleware(_app, tracer_provider=provider, excluded=excluded)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


async def test_a_request_continues_the_callers_trace_and_answers_with_its_own_span(
    provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    async with _client(provider) as client:
        reply = await client.get(
            "/v1/models", headers={"traceparent": PARENT, "authorization": "Bearer sk-secret"}
        )
    (span,) = spans.get_finished_spans()
    assert span.kind is SpanKind.SERVER and span.name == "GET"
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert span.context is not None
    assert reply.headers["x-a"] == "1"
    assert reply.headers["traceparent"] == (
        f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01"
    )
    attrs = dict(span.attributes or {})
    assert attrs["http.request.method"] == "GET" and attrs["url.path"] == "/v1/models"
    assert attrs["http.response.status_code"] == 200
    assert "sk-secret" not in repr(attrs)


async def test_server_errors_are_error_spans(
    provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    async with _client(provider) as client:
        assert (await client.get("/down")).status_code == 503
        with pytest.raises(RuntimeError):
            await client.get("/boom")
    down, boom = spans.get_finished_spans()
    assert down.status.status_code is StatusCode.ERROR
    assert (down.attributes or {})["error.type"] == "503"
    assert boom.status.status_code is StatusCode.ERROR
    assert boom.events and boom.events[0].name == "exception"


async def test_lifespan_passes_through_untraced(
    provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    middleware = TracingMiddleware(app, tracer_provider=provider)  # type: ignore[arg-type]
    await middleware({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"] and spans.get_finished_spans() == ()


async def test_excluded_urls_pass_through_without_a_span(
    provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    async with _client(provider, EXCLUDED_URLS) as client:
        for path in ("/healthz", "/readyz", "/metrics"):
            reply = await client.get(path, headers={"traceparent": PARENT})
            assert reply.status_code == 200 and "traceparent" not in reply.headers, path
        assert spans.get_finished_spans() == ()
        # anchored at the end: only the probes and the scrape themselves
        for path in ("/v1/models", "/healthz/deep", "/v1/metrics/x"):
            assert "traceparent" in (await client.get(path)).headers, path
    paths = [dict(s.attributes or {})["url.path"] for s in spans.get_finished_spans()]
    assert paths == ["/v1/models", "/healthz/deep", "/v1/metrics/x"]


async def test_excluded_patterns_search_the_whole_url(
    provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    async with _client(provider, ("^http://gw/console", "models")) as client:
        for path in ("/console", "/console/app.js", "/v1/models"):
            await client.get(path)
        await client.get("/v1/chat")
    assert [s.attributes["url.path"] for s in spans.get_finished_spans()] == ["/v1/chat"]  # type: ignore[index]


def test_the_url_matched_is_scheme_address_and_path_without_the_query() -> None:
    scope = {"scheme": "https", "server": ("10.0.0.2", 8080), "path": "/readyz"}
    assert request_url(scope) == "https://10.0.0.2:8080/readyz"
    assert request_url({"path": "/x", "server": None}) == "http:///x"
    assert request_url({"path": "/x", "server": ("gw", None)}) == "http://gw/x"


async def test_a_request_without_a_callers_context_starts_a_trace_of_its_own(
    provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    """Not a child of whatever span the server's own context holds: a new trace, as the
    caller sent no ``traceparent``."""
    outer = provider.get_tracer("test").start_span("server's own")
    token = attach_span(outer)
    try:
        async with _client(provider) as client:
            reply = await client.get("/v1/models")
    finally:
        detach(token)
    (span,) = spans.get_finished_spans()
    assert span.parent is None and span.context is not None
    assert span.context.trace_id != outer.get_span_context().trace_id
    assert reply.headers["traceparent"].split("-")[1] == f"{span.context.trace_id:032x}"


async def test_exclusion_verdicts_are_kept_for_a_bounded_number_of_urls(
    provider: LeanTracerProvider, spans: MemorySpans, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trace_http, "_VERDICTS", 4)
    app = TracingMiddleware(_app, tracer_provider=provider, excluded=EXCLUDED_URLS)  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        for number in range(10):
            await client.get(f"/v1/x{number}")
            await client.get("/healthz")
        assert len(app._verdicts) <= 4
    assert len(spans.get_finished_spans()) == 10  # each /healthz excluded, cached or not


async def test_a_server_given_as_a_list_is_matched_too(
    provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    """ASGI lets a server give its address as any pair (Starlette's test client: a list)."""
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["path"])

    middleware = TracingMiddleware(app, tracer_provider=provider, excluded=EXCLUDED_URLS)  # type: ignore[arg-type]
    for path in ("/healthz", "/v1/models", "/healthz"):
        scope = {"type": "http", "path": path, "server": ["testserver", 80], "headers": []}
        await middleware(scope, None, None)  # type: ignore[arg-type]
    assert seen == ["/healthz", "/v1/models", "/healthz"]
    assert [s.attributes["url.path"] for s in spans.get_finished_spans()] == ["/v1/models"]  # type: ignore[index]
