"""``python -m bench --telemetry``: what telemetry costs, off against metrics against tracing.

Three meshes (an orchestrator and a gateway each, all on the service core) run side by side
in front of one upstream:

- ``off``: no metrics, no tracing, and no call log (``LLMESH_CALL_LOG=false``);
- ``metrics``: Prometheus metrics (``OTEL_METRICS_EXPORTER=prometheus``), the call log on
  (``LLMESH_CALL_LOG=true``);
- ``tracing``: the same, and every call traced (``OTEL_TRACES_SAMPLER=always_on``) and
  exported over OTLP/gRPC to `bench.otlp_sink`, a receiver in its own process on the load core.

Unary chat calls go to each mesh's gRPC ``Chat`` and gateway ``/v1/chat/completions`` (and
straight to the upstream at c=1) in alternating rounds, as every workload of the suite: latency
p50 at c=1 and calls/s at the high concurrency, each against the mesh with telemetry off in
the same round. Then every mesh's exports are checked (`bench.telemetry_report.Exports`): the
spans the receiver got against those the calls owe, the calls the metrics counted, the
call-log records written.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.clients import ChatPath, DeltaSink, GrpcPath, HttpPath, grpc_channel, http_session
from bench.load import LegResult
from bench.mesh import PROVIDER, Mesh, MeshLauncher
from bench.ports import free_port
from bench.procs import Service, python_argv, start
from bench.report import write_json
from bench.run import choose_upstream
from bench.settings import BenchSettings
from bench.system import Pinning, machine_info
from bench.telemetry_report import (
    KINDS,
    VARIANTS,
    Exports,
    Figures,
    judge,
    telemetry_markdown,
)
from bench.upstream import FAST_MODEL
from bench.workloads import DIRECT, GATEWAY, GRPC, Leg, Log, alternate, compare, p50

OFF, METRICS, TRACING = VARIANTS
CALL_LOG_MARK = '"logger":"llmesh.calls"'
"""What each call-log record carries (the services log JSON lines to a file)."""


def variant_env(variant: str, sink_endpoint: str) -> dict[str, str]:
    """The telemetry switches of one mesh, as environment variables."""
    if variant == OFF:
        return {"LLMESH_CALL_LOG": "false"}
    env = {
        "OTEL_METRICS_EXPORTER": "prometheus",
        "LLMESH_ORCHESTRATOR_METRICS_PORT": str(free_port()),
        "LLMESH_CALL_LOG": "true",
    }
    if variant == TRACING:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink_endpoint
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc"
        env["OTEL_TRACES_SAMPLER"] = "always_on"
    return env


class CountedPath:
    """A path that counts the calls it starts (what the mesh's exports should account for)."""

    def __init__(self, path: ChatPath) -> None:
        self.name = path.name
        self._path = path
        self.calls = 0

    async def unary(self) -> None:
        self.calls += 1
        await self._path.unary()

    async def stream(self, on_delta: DeltaSink) -> None:
        self.calls += 1
        await self._path.stream(on_delta)


@dataclass
class Sink:
    """`bench.otlp_sink` running, and where its counts go when it stops."""

    service: Service
    port: int
    counts_file: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> dict[str, Any]:
        """Stop it and read what it received (empty counts if it wrote none)."""
        self.service.stop()
        try:
            counts: dict[str, Any] = json.loads(self.counts_file.read_text())
        except (OSError, ValueError):
            counts = {"total": 0, "services": {}, "names": {}}
        return counts


async def start_sink(pinning: Pinning, directory: Path) -> Sink:
    """The span receiver, on the load core (the load generator's), not the mesh's."""
    port = free_port()
    counts = directory / "otlp-sink-counts.json"
    argv = python_argv("bench.otlp_sink", "--port", str(port), "--counts", str(counts))
    service = await start(
        "otlp-sink", argv, port=port, pin=pinning.prefix(pinning.load_core), logs=directory
    )
    return Sink(service, port, counts)


def _variant_of(path: str) -> str:
    return path.rpartition("_")[2]


def _latency(leg: LegResult) -> list[float]:
    return leg.latencies_ms


def _rps(leg: LegResult) -> float | None:
    return leg.rps if leg.completed else None


def _cpu_us(leg: LegResult) -> float | None:
    """Microseconds of the loaded mesh's CPU (both its processes) per completed call."""
    cpu = leg.cpu.get(f"mesh_{_variant_of(leg.path)}")
    return None if cpu is None or not leg.completed else cpu * leg.seconds / leg.completed * 1e6


def figures(
    c1: Mapping[str, list[LegResult]], hi: Mapping[str, list[LegResult]]
) -> dict[str, dict[str, Figures]]:
    """Every path's figures by kind and variant, each against ``off`` in the same rounds,
    and the traced mesh's against the metrics-only mesh's too (tracing's own cost)."""
    out: dict[str, dict[str, Figures]] = {}
    for kind in KINDS:
        off, metrics = f"{kind}_{OFF}", f"{kind}_{METRICS}"
        out[kind] = {}
        for variant in VARIANTS:
            name = f"{kind}_{variant}"
            latency = compare(c1, name, p50(_latency), base=off)
            rps = compare(hi, name, _rps, base=off)
            cpu = compare(hi, name, _cpu_us, base=off)
            own: dict[str, float | None] = {}
            if variant == TRACING:
                own = {
                    "c1_vs_metrics_ms": compare(c1, name, p50(_latency), base=metrics).added,
                    "hi_vs_metrics": compare(hi, name, _rps, base=metrics).ratio,
                    "hi_cpu_vs_metrics_us": compare(hi, name, _cpu_us, base=metrics).added,
                }
            out[kind][variant] = Figures(
                c1_p50_ms=latency.llmesh,
                c1_added_ms=compare(c1, name, p50(_latency)).added,
                c1_vs_off_ms=latency.added,
                hi_per_s=rps.llmesh,
                hi_vs_off=rps.ratio,
                hi_cpu_us=cpu.llmesh,
                hi_cpu_vs_off_us=cpu.added,
                **own,
            )
    return out


async def _scrape(
    session: aiohttp.ClientSession, url: str, sample: str, **labels: str
) -> float | None:
    """The sum of one metric's samples at `url` (with the given labels); None if no metrics."""
    try:
        async with session.get(url) as resp:
            if resp.status != 200:
                return None
            text = await resp.text()
    except aiohttp.ClientError:
        return None
    return sum(
        float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


def _call_log_records(directory: Path) -> int:
    try:
        text = (directory / "orchestrator.log").read_text(errors="replace")
    except OSError:
        return 0
    return sum(1 for line in text.splitlines() if CALL_LOG_MARK in line)


async def _measure(
    meshes: Mapping[str, Mesh],
    session: aiohttp.ClientSession,
    upstream_url: str,
    s: BenchSettings,
    groups: Mapping[str, list[int]],
    log: Log,
) -> tuple[dict[str, dict[str, list[LegResult]]], dict[str, dict[str, int]]]:
    """Both workloads; returns their legs and the calls started per variant and kind."""
    channels = {v: grpc_channel(m.orchestrator_address) for v, m in meshes.items()}
    try:
        prompt = " ".join(f"w{i % 10}" for i in range(s.nonstream_prompt_tokens))
        model, timeout = f"{PROVIDER}/{FAST_MODEL}", s.request_timeout
        grpc_paths = {
            v: CountedPath(GrpcPath(f"{GRPC}_{v}", channels[v], model, prompt, timeout))
            for v in VARIANTS
        }
        gateway_paths = {
            v: CountedPath(
                HttpPath(f"{GATEWAY}_{v}", session, f"{m.gateway_url}/v1", model, prompt, timeout)
            )
            for v, m in meshes.items()
        }
        direct = CountedPath(HttpPath(DIRECT, session, upstream_url, FAST_MODEL, prompt, timeout))
        meshed: list[ChatPath] = [*grpc_paths.values(), *gateway_paths.values()]
        legs: dict[str, dict[str, list[LegResult]]] = {}
        for key, paths, c in (("c1", [direct, *meshed], 1), ("hi", meshed, s.high_concurrency)):
            log(f"telemetry: unary c={c}, {len(paths)} paths x {s.rounds} rounds")
            leg = Leg(False, c, s.leg_seconds)
            legs[key] = await alternate(
                paths, leg, s.rounds, warmup=s.warmup_seconds, cpu_groups=groups
            )
    finally:
        for channel in channels.values():
            await channel.close()
    calls = {v: {GRPC: grpc_paths[v].calls, GATEWAY: gateway_paths[v].calls} for v in VARIANTS}
    return legs, calls


def time_limit(settings: BenchSettings) -> float:
    """A bound on the whole run: every leg with its warm-up and grace, and the start-ups."""
    legs = 1 + 2 * 2 * len(VARIANTS)
    return legs * (settings.rounds * (settings.leg_seconds + 1) + settings.warmup_seconds) + 150


async def run_telemetry(
    settings: BenchSettings, pinning: Pinning, choice: str, mode: str, out: Path, log: Log
) -> tuple[str, Path]:
    """The comparison; returns the markdown and the JSON path."""
    began = perf_counter()
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="llmesh-bench-telemetry-") as tmp:
        root = Path(tmp)
        session = http_session(0)
        upstream = sink = None
        meshes: dict[str, Mesh] = {}
        ports: dict[str, int] = {}
        metrics: dict[str, dict[str, float | None]] = {}
        try:
            chosen = await choose_upstream(choice, settings, pinning, root, session)
            upstream, upstream_meta = chosen
            sink = await start_sink(pinning, root)
            for variant in VARIANTS:
                log(f"telemetry: starting the mesh with telemetry {variant}")
                (root / variant).mkdir()
                env = variant_env(variant, sink.endpoint)
                launcher = MeshLauncher(root / variant, upstream.base_url, pinning, env)
                meshes[variant] = await launcher.start(1)
                ports[variant] = int(env.get("LLMESH_ORCHESTRATOR_METRICS_PORT", 0))
            groups = {f"mesh_{v}": m.pids for v, m in meshes.items()}
            groups |= {"upstream": [upstream.service.pid], "sink": [sink.service.pid]}
            legs, calls = await _measure(meshes, session, upstream.base_url, settings, groups, log)
            for v, m in meshes.items():
                url = f"http://127.0.0.1:{ports[v]}/metrics"
                counted = await _scrape(session, url, "llmesh_calls_total") if ports[v] else None
                metrics[v] = {
                    "calls": counted,
                    "requests": await _scrape(
                        session,
                        f"{m.gateway_url}/metrics",
                        "http_server_request_duration_seconds_count",
                        http_route="/v1/chat/completions",
                    ),
                }
        finally:
            for mesh in meshes.values():
                mesh.stop()  # the traced one flushes its last spans as it exits
            spans = sink.stop() if sink is not None else {}
            await session.close()
            if upstream is not None:
                upstream.stop()
        exports = {
            v: Exports.of(v, calls[v], spans, metrics[v], _call_log_records(root / v))
            for v in VARIANTS
        }
    found = figures(legs["c1"], legs["hi"])
    targets = judge(found, exports, settings.high_concurrency)
    meta = {
        "mode": mode,
        "machine": machine,
        "pinning": pinning.note,
        "upstream": upstream_meta,
        "settings": asdict(settings),
        "duration_s": round(perf_counter() - began, 1),
    }
    direct = compare(legs["c1"], f"{GRPC}_{OFF}", p50(_latency)).direct
    table = telemetry_markdown(meta, direct, found, targets, exports, settings.high_concurrency)
    payload = {
        "meta": meta,
        "direct_c1_p50_ms": direct,
        "figures": {k: {v: asdict(f) for v, f in fs.items()} for k, fs in found.items()},
        "targets": [asdict(t) for t in targets],
        "exports": {v: asdict(e) for v, e in exports.items()},
        "spans": spans,
        "workloads": {
            key: {p: [leg.summary() for leg in runs] for p, runs in paths.items()}
            for key, paths in legs.items()
        },
        "table": table,
    }
    return table, write_json(out, payload, prefix="telemetry-")
