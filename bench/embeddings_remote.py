"""The remote half of ``python -m bench --embeddings``: embeddings through llmesh and direct.

Calls of `BATCH` short texts go straight to the upstream's ``/v1/embeddings`` (direct),
through the orchestrator's ``Embed`` RPC asking for packed float32 bytes (gRPC), through the
same RPC asking for floats as a client written before packed bytes would (gRPC floats), and
through the gateway's ``/v1/embeddings`` (gateway), alternating over rounds as the chat
workloads do: latency p50 at c=1 and embeddings/s at the high concurrency, each path
against direct measured in the same run. The upstream is `bench.fast_upstream`
(``--upstream auto`` or ``fast``; its vectors are served from memory) or the emulator
(``--upstream emulator``), on the load core; the orchestrator and gateway on the service
core. HTTP bodies ask for base64, as the official SDK does and as llmesh asks its upstream.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import orjson

from bench.clients import ChatPath, DeltaSink, grpc_channel, http_session
from bench.load import LegResult
from bench.mesh import EMBEDDING_MODEL, PROVIDER, MeshLauncher
from bench.settings import BenchSettings
from bench.system import Pinning
from bench.upstream import start_upstream
from bench.workloads import DIRECT, GATEWAY, GRPC, Comparison, Leg, alternate, compare, p50
from llmesh.v1 import embeddings_pb2, orchestrator_pb2_grpc

BATCH = 8
"""Texts per call."""
HIGH_CONCURRENCY = 32
"""The concurrency of the throughput workload."""
GRPC_FLOAT = "grpc_float"
"""The ``Embed`` RPC asked for floats (`Embedding.values`), as older clients ask."""


def batch_texts() -> list[str]:
    """`BATCH` short sentences, the same on every call (so the upstream serves them from memory)."""
    return [f"short text number {i} about routing requests to models" for i in range(BATCH)]


class EmbedHttpPath:
    """OpenAI's ``/embeddings`` at `base_url` (the upstream itself, or the gateway)."""

    def __init__(
        self, name: str, session: aiohttp.ClientSession, base_url: str, model: str, timeout: float
    ) -> None:
        self.name = name
        self._session = session
        self._url = f"{base_url.rstrip('/')}/embeddings"
        body = {"model": model, "input": batch_texts(), "encoding_format": "base64"}
        self._body = orjson.dumps(body)
        self._headers = {"content-type": "application/json", "authorization": "Bearer bench"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def unary(self) -> None:
        async with self._session.post(
            self._url, data=self._body, headers=self._headers, timeout=self._timeout
        ) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{self.name}: HTTP {resp.status}: {body[:200]!r}")
            reply: dict[str, Any] = orjson.loads(body)
            if len(reply["data"]) != BATCH:
                raise RuntimeError(f"{self.name}: {len(reply['data'])} embeddings for {BATCH}")

    async def stream(self, on_delta: DeltaSink) -> None:
        raise NotImplementedError("embeddings are not streamed")


class EmbedGrpcPath:
    """The orchestrator's ``Embed`` over one shared grpc.aio channel."""

    def __init__(
        self,
        name: str,
        channel: grpc.aio.Channel,
        model: str,
        timeout: float,
        encoding: embeddings_pb2.EmbeddingEncoding,
    ) -> None:
        self.name = name
        self._stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        self._request = embeddings_pb2.EmbedRequest(
            model=model, inputs=batch_texts(), encoding=encoding
        )
        self._timeout = timeout

    async def unary(self) -> None:
        reply = await self._stub.Embed(self._request, timeout=self._timeout)
        if len(reply.embeddings) != BATCH:
            raise RuntimeError(f"{self.name}: {len(reply.embeddings)} embeddings for {BATCH}")

    async def stream(self, on_delta: DeltaSink) -> None:
        raise NotImplementedError("embeddings are not streamed")


def _latency(leg: LegResult) -> list[float]:
    return leg.latencies_ms


def _embeddings_per_s(leg: LegResult) -> float | None:
    return leg.rps * BATCH if leg.completed else None


ROWS: dict[str, tuple[str, str, str]] = {
    "embed_c1_grpc_p50_ms": ("c=1, gRPC `Embed`: latency p50", "ms", "added"),
    "embed_c1_grpc_float_p50_ms": ("c=1, gRPC `Embed` (floats): latency p50", "ms", "added"),
    "embed_c1_gateway_p50_ms": ("c=1, gateway `/v1/embeddings`: latency p50", "ms", "added"),
    "embed_hi_grpc_per_s": ("c={c}, gRPC `Embed`: embeddings/s", "emb/s", "ratio"),
    "embed_hi_grpc_float_per_s": ("c={c}, gRPC `Embed` (floats): embeddings/s", "emb/s", "ratio"),
    "embed_hi_gateway_per_s": ("c={c}, gateway `/v1/embeddings`: embeddings/s", "emb/s", "ratio"),
}
"""Every row of the remote table: label, unit, and what the last column shows."""


def _cell(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f} {unit}" if unit == "emb/s" else f"{value:.2f} {unit}"


def remote_markdown(comparisons: Mapping[str, Comparison], header: str) -> str:
    """The table, in the main suite's style (direct, through llmesh, ratio or added)."""
    lines = [
        header,
        "",
        "| metric | direct | through llmesh | ratio / added |",
        "|---|---:|---:|---:|",
    ]
    for key, (label, unit, shows) in ROWS.items():
        c = comparisons.get(key, Comparison())
        if shows == "added":
            third = "n/a" if c.added is None else f"{c.added:+.2f} {unit}"
        else:
            third = "n/a" if c.ratio is None else f"{c.ratio:.3f}x"
        label = label.format(c=HIGH_CONCURRENCY)
        lines.append(f"| {label} | {_cell(c.direct, unit)} | {_cell(c.llmesh, unit)} | {third} |")
    return "\n".join(lines)


async def run_remote(
    seconds: float, rounds: int, choice: str, pinning: Pinning, log: Callable[[str], None]
) -> tuple[dict[str, Any], str]:
    """Measure every path; returns the JSON part (comparisons and legs) and the table."""
    kind = "emulator" if choice == "emulator" else "fast"
    settings = BenchSettings()
    comparisons: dict[str, Comparison] = {}
    workloads: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="llmesh-bench-embed-") as tmp:
        log(f"remote embeddings: starting the {kind} upstream and llmesh")
        upstream = await start_upstream(kind, settings, pinning, Path(tmp))
        mesh = None
        session = http_session(0)
        try:
            mesh = await MeshLauncher(Path(tmp), upstream.base_url, pinning).start(1)
            channel = grpc_channel(mesh.orchestrator_address)
            try:
                timeout = settings.request_timeout
                model = f"{PROVIDER}/{EMBEDDING_MODEL}"
                packed = embeddings_pb2.EMBEDDING_ENCODING_BASE64
                floats = embeddings_pb2.EMBEDDING_ENCODING_FLOAT
                paths: list[ChatPath] = [
                    EmbedHttpPath(DIRECT, session, upstream.base_url, EMBEDDING_MODEL, timeout),
                    EmbedGrpcPath(GRPC, channel, model, timeout, packed),
                    EmbedGrpcPath(GRPC_FLOAT, channel, model, timeout, floats),
                    EmbedHttpPath(GATEWAY, session, f"{mesh.gateway_url}/v1", model, timeout),
                ]
                groups = {"llmesh": mesh.pids, "upstream": [upstream.service.pid]}
                for c, name in ((1, "c1"), (HIGH_CONCURRENCY, "hi")):
                    log(f"remote embeddings: c={c}, {len(paths)} paths x {rounds} rounds")
                    legs = await alternate(
                        paths,
                        Leg(False, c, seconds),
                        rounds,
                        warmup=min(settings.warmup_seconds, seconds),
                        cpu_groups=groups,
                    )
                    workloads[f"embed_c{c}"] = {
                        p: [leg.summary() for leg in runs] for p, runs in legs.items()
                    }
                    for path in (GRPC, GRPC_FLOAT, GATEWAY):
                        if name == "c1":
                            comparisons[f"embed_c1_{path}_p50_ms"] = compare(
                                legs, path, p50(_latency)
                            )
                        else:
                            comparisons[f"embed_hi_{path}_per_s"] = compare(
                                legs, path, _embeddings_per_s
                            )
            finally:
                await channel.close()
        finally:
            await session.close()
            if mesh is not None:
                mesh.stop()
            upstream.stop()
    header = (
        f"Remote embeddings, {BATCH} texts per call, upstream {kind} "
        f"({EMBEDDING_MODEL}, base64 over HTTP); placement: {pinning.note}"
    )
    data = {
        "upstream": kind,
        "batch": BATCH,
        "rounds": rounds,
        "comparisons": {
            key: {
                "direct": c.direct,
                "llmesh": c.llmesh,
                "added": c.added,
                "ratio": c.ratio,
                "rounds": c.rounds,
            }
            for key, c in comparisons.items()
        },
        "workloads": workloads,
    }
    return data, remote_markdown(comparisons, header)
