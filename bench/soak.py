"""``make soak``: a steady load through llmesh for minutes, watching resident memory.

Three quarters of the callers stream replies over gRPC, a quarter make non-streamed calls
through the gateway's OpenAI API, all against the fast upstream. RSS is sampled when llmesh
is idle after start, after a warm-up under load (the baseline), every interval, and at the
end of the load; growth is measured from the baseline, so one-time allocations (connection
pools, caches filling up) do not count as a leak.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from bench.clients import ChatPath, grpc_channel, http_session
from bench.mesh import Mesh, MeshLauncher
from bench.report import write_json
from bench.settings import BenchSettings, SoakSettings
from bench.system import Pinning, machine_info
from bench.upstream import FAST_MODEL, start_upstream
from bench.workloads import Log, PathFactory


@dataclass
class _Counts:
    streams: int = 0
    calls: int = 0
    tokens: int = 0
    errors: int = 0
    first_error: str = ""


async def _load(paths: list[tuple[ChatPath, bool]], deadline: float, counts: _Counts) -> None:
    def count(_: float, tokens: int) -> None:
        counts.tokens += tokens

    async def worker(path: ChatPath, stream: bool) -> None:
        while perf_counter() < deadline:
            try:
                if stream:
                    await path.stream(count)
                    counts.streams += 1
                else:
                    await path.unary()
                    counts.calls += 1
            except Exception as exc:  # counted and reported
                counts.errors += 1
                counts.first_error = counts.first_error or f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.01)

    tasks = [asyncio.ensure_future(worker(p, s)) for p, s in paths]
    try:
        await asyncio.wait(tasks, timeout=max(deadline - perf_counter(), 0) + 5)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _sample(label: str, t0: float, mesh: Mesh, counts: _Counts) -> dict[str, Any]:
    rss = mesh.rss()
    return {
        "at": label,
        "t_s": round(perf_counter() - t0, 1),
        "orchestrator_mib": rss["orchestrator"],
        "gateway_mib": rss["gateway"],
        "streams": counts.streams,
        "calls": counts.calls,
        "errors": counts.errors,
    }


def _growth(samples: list[dict[str, Any]], name: str) -> float | None:
    base = next((s[name] for s in samples if s["at"] == "baseline"), None)
    end = next((s[name] for s in samples if s["at"] == "end"), None)
    return None if not base or end is None else (end - base) / base * 100


def _table(soak: SoakSettings, samples: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    machine = meta["machine"]
    lines = [
        f"llmesh soak, {soak.seconds:.0f} s at c={soak.concurrency}, {machine['date']}",
        f"machine: {machine['cpu_model']}, {machine['cores']} cores, Python {machine['python']}",
        f"placement: {meta['pinning']}",
        "",
        "| sample | t (s) | orchestrator RSS (MiB) | gateway RSS (MiB) "
        "| streams | calls | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in samples:
        o, g = s["orchestrator_mib"], s["gateway_mib"]
        lines.append(
            f"| {s['at']} | {s['t_s']} | {o if o is None else f'{o:.1f}'} | "
            f"{g if g is None else f'{g:.1f}'} | {s['streams']} | {s['calls']} | {s['errors']} |"
        )
    lines.append("")
    for name in ("orchestrator", "gateway"):
        growth = meta["growth_pct"][name]
        if growth is None:
            lines.append(f"{name} RSS growth from baseline to end: n/a")
            continue
        met = "met" if growth < soak.max_growth_pct else "**not met**"
        lines.append(
            f"{name} RSS growth from baseline to end: {growth:+.2f} % "
            f"(target < {soak.max_growth_pct:.0f} %: {met})"
        )
    return "\n".join(lines)


async def run_soak(
    soak: SoakSettings, settings: BenchSettings, pinning: Pinning, out: Path, log: Log
) -> tuple[str, Path]:
    """Run the soak; returns the markdown report and the JSON path."""
    machine = machine_info()
    samples: list[dict[str, Any]] = []
    counts = _Counts()
    with tempfile.TemporaryDirectory(prefix="llmesh-soak-") as tmp:
        upstream = await start_upstream("fast", settings, pinning, Path(tmp))
        mesh: Mesh | None = None
        session = http_session(0)
        try:
            mesh = await MeshLauncher(Path(tmp), upstream.base_url, pinning).start(1)
            await asyncio.sleep(0.5)
            channel = grpc_channel(mesh.orchestrator_address)
            f = PathFactory(
                session, channel, upstream.base_url, mesh.gateway_url, settings.request_timeout
            )
            gateway_callers = max(soak.concurrency // 4, 1)
            paths = [(f.grpc(FAST_MODEL, soak.prompt_tokens), True)] * (
                soak.concurrency - gateway_callers
            ) + [(f.gateway(FAST_MODEL, 10), False)] * gateway_callers
            t0 = perf_counter()
            samples.append(_sample("idle", t0, mesh, counts))
            log(f"soak: {soak.seconds:.0f} s at c={soak.concurrency}")
            load = asyncio.ensure_future(_load(paths, t0 + soak.seconds, counts))
            await asyncio.sleep(soak.warmup)
            samples.append(_sample("baseline", t0, mesh, counts))
            next_at = soak.warmup + soak.interval
            while next_at < soak.seconds - soak.interval / 4:
                await asyncio.sleep(max(t0 + next_at - perf_counter(), 0))
                samples.append(_sample("interval", t0, mesh, counts))
                log(f"soak: {samples[-1]}")
                next_at += soak.interval
            await asyncio.sleep(max(t0 + soak.seconds - 0.05 - perf_counter(), 0))
            samples.append(_sample("end", t0, mesh, counts))
            await load
            await channel.close()
            await asyncio.sleep(1.0)
            samples.append(_sample("after", t0, mesh, counts))
        finally:
            await session.close()
            if mesh is not None:
                mesh.stop()
            upstream.stop()
    meta: dict[str, Any] = {
        "mode": "soak",
        "machine": machine,
        "pinning": pinning.note,
        "soak": asdict(soak),
        "growth_pct": {n: _growth(samples, f"{n}_mib") for n in ("orchestrator", "gateway")},
        "tokens": counts.tokens,
        "first_error": counts.first_error,
    }
    table = _table(soak, samples, meta)
    path = write_json(out, {"meta": meta, "samples": samples, "table": table}, prefix="soak-")
    return table, path
