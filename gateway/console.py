"""``GET /console``: the web console, static files shipped inside the gateway.

The page, its ES modules and its stylesheet live in `llmesh.gateway.console_assets` and are
read once, when the routes are built. Every response carries a Content-Security-Policy
that allows only the gateway's own scripts, styles and connections (no inline script, no
other origin), so the console works offline and nothing it shows can run code. The
console holds the caller's key in the browser's session storage and sends it as the
``authorization`` header to the JSON APIs (``llmesh.gateway.console_api``); no key ever
travels in a URL.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The console's Content-Security-Policy: its own origin's files and APIs, nothing else."""

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}

_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def load_assets() -> dict[str, tuple[bytes, str]]:
    """Every console file by name (``index.html``, ``app.js``, ...), with its media type."""
    folder = resources.files("llmesh.gateway.console_assets")
    out: dict[str, tuple[bytes, str]] = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            out[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return out


def routes() -> list[BaseRoute]:
    """``/console`` (the page) and ``/console/<file>`` (its modules and stylesheet)."""
    assets = load_assets()

    async def page(request: Request) -> Response:
        """The console's page."""
        body, media_type = assets["index.html"]
        return Response(body, media_type=media_type, headers=_HEADERS)

    async def asset(request: Request) -> Response:
        """One of the console's files; 404 for any other name."""
        found = assets.get(request.path_params["name"])
        if found is None or request.path_params["name"] == "index.html":
            return Response(b"not found\n", status_code=404, headers=_HEADERS)
        return Response(found[0], media_type=found[1], headers=_HEADERS)

    return [
        Route("/console", page, methods=["GET"]),
        Route("/console/", page, methods=["GET"]),
        Route("/console/{name:str}", asset, methods=["GET"]),
    ]
