"""The fuzz tests run under one bounded, deterministic Hypothesis profile
(`tests.support.fuzz`: ``LLMESH_FUZZ_EXAMPLES`` and ``LLMESH_FUZZ_RANDOM`` widen it)."""

from __future__ import annotations

from tests.support.fuzz import load_profile

load_profile()
