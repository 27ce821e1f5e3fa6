"""A tiny HTTP server on the event loop answering ``GET /metrics`` (the orchestrator's and
the processor's; the gateway serves ``/metrics`` on its own HTTP port).

One coroutine per connection on the service's loop, no thread: the gauges' sources read
the service's state on the loop that owns it. It speaks just enough HTTP/1.1 for a
Prometheus scrape (request line, headers, one response, then close).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from llmesh.services.common.tls import server_context
from llmesh.services.common.tls_settings import TlsSettings
from llmesh.services.telemetry.metrics import CONTENT_TYPE, Metrics

__all__ = ["MetricsServer", "start_metrics_server"]

_log = logging.getLogger("llmesh.telemetry")
_MAX_HEAD = 16 * 1024
_READ_TIMEOUT = 10.0


@dataclass
class MetricsServer:
    """A running metrics server: the port it bound, and how to stop it."""

    server: asyncio.Server
    port: int

    async def aclose(self) -> None:
        """Stop listening and close open connections."""
        self.server.close()
        await self.server.wait_closed()


async def start_metrics_server(
    metrics: Metrics, host: str, port: int, tls: TlsSettings | None = None
) -> MetricsServer:
    """Serve `metrics` at ``http://host:port/metrics`` (port 0: an ephemeral one); with a
    ``cert`` in `tls`, at ``https://`` (with a ``client_ca``, scrapers need a certificate)."""
    context = server_context(tls, "metrics server") if tls is not None and tls.serves_tls else None

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            method, _, rest = head.partition(b" ")
            path = rest.partition(b" ")[0].partition(b"?")[0]
            if method not in (b"GET", b"HEAD"):
                status, body, kind = "405 Method Not Allowed", b"GET only\n", "text/plain"
            elif path != b"/metrics":
                status, body, kind = "404 Not Found", b"see /metrics\n", "text/plain"
            else:
                status, body, kind = "200 OK", metrics.render(), CONTENT_TYPE
            header = (
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(header.encode() + (b"" if method == b"HEAD" else body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that sent no whole request head: nothing to answer
        except ConnectionError:
            pass
        except Exception:
            _log.exception("metrics: answering a scrape failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port, limit=_MAX_HEAD, ssl=context)
    bound = server.sockets[0].getsockname()[1]
    _log.info("metrics at %s://%s:%d/metrics", "https" if context else "http", host, bound)
    return MetricsServer(server, bound)
