"""``llmesh usage``: the text table and the JSON report."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from pathlib import Path

import pytest

from llmesh.services.core import CallStatus
from llmesh.services.ledger import PostgresStore, SqliteStore, usage_report
from llmesh.services.ledger.cli import add_ledger_parsers, ledger_main, parse_time, usage_main
from tests.ledger.conftest import make_record

NOV_2 = 1_762_041_600.0  # 2025-11-02T00:00:00Z


async def _ledger(tmp_path: Path) -> str:
    path = tmp_path / "usage.db"
    store = SqliteStore(path)
    try:
        await store.write(
            [
                make_record(1, ts=NOV_2 + 10),
                make_record(2, ts=NOV_2 + 20, cache_read_tokens=2000, cache_savings_usd=0.00015),
                make_record(
                    3,
                    ts=NOV_2 + 86_400,
                    tenant="globex",
                    key_id="key-7",
                    provider="anthropic",
                    model="claude-haiku-4-5",
                    input_tokens=1_234_567,
                    cache_write_tokens=3000,
                    cost_usd=1.5,
                    status=CallStatus.ERROR,
                    error_reason="OVERLOADED",
                ),
            ]
        )
    finally:
        await store.aclose()
    return f"sqlite:///{path}"


async def test_table(tmp_path: Path) -> None:
    url = await _ledger(tmp_path)
    text = await usage_report(
        url, group_by=["tenant", "model"], since=None, json_output=False, tenant=None
    )
    assert text == "\n".join(
        [
            "tenant  model                       requests  failed      input  output"
            "  cache read  cache write  cost USD  cache savings USD",
            "------  --------------------------  --------  ------  ---------  ------"
            "  ----------  -----------  --------  -----------------",
            "acme    openai/gpt-4o-mini                 2       0        200      40"
            "       2,000            0  0.002000           0.000150",
            "globex  anthropic/claude-haiku-4-5         1       1  1,234,567      20"
            "           0        3,000  1.500000           0.000000",
            "------  --------------------------  --------  ------  ---------  ------"
            "  ----------  -----------  --------  -----------------",
            "total                                      3       1  1,234,767      60"
            "       2,000        3,000  1.502000           0.000150",
        ]
    )


async def test_table_without_grouping_and_with_filters(tmp_path: Path) -> None:
    url = await _ledger(tmp_path)
    text = await usage_report(
        url, group_by=[], since="2025-11-03", json_output=False, tenant="globex"
    )
    lines = text.splitlines()
    assert lines[0].split() == [
        "requests", "failed", "input", "output", "cache", "read", "cache", "write",
        "cost", "USD", "cache", "savings", "USD",
    ]  # fmt: skip
    assert lines[2].split() == ["1", "1", "1,234,567", "20", "0", "3,000", "1.500000", "0.000000"]
    assert len(lines) == 3  # no total line for a single row
    # numbers are right-aligned: every line ends in the same column
    assert len({len(line) for line in lines}) == 1


async def test_json(tmp_path: Path) -> None:
    url = await _ledger(tmp_path)
    text = await usage_report(
        url, group_by=["day", "key"], since="2025-11-01T00:00:00Z", json_output=True, tenant=None
    )
    doc = json.loads(text)
    assert doc["group_by"] == ["day", "key"]
    assert doc["since"] == "2025-11-01T00:00:00Z" and doc["until"] is None
    assert [(t["day"], t["key_id"], t["requests"]) for t in doc["totals"]] == [
        ("2025-11-02", "key-1", 2),
        ("2025-11-03", "key-7", 1),
    ]
    assert "tenant" not in doc["totals"][0] and "model" not in doc["totals"][0]
    total = doc["total"]
    assert total["requests"] == 3 and total["failed"] == 1
    assert total["input_tokens"] == 1_234_767 and total["cache_write_tokens"] == 3000
    assert total["cost_usd"] == 1.502 and total["cache_savings_usd"] == 0.00015
    # all of it from a prompt-cache read: no reply came from the response cache
    assert total["prompt_cache_savings_usd"] == 0.00015
    assert total["response_cache_savings_usd"] == 0.0
    assert total["reasoning_tokens"] == 0


async def test_a_missing_sqlite_ledger_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "none" / "usage.db"
    for json_output in (False, True):
        with pytest.raises(FileNotFoundError, match="no usage ledger at") as caught:
            await usage_report(
                f"sqlite:///{path}", group_by=[], since=None, json_output=json_output, tenant=None
            )
        assert str(path) in str(caught.value)
    assert not (tmp_path / "none").exists()


async def test_postgres_ledger(postgres_server: str, pg_schema: str) -> None:
    store = PostgresStore(postgres_server, schema=pg_schema)
    try:
        await store.write([make_record(1), make_record(2, tenant="globex")])
    finally:
        await store.aclose()
    url = f"{postgres_server}?schema={pg_schema}"
    doc = json.loads(
        await usage_report(url, group_by=["tenant"], since=None, json_output=True, tenant=None)
    )
    assert [(t["tenant"], t["requests"]) for t in doc["totals"]] == [("acme", 1), ("globex", 1)]


async def test_bad_arguments(tmp_path: Path) -> None:
    url = await _ledger(tmp_path)
    with pytest.raises(ValueError, match="cannot group usage by 'week'"):
        await usage_report(url, group_by=["week"], since=None, json_output=False, tenant=None)
    with pytest.raises(ValueError, match="cannot read the time"):
        await usage_report(url, group_by=[], since="last week", json_output=False, tenant=None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", NOV_2 - 7 * 86_400),
        ("24h", NOV_2 - 86_400),
        ("30m", NOV_2 - 1800),
        ("90s", NOV_2 - 90),
        ("2w", NOV_2 - 14 * 86_400),
        ("1.5h", NOV_2 - 5400),
        ("today", NOV_2),
        ("2025-11-01", NOV_2 - 86_400),
        ("2025-11-01T12:00:00Z", NOV_2 - 43_200),
        ("2025-11-01T12:00:00+02:00", NOV_2 - 50_400),
        ("2025-11-01 12:00", NOV_2 - 43_200),
    ],
)
def test_parse_time(text: str, expected: float) -> None:
    assert parse_time(text, now=NOV_2 + 3600 * (text == "today")) == expected


def _args(*argv: str) -> argparse.Namespace:
    """`argv` parsed by the ``usage`` and ``ledger`` commands as ``llmesh`` adds them."""
    parser = argparse.ArgumentParser(prog="llmesh")
    add_ledger_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_usage_main_prints_the_report_of_the_parsed_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = asyncio.run(_ledger(tmp_path))
    assert (
        usage_main(url, _args("usage", "--by", "model, ,tenant", "--tenant", "acme", "--json")) == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["group_by"] == ["model", "tenant"] and doc["tenant"] == "acme"
    assert [row["requests"] for row in doc["totals"]] == [2]


def test_ledger_main_prints_its_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = asyncio.run(_ledger(tmp_path))
    assert ledger_main(url) == 0
    assert re.fullmatch(
        r"closed 0 interrupted calls; 0 calls .* in flight\n", capsys.readouterr().out
    )


def test_usage_and_ledger_main_return_the_message_to_exit_with(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    assert str(usage_main(url, _args("usage"))).startswith("llmesh usage: ")
    assert str(usage_main(url, _args("usage", "--by", "week"))).startswith("llmesh usage: ")
    assert str(ledger_main(url)).startswith("llmesh ledger: ")
    assert not (tmp_path / "none.db").exists()
