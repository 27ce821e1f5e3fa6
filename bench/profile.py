"""``python -m bench --profile``: where the orchestrator's time goes under load.

Runs one workload through llmesh while py-spy samples the orchestrator without pausing it:
``stream`` (100 tokens, the high concurrency; the default), ``nonstream`` (short replies,
the high concurrency) or ``paced`` (the paced upstream at ``--profile-concurrency`` streams,
256 unless given). It then summarizes the samples: the functions with the most samples on
top of the stack (self), the most on the stack at all (inclusive), and self samples by area
(gRPC, the HTTP client, the SDK, asyncio, llmesh's own code ...). With ``--profile-native``
py-spy also samples C frames (grpc core, uvloop, protobuf, the collector), pausing the
process for each sample, so rates while sampled are lower. The raw collapsed stacks are kept
next to the summary in ``bench/results/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.clients import grpc_channel, http_session
from bench.load import run_leg
from bench.mesh import MeshLauncher
from bench.procs import spawn
from bench.settings import BenchSettings
from bench.system import Pinning
from bench.upstream import FAST_MODEL, PACED_MODEL, start_upstream
from bench.workloads import Log, PathFactory

AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("C/Cython run by event-loop callbacks (cygrpc, _asyncio)", ("Handle._run (",)),
    ("C/Cython in background threads (gRPC's poller)", ("Thread.run (",)),
    ("gRPC (grpc.aio, cygrpc)", ("grpc/", "grpc_", ".pyx", "cygrpc")),
    ("protobuf", ("google/protobuf",)),
    ("openai SDK", ("openai/",)),
    ("pydantic", ("pydantic",)),
    ("HTTP client (aiohttp, httpx, httpcore)", ("aiohttp/", "httpx", "httpcore", "anyio", "h11")),
    ("asyncio / event loop", ("asyncio/", "uvloop", "selectors.py")),
    ("llmesh services", ("services/",)),
)
"""Areas of the code, recognised by a piece of the frame's file name, first match wins."""

_PLUMBING = ("<module>", "main (", "_serve (", "run (", "Runner.", "BaseEventLoop.", "Handle.")
"""Frames on nearly every stack (start-up and the event loop), left out of the inclusive table."""

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _parse(text: str) -> Iterable[tuple[list[str], int]]:
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield stack.split(";"), int(count)


def _name(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['func']} ({path})"


def _area(frame: str) -> str:
    for area, marks in AREAS:
        if any(m in frame for m in marks):
            return area
    return "other"


def summarize(collapsed: str, top: int = 15) -> str:
    """Self, inclusive and per-area tables of py-spy's collapsed (raw) stacks."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for frames, count in _parse(collapsed):
        total += count
        names = [_name(f) for f in frames]
        self_time[names[-1]] += count
        areas[_area(frames[-1])] += count
        for name in set(names):
            if not name.startswith(_PLUMBING):
                inclusive[name] += count
    if not total:
        return "no samples"

    def table(title: str, counts: Counter[str], n: int) -> list[str]:
        rows = [f"| {title} | samples | share |", "|---|---:|---:|"]
        rows += [f"| `{k}` | {v} | {v / total:.1%} |" for k, v in counts.most_common(n)]
        return rows

    lines = [f"{total} samples of the orchestrator's threads (idle excluded)", ""]
    lines += [*table("area (self)", areas, len(AREAS) + 1), ""]
    lines += [*table("function (self)", self_time, top), ""]
    lines += table("function (inclusive)", inclusive, top)
    return "\n".join(lines)


DEFAULT_PACED_STREAMS = 256


@dataclass(frozen=True)
class _Load:
    model: str
    words: int
    stream: bool
    concurrency: int
    stagger: float
    label: str


def _load(workload: str, settings: BenchSettings, concurrency: int | None) -> _Load:
    if workload == "nonstream":
        c = concurrency or settings.high_concurrency
        words = settings.nonstream_prompt_tokens
        return _Load(FAST_MODEL, words, False, c, 0.0, f"non-stream c={c}")
    if workload == "paced":
        c = concurrency or DEFAULT_PACED_STREAMS
        cycle = (settings.paced_ttft_ms + settings.paced_tokens * settings.paced_itl_ms) / 1000
        words = settings.paced_tokens
        return _Load(PACED_MODEL, words, True, c, cycle, f"{c} paced streams")
    c = concurrency or settings.high_concurrency
    words = settings.prompt_tokens
    return _Load(FAST_MODEL, words, True, c, 0.0, f"stream {words} tokens c={c}")


async def run_profile(
    seconds: float,
    upstream_kind: str,
    pinning: Pinning,
    out: Path,
    log: Log,
    *,
    workload: str = "stream",
    concurrency: int | None = None,
    native: bool = False,
) -> tuple[str, Path]:
    """Profile the orchestrator under one workload; returns the summary and its file."""
    py_spy, raw = _prepare(out)
    settings = BenchSettings()
    load = _load(workload, settings, concurrency)
    kind = "fast" if upstream_kind == "auto" else upstream_kind
    with tempfile.TemporaryDirectory(prefix="llmesh-profile-") as tmp:
        upstream = await start_upstream(kind, settings, pinning, Path(tmp))
        session = http_session(0)
        mesh = None
        try:
            mesh = await MeshLauncher(Path(tmp), upstream.base_url, pinning).start(1)
            channel = grpc_channel(mesh.orchestrator_address)
            f = PathFactory(
                session, channel, upstream.base_url, mesh.gateway_url, settings.request_timeout
            )
            path = f.grpc(load.model, load.words)
            c = load.concurrency
            await run_leg(path, stream=load.stream, concurrency=c, seconds=1.0)
            log(f"profiling the orchestrator for {seconds:.0f} s under {load.label}")
            spy = spawn(
                "py-spy",
                [
                    *(py_spy, "record", "--pid", str(mesh.orchestrator.pid), "--rate", "200"),
                    *("--duration", str(int(seconds)), "--format", "raw", "--gil"),
                    *(("--native",) if native else ("--nonblocking",)),
                    *("--output", str(raw)),
                ],
                pin=pinning.prefix(pinning.load_core),
                logs=Path(tmp),
            )
            leg = await run_leg(
                path,
                stream=load.stream,
                concurrency=c,
                seconds=seconds + 1,
                stagger=load.stagger,
                grace=0.0,
            )
            await asyncio.to_thread(_wait, spy.proc, 30.0)
            spy.stop()
            await channel.close()
        finally:
            await session.close()
            if mesh is not None:
                mesh.stop()
            upstream.stop()
    header = (
        f"orchestrator profile, {load.label} through gRPC, {kind} upstream, "
        f"{leg.rps:,.0f} replies/s and {leg.tokens_per_s:,.0f} tok/s while sampled; "
        f"{pinning.note}"
    )
    return _finish(header, raw)


def _prepare(out: Path) -> tuple[str, Path]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return py_spy, out / f"profile-{stamp}.collapsed.txt"


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)


def _finish(header: str, raw: Path) -> tuple[str, Path]:
    text = header + "\n\n" + summarize(raw.read_text() if raw.exists() else "")
    summary = raw.with_name(raw.name.replace(".collapsed.txt", ".md"))
    summary.write_text(text + "\n")
    return text, summary
