"""The benchmark suite's smoke run: it completes and reports every metric (never timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.embeddings_remote import ROWS
from bench.report import SPECS
from bench.telemetry_report import VARIANTS

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], out: Path, env: dict[str, str] | None = None) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    files = sorted(out.glob("*.json"))
    assert len(files) == 1
    assert str(files[0]) in done.stdout
    data: dict[str, object] = json.loads(files[0].read_text())
    return data


@pytest.mark.timeout(110)
def test_smoke_run_reports_every_metric(tmp_path: Path) -> None:
    data = _run(["--smoke"], tmp_path)
    metrics = data["metrics"]
    assert isinstance(metrics, dict)
    assert set(metrics) == set(SPECS)
    for key, metric in metrics.items():
        assert {"direct", "llmesh", "added", "ratio", "target", "met"} <= set(metric), key
    meta = data["meta"]
    assert isinstance(meta, dict)
    assert {"cpu_model", "cores", "python", "date"} <= set(meta["machine"])
    upstream = meta["upstream"]
    assert upstream["kind"] in {"fast", "emulator"}
    assert upstream["ceilings"][upstream["kind"]]["rps"] > 0
    through_llmesh = (
        "nonstream_c1_grpc_p50_ms",
        "nonstream_c1_gateway_p50_ms",
        "stream_hi_ttft_ms",
        "nonstream_c1_direct_http_p50_ms",
        "nonstream_hi_direct_http_rps",
        "stream_hi_direct_http_tokens_per_s",
    )
    for key in through_llmesh:
        assert metrics[key]["llmesh"] is not None, key  # the calls went through llmesh
    references = (
        "nonstream_c1_bare_p50_ms",
        "nonstream_c1_bare_gateway_p50_ms",
        "paced_bare_tokens_per_s",
        "paced_floor_tokens_per_s",
    )
    for key in references:
        assert metrics[key]["llmesh"] is not None, key  # the references ran
    assert "| metric |" in str(data["table"])


@pytest.mark.timeout(60)
def test_soak_run_samples_memory(tmp_path: Path) -> None:
    data = _run(["--soak"], tmp_path, {"BENCH_SOAK_SECONDS": "3", "BENCH_SOAK_INTERVAL": "1"})
    samples = data["samples"]
    assert isinstance(samples, list)
    assert [s["at"] for s in samples][:2] == ["idle", "baseline"]
    assert samples[-2]["at"] == "end"
    assert all(s["orchestrator_mib"] for s in samples)
    meta = data["meta"]
    assert isinstance(meta, dict)
    assert set(meta["growth_pct"]) == {"orchestrator", "gateway"}


@pytest.mark.timeout(60)
def test_embeddings_run_reports_throughput_and_memory(tmp_path: Path) -> None:
    args = ["--embeddings", "--embeddings-seconds", "0.2", "--embeddings-rounds", "1"]
    data = _run(args, tmp_path)
    results = data["results"]
    assert isinstance(results, dict)
    assert results["dimensions"] == 256
    for key in ("texts_per_s_batch_1", "texts_per_s_batch_32", "texts_per_s_client_32_concurrent"):
        assert results[key] > 0, key
    assert results["rss_mib_after_load"] > 0
    assert results["client_model_calls"] > 0
    assert "| texts_per_s_batch_32 |" in str(data["table"])
    remote = data["remote"]
    assert isinstance(remote, dict)
    assert set(remote["comparisons"]) == set(ROWS)
    for key, comparison in remote["comparisons"].items():
        assert comparison["direct"] is not None, key
        assert comparison["llmesh"] is not None, key  # the calls went through llmesh
    for paths in remote["workloads"].values():
        assert all(leg["errors"] == 0 for legs in paths.values() for leg in legs), paths
    assert "| c=32, gateway `/v1/embeddings`: embeddings/s |" in str(data["table"])


@pytest.mark.timeout(110)
def test_telemetry_run_reports_three_meshes_and_their_exports(tmp_path: Path) -> None:
    data = _run(["--telemetry", "--smoke", "--rounds", "2", "--leg-seconds", "0.2"], tmp_path)
    meta = data["meta"]
    assert isinstance(meta, dict)
    assert (meta["settings"]["rounds"], meta["settings"]["leg_seconds"]) == (2, 0.2)
    assert "rounds: 2 per workload, legs of 0.2 s" in str(data["table"])
    figures = data["figures"]
    assert isinstance(figures, dict)
    assert set(figures) == {"grpc", "gateway"}
    for kind, by_variant in figures.items():
        assert set(by_variant) == set(VARIANTS), kind
        for variant, f in by_variant.items():
            assert f["hi_per_s"] is not None, (kind, variant)  # the calls went through
        # tracing's own cost: the traced mesh against the metrics-only mesh, round by round
        assert by_variant["tracing"]["hi_vs_metrics"] is not None, kind
        assert by_variant["metrics"]["hi_vs_metrics"] is None, kind
    workloads = data["workloads"]
    assert isinstance(workloads, dict)
    for paths in workloads.values():
        assert all(leg["errors"] == 0 for legs in paths.values() for leg in legs), paths
        assert all(len(legs) == 2 for legs in paths.values()), paths  # --rounds 2
    exports = data["exports"]
    assert isinstance(exports, dict)
    assert set(exports) == set(VARIANTS)
    assert not any(e["failed"] for e in exports.values()), exports
    traced = exports["tracing"]
    # the spans arrived: every service exported at least what the calls made to it owe
    assert set(traced["spans_expected"]) == {"llmesh-orchestrator", "llmesh-gateway"}
    for service, owed in traced["spans_expected"].items():
        assert owed > 0
        assert traced["spans"][service] >= owed, service
    assert exports["metrics"]["metrics_calls"] >= exports["metrics"]["calls"] > 0
    assert exports["metrics"]["call_log"] >= exports["metrics"]["calls"]
    assert exports["off"]["metrics_calls"] is None  # telemetry off: no /metrics at all
    assert exports["off"]["call_log"] == 0
    assert exports["off"]["spans"] == {}
    targets = data["targets"]
    assert isinstance(targets, list)
    assert len(targets) == 7
    assert "| metrics + tracing |" in str(data["table"])
    assert "| tracing vs metrics only |" in str(data["table"])
