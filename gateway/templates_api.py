"""The prompt templates' JSON API under ``/api/v1/templates``: `llmesh.v1.TemplateService`
in protobuf's canonical JSON mapping, as the rest of the native API (`llmesh.gateway.native`).

``GET /api/v1/templates`` lists them; ``POST /api/v1/templates`` creates a version (a
`CreateTemplateRequest`: ``{"template": {...}}``); ``GET /api/v1/templates/{name}`` reads
the latest version, or the one ``{name}@{version}`` or ``?version=N`` names;
``GET /api/v1/templates/{name}/stats`` (``?since=&until=`` as RFC 3339 times, ``?tenant=``)
reports each version's calls; ``PUT /api/v1/templates/{name}/weights`` sets the A/B weights
(``{"weights": [{"version": 1, "weight": 0.9}, ...]}``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmesh.gateway.errors import error_response
from llmesh.gateway.inputs import call_options, read_message
from llmesh.gateway.native import UnaryMethod, _unary
from llmesh.gateway.responses import UpstreamResponse
from llmesh.gateway.upstream import Upstream, upstream_of
from llmesh.services.common.errors import LlmeshError, Reason, invalid
from llmesh.v1 import templates_pb2

__all__ = ["routes"]

Fill = Callable[[Request, Message], None]
"""Sets a request message's fields from the URL (path and query)."""


def _route(
    request_type: type[Message],
    method: Callable[[Upstream], UnaryMethod | None],
    doc: str,
    fill: Fill | None = None,
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        message = request_type()
        try:
            upstream = upstream_of(request)
            opts = call_options(request.headers, upstream.settings.default_timeout)
            if request.method in ("POST", "PUT"):
                await read_message(request, message, upstream.settings.max_body_bytes)
            if fill is not None:
                fill(request, message)
            call = method(upstream)
            if call is None:
                raise LlmeshError(
                    Reason.PROVIDER_NOT_CONFIGURED, "templates are not served on this path"
                )
        except LlmeshError as err:
            return error_response(err)
        return UpstreamResponse(_unary(call, message, opts, upstream, "orchestrator"))

    endpoint.__doc__ = doc
    return endpoint


def _name(request: Request, message: Message) -> None:
    message.name = request.path_params["name"]  # type: ignore[attr-defined]


def _get(request: Request, message: Message) -> None:
    _name(request, message)
    raw = request.query_params.get("version")
    if raw is not None:
        if not raw.isdigit() or int(raw) < 1 or int(raw) > 2**31 - 1:
            raise invalid("version", "a version number from 1")
        message.version = int(raw)  # type: ignore[attr-defined]


def _stats(request: Request, message: Message) -> None:
    _name(request, message)
    for key in ("since", "until"):
        raw = request.query_params.get(key)
        if raw is not None:
            try:
                getattr(message, key).FromJsonString(raw)
            except ValueError:
                raise invalid(key, "an RFC 3339 time, e.g. 2026-01-31T00:00:00Z") from None
    tenant = request.query_params.get("tenant")
    if tenant:
        message.tenant = tenant  # type: ignore[attr-defined]


list_templates = _route(
    templates_pb2.ListTemplatesRequest,
    lambda u: None if u.templates is None else u.templates.ListTemplates,
    "``GET /api/v1/templates``: ListTemplatesResponse JSON.",
)
create_template = _route(
    templates_pb2.CreateTemplateRequest,
    lambda u: None if u.templates is None else u.templates.CreateTemplate,
    "``POST /api/v1/templates``: CreateTemplateRequest JSON -> CreateTemplateResponse JSON.",
)
get_template = _route(
    templates_pb2.GetTemplateRequest,
    lambda u: None if u.templates is None else u.templates.GetTemplate,
    "``GET /api/v1/templates/{name}``: GetTemplateResponse JSON.",
    _get,
)
template_stats = _route(
    templates_pb2.GetTemplateStatsRequest,
    lambda u: None if u.templates is None else u.templates.GetTemplateStats,
    "``GET /api/v1/templates/{name}/stats``: GetTemplateStatsResponse JSON.",
    _stats,
)
set_weights = _route(
    templates_pb2.SetTemplateWeightsRequest,
    lambda u: None if u.templates is None else u.templates.SetTemplateWeights,
    "``PUT /api/v1/templates/{name}/weights``: SetTemplateWeightsRequest JSON (the name from "
    "the path) -> SetTemplateWeightsResponse JSON.",
    _name,
)


def routes() -> list[BaseRoute]:
    """The templates API's routes."""
    return [
        Route("/api/v1/templates", list_templates, methods=["GET"]),
        Route("/api/v1/templates", create_template, methods=["POST"]),
        Route("/api/v1/templates/{name}", get_template, methods=["GET"]),
        Route("/api/v1/templates/{name}/stats", template_stats, methods=["GET"]),
        Route("/api/v1/templates/{name}/weights", set_weights, methods=["PUT"]),
    ]
