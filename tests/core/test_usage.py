"""Usage: the one usage adder, its JSON shape, and the call statuses."""

from __future__ import annotations

from llmesh.services.core import CallStatus, Usage


def test_add_sums_every_count_and_keeps_the_estimated_mark() -> None:
    total = Usage()
    total.add(Usage(input_tokens=10, output_tokens=5, reasoning_tokens=2))
    total.add(None)
    total.add(Usage(input_tokens=1, cache_read_tokens=7, cache_write_tokens=3, estimated=True))
    assert total == Usage(11, 5, 7, 3, 2, estimated=True)


def test_to_json_names_every_count() -> None:
    assert Usage(1, 2, 3, 4, 5, estimated=True).to_json() == {
        "input_tokens": 1,
        "output_tokens": 2,
        "cache_read_tokens": 3,
        "cache_write_tokens": 4,
        "reasoning_tokens": 5,
        "estimated": True,
    }


def test_call_statuses_are_the_ledger_strings() -> None:
    assert [s.value for s in CallStatus] == ["ok", "error", "cancelled", "interrupted"]
