"""Which version a call gets: latest, weighted, sticky per user, pinned."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.templates import parse_ref, pick_version, sticky_point


def test_no_weights_means_the_latest() -> None:
    assert pick_version(7, []) == 7
    assert pick_version(7, [(1, 0.0)]) == 7


def test_weights_split_calls_in_proportion() -> None:
    rng = random.Random(1234)
    counts = Counter(pick_version(3, [(1, 1.0), (2, 3.0)], rng=rng) for _ in range(20_000))
    assert set(counts) == {1, 2}
    assert 0.23 < counts[1] / 20_000 < 0.27


def test_sticky_points_are_deterministic_and_spread() -> None:
    assert sticky_point("t", "acme", "alice") == sticky_point("t", "acme", "alice")
    assert sticky_point("t", "acme", "alice") != sticky_point("t", "other", "alice")
    weights = [(1, 1.0), (2, 1.0)]
    picks = [pick_version(2, weights, sticky_point("t", "acme", f"user-{i}")) for i in range(2000)]
    share = picks.count(1) / len(picks)
    assert 0.45 < share < 0.55
    again = [pick_version(2, weights, sticky_point("t", "acme", f"user-{i}")) for i in range(2000)]
    assert again == picks


def test_refs() -> None:
    assert parse_ref("support").version is None
    assert parse_ref("support@3").version == 3
    for bad in ("support@0", "support@x", "Support", "", "a@1@2"):
        with pytest.raises(LlmeshError) as caught:
            parse_ref(bad)
        assert caught.value.reason is Reason.INVALID_REQUEST
