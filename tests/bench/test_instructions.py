"""`bench.instructions`: reading callgrind's dumps and the table (the run needs valgrind)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.instructions import Count, Metered, _table, _total


def test_total_reads_the_dump_of_the_part_asked_for(tmp_path: Path) -> None:
    (tmp_path / "callgrind.llmesh.42.1").write_text("version: 1\ncmd: x\nsummary: 1200\n")
    (tmp_path / "callgrind.llmesh.42.2").write_text("events: Ir\ntotals: 3400\n")
    assert _total(tmp_path, "llmesh", 42, 1) == 1200
    assert _total(tmp_path, "llmesh", 42, 2) == 3400


def test_total_refuses_a_dump_without_totals(tmp_path: Path) -> None:
    (tmp_path / "callgrind.bare.7.1").write_text("events: Ir\n")
    with pytest.raises(RuntimeError, match="no totals"):
        _total(tmp_path, "bare", 7, 1)


def test_table_shows_both_servers_and_their_ratio() -> None:
    table = _table(
        [Count("llmesh", 2_000_000, 150_000, 200, 800), Count("bare", 1_000_000, 120_000, 200, 800)]
    )
    assert "| 2,000,000 | 1,000,000 | 2.00x |" in table
    assert "| 150,000 | 120,000 | 1.25x |" in table


def test_table_adds_the_gateway_row_when_it_was_counted() -> None:
    counts = [Count("llmesh", 2e6, 1.5e5, 200, 800), Count("bare", 1e6, 1.2e5, 200, 800)]
    assert "gateway" not in _table(counts)
    assert "| 780,000 | — | — |" in _table(counts, 780_000)


def test_table_shows_what_metrics_add_to_each_server() -> None:
    counts = [Count("llmesh", 2e6, 1.5e5, 200, 800), Count("bare", 1e6, 1.2e5, 200, 800)]
    metered = Metered(Count("llmesh-metrics", 2.1e6, 1.52e5, 200, 800), 800_000)
    table = _table(counts, 780_000, metered)
    assert "| orchestrator, per unary call | 2,000,000 | 2,100,000 | +100,000 |" in table
    assert "| orchestrator, per streamed text message | 150,000 | 152,000 | +2,000 |" in table
    assert "| gateway, per `/v1/chat/completions` call | 780,000 | 800,000 | +20,000 |" in table


def test_table_adds_the_direct_http_path_row_when_it_was_counted() -> None:
    counts = [Count("llmesh", 2e6, 1.5e5, 200, 800), Count("bare", 1e6, 1.2e5, 200, 800)]
    assert "direct HTTP path" not in _table(counts, 780_000)
    assert "| 2,400,000 | — | — |" in _table(counts, 780_000, direct_per_call=2_400_000)
