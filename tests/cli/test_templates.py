"""``llmesh templates``: list, show, create, weights and stats on the ledger database."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from llmesh.services import cli
from llmesh.services.cli import main
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.ledger import SqliteStore, UsageRecord
from llmesh.services.templates.cli import templates_main, templates_report

YAML = """\
description: short answers
variables:
  product: {description: the product}
  tone: {default: friendly}
system: "Answer in a {{ tone }} tone."
messages:
  - {role: user, content: "How do I reset {{ product }}?"}
parameters: {temperature: 0.2}
"""


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/llmesh.db"


async def test_create_show_list_weights_and_stats(db: str, tmp_path: Path) -> None:
    path = tmp_path / "support.yaml"
    path.write_text(YAML)
    assert await templates_report(db, ["create", "support", "--file", str(path)]) == (
        "created support@1"
    )
    assert await templates_report(db, ["create", "support", "--file", str(path)]) == (
        "created support@2"
    )
    shown = await templates_report(db, ["show", "support@1"])
    assert shown.startswith("# support@1 of versions 1, 2, created ")
    assert "How do I reset {{ product }}?" in shown
    as_json = orjson.loads(await templates_report(db, ["show", "support", "--json"]))
    assert (as_json["version"], as_json["versions"]) == (2, [1, 2])
    assert as_json["variables"][1] == {
        "name": "tone",
        "required": False,
        "description": "",
        "default": "friendly",
    }
    assert await templates_report(db, ["weights", "support", "1=3", "2=1"]) == "support: 1=3 2=1"
    assert await templates_report(db, ["weights", "support"]) == "support: 1=3 2=1"
    listing = await templates_report(db, ["list"])
    assert listing.splitlines()[1].split()[:3] == ["support", "2", "1=3"]
    assert await templates_report(db, ["weights", "support", "--clear"]) == "support: -"
    ledger = SqliteStore(db.removeprefix("sqlite:///"))
    try:
        await ledger.write(
            [
                UsageRecord("a", template="support", template_version=2, duration_ms=10.0),
                UsageRecord("b", template="support", template_version=2, duration_ms=30.0),
            ]
        )
    finally:
        await ledger.aclose()
    table = (await templates_report(db, ["stats", "support"])).splitlines()
    assert table[0].split()[:3] == ["version", "calls", "errors"]
    assert table[1].split()[:3] == ["2", "2", "0"]
    assert table[1].split()[6] == "20.0"  # the median duration
    stats = orjson.loads(
        await templates_report(db, ["stats", "support", "--since", "7d", "--json"])
    )
    assert [s["calls"] for s in stats] == [2]


async def test_errors(db: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("system: '{{ undeclared }}'\n")
    with pytest.raises(LlmeshError) as caught:
        await templates_report(db, ["create", "x", "--file", str(bad)])
    assert caught.value.reason is Reason.INVALID_REQUEST
    assert "undeclared" in caught.value.message
    with pytest.raises(LlmeshError) as caught:
        await templates_report(db, ["stats", "nothing"])
    assert caught.value.reason is Reason.TEMPLATE_NOT_FOUND
    with pytest.raises(ValueError, match="VERSION=WEIGHT"):
        path = tmp_path / "ok.yaml"
        path.write_text(YAML)
        await templates_report(db, ["create", "ok", "--file", str(path)])
        await templates_report(db, ["weights", "ok", "one"])


def test_the_llmesh_command(
    db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLMESH_DATABASE_URL", db)
    # the command configures the process's logging; the tests after this one keep theirs
    monkeypatch.setattr(cli, "configure_logging", lambda: None)
    with pytest.raises(SystemExit) as done:
        main(["templates", "list"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == "no templates"
    with pytest.raises(SystemExit) as done:
        main(["templates", "show", "missing"])
    assert done.value.code == "llmesh templates: no template 'missing'"
    assert templates_main(db, ["create", "x", "--file", "/nonexistent.yaml"]) != 0
