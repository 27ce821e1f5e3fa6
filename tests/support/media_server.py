"""A local HTTP server of media files in its own thread, counting the requests per path, and
a `MediaFetcher` that reaches it only through its dial seam.

The fetcher's resolver answers a public-looking address for `HOST`; the guard checks that
address as in production, and only then does the dial seam point the connection at the
local server (which the guard itself would refuse: it listens on loopback).
"""

from __future__ import annotations

import asyncio
import collections
import threading
from concurrent.futures import Future

from aiohttp import web

from llmesh.services.common.media_settings import MediaFetchConfig
from llmesh.services.orchestrator.providers.media_fetch import MediaFetcher

HOST = "media.example.test"
"""The host name the fetcher resolves (to `PUBLIC`) and the configuration allows."""
PUBLIC = "93.184.215.14"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
PDF = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n" * 20


class MediaServer:
    """Serves ``/<name>.png`` and ``/<name>.pdf`` (any name) on a loopback port; a name
    starting with ``slow`` is answered only when the server stops."""

    def __init__(self) -> None:
        self.port = 0
        self.hits: collections.Counter[str] = collections.Counter()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="media-server", daemon=True)

    def url(self, name: str, host: str = HOST) -> str:
        """The URL of a file, as a caller would send it."""
        return f"http://{host}/{name}"

    def fetcher(self) -> MediaFetcher:
        """A fetcher allowing `HOST` (over http) that connects here through its dial seam."""

        async def resolve(host: str, port: int) -> list[str]:
            return [PUBLIC] if host == HOST else []

        def dial(address: str, port: int) -> tuple[str, int]:
            assert address == PUBLIC, address  # only what the guard let through
            return "127.0.0.1", self.port

        config = MediaFetchConfig(allow_hosts=(HOST,), allow_http=True)
        return MediaFetcher(config, resolve=resolve, dial=dial)

    def start(self) -> MediaServer:
        ready: Future[None] = Future()
        self._ready = ready
        self._thread.start()
        ready.result(timeout=10)
        return self

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        release = asyncio.Event()

        async def handle(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            self.hits[request.path_qs] += 1
            if name.startswith("slow"):
                await release.wait()
            if name.endswith(".png"):
                return web.Response(body=PNG, content_type="image/png")
            if name.endswith(".pdf"):
                return web.Response(body=PDF, content_type="application/pdf")
            raise web.HTTPNotFound()

        app = web.Application()
        app.router.add_get("/{name}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.port = runner.addresses[0][1]
        self._ready.set_result(None)
        await self._stop.wait()
        release.set()
        await runner.cleanup()

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
