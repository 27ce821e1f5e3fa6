"""The upstream of the benchmarks: the emulator or `bench.fast_upstream`, and its ceiling.

Both serve the model ``fast`` at once and the model ``paced`` with the paced latency. The
ceiling is what the load generator gets straight from the upstream at the high concurrency,
so the reader can see the upstream is not what limits the figures through llmesh.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.clients import HttpPath, prompt_of
from bench.load import run_leg
from bench.ports import free_port
from bench.procs import Service, python_argv, start
from bench.settings import BenchSettings
from bench.system import Pinning

KINDS = {
    "fast": "bench.fast_upstream",
    "emulator": "bench.emulator",
}
"""Upstream kinds and the module that serves each."""

FAST_MODEL = "fast"
PACED_MODEL = "paced"


@dataclass
class Upstream:
    """A running upstream."""

    kind: str
    service: Service
    port: int

    @property
    def base_url(self) -> str:
        """The OpenAI API base, ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        """Stop the process."""
        self.service.stop(timeout=5)


async def start_upstream(
    kind: str, settings: BenchSettings, pinning: Pinning, logs: Path
) -> Upstream:
    """Start an upstream of `kind` on the load core and wait until it accepts connections."""
    port = free_port()
    latency = f"{PACED_MODEL}={settings.paced_ttft_ms}:{settings.paced_itl_ms}"
    service = await start(
        f"upstream-{kind}",
        python_argv(KINDS[kind], "--port", str(port), "--latency", latency),
        port=port,
        pin=pinning.prefix(pinning.load_core),
        logs=logs,
    )
    return Upstream(kind, service, port)


async def ceiling(
    upstream: Upstream, session: aiohttp.ClientSession, settings: BenchSettings
) -> dict[str, float | int]:
    """Requests/s and streamed tokens/s straight from the upstream at the high concurrency."""
    path = HttpPath(
        upstream.kind,
        session,
        upstream.base_url,
        FAST_MODEL,
        prompt_of(settings.prompt_tokens),
        settings.request_timeout,
    )
    c = settings.high_concurrency
    groups = {"upstream": [upstream.service.pid]}
    await run_leg(path, stream=False, concurrency=c, seconds=settings.warmup_seconds)
    unary = await run_leg(
        path, stream=False, concurrency=c, seconds=settings.ceiling_seconds, cpu_groups=groups
    )
    streamed = await run_leg(
        path, stream=True, concurrency=c, seconds=settings.ceiling_seconds, cpu_groups=groups
    )
    return {
        "concurrency": c,
        "rps": unary.rps,
        "tokens_per_s": streamed.tokens_per_s,
        "errors": unary.errors + streamed.errors,
        "cpu_upstream_unary": round(unary.cpu.get("upstream", 0.0), 3),
        "cpu_load_unary": round(unary.cpu.get("load", 0.0), 3),
    }
