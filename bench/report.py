"""The results: each metric against the issue's target, as a markdown table and as JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.stats import median
from bench.workloads import Comparison


@dataclass(frozen=True)
class Spec:
    """How a metric is shown and judged."""

    label: str
    """The row's name; ``{c}`` stands for the high concurrency."""
    unit: str
    shows: str
    """The third column: ``added`` (llmesh minus direct), ``ratio`` (llmesh / direct) or
    ``value`` (llmesh only)."""
    target: str = "—"
    """The target from issue #5, as written there."""
    check: Callable[[Metric], bool | None] | None = None
    """Whether the metric meets the target; None when there is no target."""


@dataclass
class Metric:
    """One row of the report."""

    key: str
    label: str
    unit: str
    direct: float | None = None
    llmesh: float | None = None
    added: float | None = None
    ratio: float | None = None
    shows: str = "value"
    target: str = "—"
    met: bool | None = None
    rounds: list[dict[str, float | None]] = field(default_factory=list)


def _at_most(attr: str, limit: float) -> Callable[[Metric], bool | None]:
    def check(m: Metric) -> bool | None:
        value = getattr(m, attr)
        return None if value is None else bool(value <= limit)

    return check


def _at_least(attr: str, limit: float) -> Callable[[Metric], bool | None]:
    def check(m: Metric) -> bool | None:
        value = getattr(m, attr)
        return None if value is None else bool(value >= limit)

    return check


SPECS: dict[str, Spec] = {
    "nonstream_c1_grpc_p50_ms": Spec(
        "non-stream c=1, gRPC: latency p50", "ms", "added", "≤ +1.0 ms", _at_most("added", 1.0)
    ),
    "nonstream_c1_grpc_p99_ms": Spec(
        "non-stream c=1, gRPC: latency p99", "ms", "added", "≤ +3 ms", _at_most("added", 3.0)
    ),
    "nonstream_c1_gateway_p50_ms": Spec(
        "non-stream c=1, gateway OpenAI API: latency p50",
        "ms",
        "added",
        "≤ +1.5 ms",
        _at_most("added", 1.5),
    ),
    "nonstream_c1_gateway_p99_ms": Spec(
        "non-stream c=1, gateway OpenAI API: latency p99",
        "ms",
        "added",
        "≤ +4 ms",
        _at_most("added", 4.0),
    ),
    "nonstream_c1_bare_p50_ms": Spec(
        "non-stream c=1, reference: a bare grpc.aio relay over aiohttp (bench/bare_relay.py): "
        "latency p50",
        "ms",
        "added",
    ),
    "nonstream_c1_bare_gateway_p50_ms": Spec(
        "non-stream c=1, reference: a bare ASGI app under uvicorn calling llmesh's orchestrator "
        "over grpc.aio (bench/bare_gateway.py): latency p50",
        "ms",
        "added",
    ),
    "nonstream_c1_direct_http_p50_ms": Spec(
        "non-stream c=1, direct HTTP path (the orchestrator's own /v1): latency p50",
        "ms",
        "added",
        "≤ +0.8 ms",
        _at_most("added", 0.8),
    ),
    "nonstream_hi_rps": Spec(
        "non-stream c={c}, gRPC: throughput",
        "req/s",
        "ratio",
        "≥ 1,000 req/s",
        _at_least("llmesh", 1000),
    ),
    "nonstream_hi_direct_http_rps": Spec(
        "non-stream c={c}, direct HTTP path: throughput",
        "req/s",
        "ratio",
        "≥ 1,500 req/s",
        _at_least("llmesh", 1500),
    ),
    "stream_c1_ttft_ms": Spec(
        "stream 100 tok c=1: time to first token p50",
        "ms",
        "added",
        "≤ +1.5 ms",
        _at_most("added", 1.5),
    ),
    "stream_c1_tokens_per_s": Spec("stream 100 tok c=1: tokens/s", "tok/s", "ratio"),
    "stream_hi_ttft_ms": Spec("stream 100 tok c={c}: time to first token p50", "ms", "added"),
    "stream_hi_tokens_per_s": Spec(
        "stream 100 tok c={c}: tokens/s relayed",
        "tok/s",
        "ratio",
        "≥ 30,000 tok/s",
        _at_least("llmesh", 30000),
    ),
    "stream_hi_direct_http_tokens_per_s": Spec(
        "stream 100 tok c={c}, direct HTTP path: tokens/s relayed",
        "tok/s",
        "ratio",
        "≥ 100,000 tok/s",
        _at_least("llmesh", 100000),
    ),
    "paced_hi_tokens_per_s": Spec(
        "paced c={c}: delivered tokens/s",
        "tok/s",
        "ratio",
        "≥ 0.99 x direct",
        _at_least("ratio", 0.99),
    ),
    "paced_hi_itl_p99_ms": Spec("paced c={c}: inter-token p99", "ms", "added"),
    "paced_max_concurrency": Spec(
        "paced: most streams held (added ITL p99 ≤ 20 ms, ratio ≥ 0.99)",
        "streams",
        "value",
        "≥ 300",
        _at_least("llmesh", 300),
    ),
    "paced_max_tokens_per_s": Spec(
        "paced at the most streams held: delivered tokens/s",
        "tok/s",
        "ratio",
        "≥ 0.99 x direct",
        _at_least("ratio", 0.99),
    ),
    "paced_max_itl_p99_ms": Spec(
        "paced at the most streams held: inter-token p99",
        "ms",
        "added",
        "≤ +20 ms",
        _at_most("added", 20.0),
    ),
    "paced_bare_level": Spec(
        "paced, reference: streams where the bare relay ran (llmesh's first miss, or top level)",
        "streams",
        "value",
    ),
    "paced_bare_tokens_per_s": Spec(
        "paced, reference: the bare relay at that level: delivered tokens/s", "tok/s", "ratio"
    ),
    "paced_bare_itl_p99_ms": Spec(
        "paced, reference: the bare relay at that level: inter-token p99", "ms", "added"
    ),
    "paced_floor_tokens_per_s": Spec(
        "paced, reference: grpc.aio alone at that level (bench/grpc_floor.py: no upstream, "
        "no relay): delivered tokens/s",
        "tok/s",
        "ratio",
    ),
    "rss_orchestrator_start_mib": Spec("RSS orchestrator after start", "MiB", "value"),
    "rss_orchestrator_after_load_mib": Spec(
        "RSS orchestrator after load", "MiB", "value", "≤ 150 MiB", _at_most("llmesh", 150)
    ),
    "rss_gateway_start_mib": Spec("RSS gateway after start", "MiB", "value"),
    "rss_gateway_after_load_mib": Spec("RSS gateway after load", "MiB", "value"),
    "startup_orchestrator_s": Spec(
        "orchestrator start to SERVING (median of cold starts)",
        "s",
        "value",
        "≤ 2 s",
        _at_most("llmesh", 2.0),
    ),
    "startup_gateway_s": Spec("gateway start to healthy /healthz", "s", "value"),
}
"""Every metric of a suite run, in table order; the smoke test checks each key is in the JSON."""


def build_metrics(
    comparisons: Mapping[str, Comparison], values: Mapping[str, float | None], concurrency: int
) -> dict[str, Metric]:
    """Rows for every `SPECS` key from the comparisons and the single values."""
    out: dict[str, Metric] = {}
    for key, spec in SPECS.items():
        m = Metric(
            key, spec.label.format(c=concurrency), spec.unit, shows=spec.shows, target=spec.target
        )
        if key in comparisons:
            c = comparisons[key]
            m.direct, m.llmesh, m.added, m.ratio, m.rounds = (
                c.direct,
                c.llmesh,
                c.added,
                c.ratio,
                c.rounds,
            )
        else:
            m.llmesh = values.get(key)
        m.met = spec.check(m) if spec.check else None
        out[key] = m
    return out


def _num(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit in ("req/s", "tok/s", "streams"):
        return f"{value:,.0f}"
    if unit == "MiB":
        return f"{value:.1f}"
    return f"{value:.2f}"


def _third(m: Metric) -> str:
    if m.shows == "added":
        return "n/a" if m.added is None else f"{m.added:+.2f} {m.unit}"
    if m.shows == "ratio":
        return "n/a" if m.ratio is None else f"{m.ratio:.3f}x"
    return "—"


def markdown(meta: Mapping[str, Any], metrics: Mapping[str, Metric]) -> str:
    """The header lines and the table."""
    machine = meta["machine"]
    upstream = meta["upstream"]
    lines = [
        f"llmesh benchmark, {meta['mode']} run, {machine['date']}",
        f"machine: {machine['cpu_model']}, {machine['cores']} cores, "
        f"Python {machine['python']}, {machine['os']}",
        f"placement: {meta['pinning']}",
        f"upstream: {upstream['description']}",
        "",
        "| metric | direct | through llmesh | ratio / added | target (#5) | met? |",
        "|---|---:|---:|---:|---|:---:|",
    ]
    for m in metrics.values():
        direct = "—" if m.shows == "value" else _num(m.direct, m.unit)
        unit = "" if m.unit == "streams" else f" {m.unit}"
        llmesh = _num(m.llmesh, m.unit)
        llmesh = llmesh if llmesh == "n/a" else llmesh + unit
        direct = direct if direct in ("—", "n/a") else direct + unit
        met = {True: "yes", False: "**no**", None: "—"}[m.met]
        lines.append(f"| {m.label} | {direct} | {llmesh} | {_third(m)} | {m.target} | {met} |")
    return "\n".join(lines)


def write_json(directory: Path, payload: Mapping[str, Any], prefix: str = "") -> Path:
    """Write `payload` to ``directory/<prefix><timestamp>.json`` and return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = prefix + datetime.now().strftime("%Y%m%d-%H%M%S")
    path = directory / f"{stamp}.json"
    n = 1
    while path.exists():
        n += 1
        path = directory / f"{stamp}-{n}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def metrics_json(metrics: Mapping[str, Metric]) -> dict[str, dict[str, Any]]:
    """The metrics as plain data."""
    return {key: asdict(m) for key, m in metrics.items()}


def cpu_summary(workloads: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per workload and path, the median share of a core each process group used."""
    out: dict[str, dict[str, Any]] = {}
    for workload, paths in workloads.items():
        out[workload] = {}
        for path, legs in paths.items():
            service = path if path in ("bare", "floor", "bare_gateway") else "llmesh"
            out[workload][path] = {
                group: median(
                    [leg.get(f"cpu_{service if group == 'llmesh' else group}") for leg in legs]
                )
                for group in ("llmesh", "load", "upstream")
            }
    return out


def cpu_markdown(summary: Mapping[str, Mapping[str, Mapping[str, float | None]]]) -> str:
    """Where the CPU went: a second, smaller table (1.00 is one whole core)."""
    lines = [
        "CPU used during the measured windows, in cores (median over rounds). Core 0 runs",
        "llmesh, or on the reference paths the bare relay, grpc.aio alone, or the bare gateway",
        "with llmesh's orchestrator; core 1 runs the load generator and the upstream:",
        "",
        "| workload | path | llmesh / reference | load generator | upstream |",
        "|---|---|---:|---:|---:|",
    ]
    for workload, paths in summary.items():
        for path, groups in paths.items():
            cells = " | ".join(
                "n/a" if groups[g] is None else f"{groups[g]:.2f}"
                for g in ("llmesh", "load", "upstream")
            )
            lines.append(f"| {workload} | {path} | {cells} |")
    return "\n".join(lines)
