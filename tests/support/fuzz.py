"""Bounds of the fuzz tests (tests/fuzz): how many examples, and whether they are fixed.

``make test`` runs every property test for `DEFAULT_EXAMPLES` examples with derandomized
generation (the same examples every run, so CI never flakes on a new one), no example
database and no per-example deadline (the machine is shared; time is no property).
``LLMESH_FUZZ_EXAMPLES=N`` raises the bound, and ``LLMESH_FUZZ_RANDOM=1`` draws fresh
examples instead of the fixed ones, for a longer hunt by hand.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

DEFAULT_EXAMPLES = 100
"""Examples per property test in ``make test``."""

PROFILE = "llmesh-fuzz"


def examples(default: int = DEFAULT_EXAMPLES) -> int:
    """Examples per test: ``LLMESH_FUZZ_EXAMPLES`` when set, else `default`."""
    raw = os.environ.get("LLMESH_FUZZ_EXAMPLES", "").strip()
    return int(raw) if raw else default


def fresh() -> bool:
    """``LLMESH_FUZZ_RANDOM=1``: draw new examples rather than the fixed ones."""
    return os.environ.get("LLMESH_FUZZ_RANDOM", "") not in ("", "0")


def load_profile() -> None:
    """Register and load the fuzz tests' Hypothesis profile."""
    settings.register_profile(
        PROFILE,
        max_examples=examples(),
        derandomize=not fresh(),
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.load_profile(PROFILE)
