"""The one-process span-cost harnesses (orchestrator- and gateway-shaped) run their calls,
traced (spans encoded) and untraced."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("module", "noun"), [("bench.span_cost", "calls"), ("bench.gateway_span_cost", "requests")]
)
@pytest.mark.parametrize(("off", "encoded"), [(False, True), (True, False)])
def test_the_calls_run_and_only_traced_ones_export_spans(
    module: str, noun: str, off: bool, encoded: bool
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "--calls", "600", *(["--off"] if off else [])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    calls, sent = done.stdout.strip().split(", ")
    assert calls == f"{noun} 600"
    assert (int(sent.removeprefix("bytes sent ")) > 600 * 2 * 100) is encoded
    assert done.stderr == ""
