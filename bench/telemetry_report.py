"""The telemetry comparison's results: figures per mesh, targets, exports, as markdown.

Targets (issue 14): with metrics only, the existing goals of the suite still hold (the same
`bench.report.SPECS` checks as `make bench`: added latency against direct at c=1 and
throughput at the high concurrency); metrics plus 100 %-sampled tracing costs at most
`TRACING_MAX_ADDED_MS` of p50 latency per call and keeps at least `TRACING_MIN_RATIO` of the
throughput, both against the mesh with telemetry off in the same rounds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.report import SPECS, Metric
from bench.workloads import GATEWAY, GRPC

VARIANTS = ("off", "metrics", "tracing")
"""The three meshes: telemetry off (call log too), metrics only, metrics and tracing."""
LABELS = {"off": "off", "metrics": "metrics only", "tracing": "metrics + tracing"}
KINDS = (GRPC, GATEWAY)
"""The two ways in: the orchestrator's gRPC ``Chat`` and the gateway's ``/v1``."""
KIND_LABELS = {GRPC: "gRPC `Chat`", GATEWAY: "gateway `/v1`"}
TRACING_MAX_ADDED_MS = 0.15
"""Tracing's allowance of added p50 latency per call, against telemetry off."""
TRACING_MIN_RATIO = 0.95
"""Tracing's allowance of throughput at the high concurrency, as a ratio to telemetry off."""
ORCHESTRATOR, GATEWAY_SERVICE = "llmesh-orchestrator", "llmesh-gateway"
SPANS_PER_CALL: dict[str, dict[str, int]] = {
    GRPC: {ORCHESTRATOR: 2},
    GATEWAY: {ORCHESTRATOR: 2, GATEWAY_SERVICE: 2},
}
"""What one traced unary call exports: the orchestrator's server span (which the call takes
as its own) and attempt span, and for the gateway's calls its HTTP server span and gRPC
client span too."""


@dataclass(frozen=True)
class Figures:
    """One way in (gRPC or gateway) to one mesh, as medians over rounds."""

    c1_p50_ms: float | None
    """Latency p50 at c=1."""
    c1_added_ms: float | None
    """The same, minus the direct path's in the same round."""
    c1_vs_off_ms: float | None
    """The same, minus the mesh with telemetry off's in the same round."""
    hi_per_s: float | None
    """Calls/s at the high concurrency."""
    hi_vs_off: float | None
    """The same, over the mesh with telemetry off's in the same round."""
    hi_cpu_us: float | None
    """CPU of the mesh's two processes per call at the high concurrency, in microseconds."""
    hi_cpu_vs_off_us: float | None
    """The same, minus the mesh with telemetry off's in the same round."""
    c1_vs_metrics_ms: float | None = None
    """Latency p50 at c=1 minus the metrics-only mesh's in the same round: tracing's own."""
    hi_vs_metrics: float | None = None
    """Calls/s at the high concurrency over the metrics-only mesh's in the same round."""
    hi_cpu_vs_metrics_us: float | None = None
    """CPU per call at the high concurrency minus the metrics-only mesh's in the same round."""


@dataclass(frozen=True)
class Exports:
    """What one mesh exported, against what the calls made to it should have left."""

    variant: str
    calls: int
    """Calls started on the mesh (warm-ups included), both ways in."""
    spans: dict[str, int] = field(default_factory=dict)
    """Spans the receiver got, by service (the traced mesh only)."""
    spans_expected: dict[str, int] = field(default_factory=dict)
    metrics_calls: float | None = None
    """``llmesh_calls_total`` on the orchestrator's ``/metrics`` (None: no metrics served)."""
    metrics_requests: float | None = None
    """The gateway's ``/v1/chat/completions`` requests on its ``/metrics``."""
    call_log: int = 0
    """Call-log records the orchestrator wrote."""
    failed: bool = False
    """The mesh exported nothing it should have (so its figures do not count)."""
    problems: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        variant: str,
        calls: Mapping[str, int],
        sink: Mapping[str, Any],
        metrics: Mapping[str, float | None],
        call_log: int,
    ) -> Exports:
        """Check one mesh's exports; the sink's counts are the traced mesh's spans."""
        total = sum(calls.values())
        counted, requests = metrics.get("calls"), metrics.get("requests")
        problems: list[str] = []
        failed = False
        expected: dict[str, int] = {}
        spans: dict[str, int] = {}
        if variant == "off":
            if counted is not None or requests is not None:
                problems.append("metrics are served")
            if call_log:
                problems.append(f"{call_log} call-log records")
        else:
            failed = not counted
            for name, got, want in (
                ("metrics: calls", counted or 0, total),
                ("metrics: gateway requests", requests or 0, calls.get(GATEWAY, 0)),
                ("call log", call_log, total),
            ):
                if got < want:
                    problems.append(f"{name}: {got:,.0f} of {want:,}")
        if variant == "tracing":
            received = dict(sink.get("services") or {})
            for kind, n in calls.items():
                for service, per_call in SPANS_PER_CALL[kind].items():
                    expected[service] = expected.get(service, 0) + per_call * n
            spans = {service: int(received.get(service, 0)) for service in expected}
            failed = failed or not all(spans.values())
            problems += [
                f"{service}: {spans[service]:,} spans of {want:,}"
                for service, want in expected.items()
                if spans[service] < want
            ]
        return cls(
            variant, total, spans, expected, counted, requests, call_log, failed, tuple(problems)
        )


@dataclass(frozen=True)
class Target:
    """One target, what was measured, whether it was met (None: nothing measured)."""

    label: str
    measured: str
    met: bool | None


def _ms(value: float | None, sign: bool = True) -> str:
    return "n/a" if value is None else (f"{value:+.2f} ms" if sign else f"{value:.2f} ms")


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}x"


def _spec(key: str, m: Metric) -> bool | None:
    check = SPECS[key].check
    return None if check is None else check(m)


def judge(
    found: Mapping[str, Mapping[str, Figures]],
    exports: Mapping[str, Exports],
    concurrency: int,
) -> list[Target]:
    """Every target of issue 14, met or not; a mesh that exported nothing meets none."""
    out = _judge(found, concurrency)
    for i, t in enumerate(out):
        variant = "tracing" if t.label.startswith("metrics + tracing") else "metrics"
        if exports[variant].failed:
            out[i] = Target(t.label, f"{t.measured} (failed: exported nothing)", False)
    return out


def _judge(found: Mapping[str, Mapping[str, Figures]], concurrency: int) -> list[Target]:
    out: list[Target] = []
    for kind, key in ((GRPC, "nonstream_c1_grpc_p50_ms"), (GATEWAY, "nonstream_c1_gateway_p50_ms")):
        m, off = found[kind]["metrics"], found[kind]["off"]
        met = _spec(key, Metric(key, "", "ms", added=m.c1_added_ms))
        out.append(
            Target(
                f"metrics only, {KIND_LABELS[kind]} c=1: p50 added to direct "
                f"{SPECS[key].target} (the existing goal)",
                f"{_ms(m.c1_added_ms)} (off: {_ms(off.c1_added_ms)})",
                met,
            )
        )
    key = "nonstream_hi_rps"
    m, off = found[GRPC]["metrics"], found[GRPC]["off"]
    out.append(
        Target(
            f"metrics only, {KIND_LABELS[GRPC]} c={concurrency}: {SPECS[key].target} "
            "(the existing goal)",
            f"{_rate(m.hi_per_s)} (off: {_rate(off.hi_per_s)})",
            _spec(key, Metric(key, "", "req/s", llmesh=m.hi_per_s)),
        )
    )
    for kind in KINDS:
        t = found[kind]["tracing"]
        added = t.c1_vs_off_ms
        out.append(
            Target(
                f"metrics + tracing, {KIND_LABELS[kind]} c=1: p50 ≤ +{TRACING_MAX_ADDED_MS} ms "
                "against off",
                _ms(added),
                None if added is None else added <= TRACING_MAX_ADDED_MS,
            )
        )
        r = t.hi_vs_off
        out.append(
            Target(
                f"metrics + tracing, {KIND_LABELS[kind]} c={concurrency}: calls/s ≥ "
                f"{TRACING_MIN_RATIO}x off",
                _x(r),
                None if r is None else r >= TRACING_MIN_RATIO,
            )
        )
    return out


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}/s"


def _row(label: str, cells: Sequence[str]) -> str:
    return f"| {label} | " + " | ".join(cells) + " |"


def figures_markdown(found: Mapping[str, Mapping[str, Figures]], concurrency: int) -> list[str]:
    """The figures table: each mesh, metrics and tracing against off, and tracing against
    metrics only (tracing's own cost)."""
    lines = [
        "| way in, figure | off | metrics only | metrics + tracing | metrics vs off "
        "| tracing vs off | tracing vs metrics only |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in KINDS:
        f = found[kind]
        label = KIND_LABELS[kind]
        lines.append(
            _row(
                f"{label} c=1: latency p50 (added to direct)",
                [f"{_ms(f[v].c1_p50_ms, False)} ({_ms(f[v].c1_added_ms)})" for v in VARIANTS]
                + [_ms(f[v].c1_vs_off_ms) for v in VARIANTS[1:]]
                + [_ms(f[VARIANTS[2]].c1_vs_metrics_ms)],
            )
        )
        lines.append(
            _row(
                f"{label} c={concurrency}: calls/s",
                [_rate(f[v].hi_per_s) for v in VARIANTS]
                + [_x(f[v].hi_vs_off) for v in VARIANTS[1:]]
                + [_x(f[VARIANTS[2]].hi_vs_metrics)],
            )
        )
        lines.append(
            _row(
                f"{label} c={concurrency}: the mesh's CPU per call",
                [_us(f[v].hi_cpu_us, False) for v in VARIANTS]
                + [_us(f[v].hi_cpu_vs_off_us) for v in VARIANTS[1:]]
                + [_us(f[VARIANTS[2]].hi_cpu_vs_metrics_us)],
            )
        )
    return lines


def _us(value: float | None, sign: bool = True) -> str:
    return "n/a" if value is None else (f"{value:+,.0f} us" if sign else f"{value:,.0f} us")


def exports_markdown(exports: Mapping[str, Exports]) -> list[str]:
    """What each mesh exported, and whether that is what its calls owe."""
    lines = [
        "| mesh | calls | spans received (orchestrator / gateway) | spans owed "
        "| metrics: calls / gateway requests | call-log records | check |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for v, e in exports.items():
        spans = (
            " / ".join(f"{e.spans.get(s, 0):,}" for s in (ORCHESTRATOR, GATEWAY_SERVICE))
            if e.spans_expected
            else "—"
        )
        owed = (
            " / ".join(f"{e.spans_expected.get(s, 0):,}" for s in (ORCHESTRATOR, GATEWAY_SERVICE))
            if e.spans_expected
            else "—"
        )
        counted = (
            "—"
            if e.metrics_calls is None
            else f"{e.metrics_calls:,.0f} / {e.metrics_requests or 0:,.0f}"
        )
        check = "**failed: exported nothing**" if e.failed else "ok"
        if e.problems:
            check += "; " + "; ".join(e.problems)
        lines.append(
            f"| {LABELS[v]} | {e.calls:,} | {spans} | {owed} | {counted} | {e.call_log:,} "
            f"| {check} |"
        )
    return lines


def telemetry_markdown(
    meta: Mapping[str, Any],
    direct_p50_ms: float | None,
    found: Mapping[str, Mapping[str, Figures]],
    targets: Sequence[Target],
    exports: Mapping[str, Exports],
    concurrency: int,
) -> str:
    """The header, the figures, the targets and the exports, as markdown."""
    machine, upstream, settings = meta["machine"], meta["upstream"], meta["settings"]
    lines = [
        f"llmesh telemetry benchmark, {meta['mode']} run, {machine['date']}",
        f"machine: {machine['cpu_model']}, {machine['cores']} cores, "
        f"Python {machine['python']}, {machine['os']}",
        f"placement: {meta['pinning']}; the span receiver on the load core",
        f"upstream: {upstream['description']}",
        f"rounds: {settings['rounds']} per workload, legs of {settings['leg_seconds']:g} s "
        "(each ratio and difference the median of the rounds' own)",
        f"direct to the upstream, c=1: latency p50 {_ms(direct_p50_ms, False)}",
        "",
        *figures_markdown(found, concurrency),
        "",
        "| target (issue 14) | measured | met? |",
        "|---|---:|:---:|",
        *(
            f"| {t.label} | {t.measured} | {({True: 'yes', False: '**no**', None: '—'})[t.met]} |"
            for t in targets
        ),
        "",
        *exports_markdown(exports),
    ]
    return "\n".join(lines)
