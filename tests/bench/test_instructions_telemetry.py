"""`bench.instructions_telemetry`: the calls' own instructions, the idle rate taken off."""

from __future__ import annotations

import pytest

from bench.instructions_telemetry import Counted, VariantCount, _table


def test_the_idle_rate_over_the_calls_time_is_taken_off() -> None:
    # 200 calls in 10 s counted 600M; idle, the server ran 2M a second: 20M of the 600M
    counted = Counted(200, 600_000_000, 10.0, 40_000_000, 20.0)
    assert counted.idle_rate == 2_000_000
    assert counted.raw == 3_000_000
    assert counted.per_call == pytest.approx(2_900_000)


def test_a_slower_run_of_the_same_calls_counts_the_same() -> None:
    fast = Counted(200, 500_000_000 + 2_000_000 * 8, 8.0, 20_000_000, 10.0)
    slow = Counted(200, 500_000_000 + 2_000_000 * 30, 30.0, 20_000_000, 10.0)
    assert fast.raw != slow.raw
    assert fast.per_call == pytest.approx(slow.per_call) == pytest.approx(2_500_000)


def test_the_table_shows_net_and_raw_figures_against_off() -> None:
    off = VariantCount(
        "off", Counted(200, 500_000_000, 10.0, 0, 10.0), Counted(200, 160_000_000, 5.0, 0, 10.0)
    )
    traced = VariantCount(
        "tracing",
        Counted(200, 560_000_000, 10.0, 10_000_000, 10.0),
        Counted(200, 200_000_000, 5.0, 10_000_000, 10.0),
    )
    table = _table([off, traced])
    assert "| tracing | 2,750,000 | +250,000 | 975,000 | +175,000 |" in table
    assert "| tracing | 2,800,000 | 1,000,000 | 10.0 | 1,000,000 | 1,000,000 | 5.0 |" in table
