"""``llmesh keys``: what each action prints and returns."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from llmesh.services.auth.cli import WARNING, keys_command, keys_main
from llmesh.services.auth.store import open_key_store


async def _run(
    url: str,
    action: str,
    *,
    tenant: str | None = None,
    name: str = "",
    key_id: str | None = None,
    json_output: bool = False,
) -> tuple[int, str]:
    return await keys_command(
        url, action, tenant=tenant, name=name, key_id=key_id, json_output=json_output
    )


def _key_in(output: str) -> str:
    (key,) = [word for word in output.split() if word.startswith("llm_")]
    return key


async def test_create_prints_the_key_once_with_a_warning(store_url: str) -> None:
    code, out = await _run(store_url, "create", tenant="acme", name="ci")
    assert code == 0
    key = _key_in(out)
    assert out.count(key) == 1
    assert WARNING in out and "cannot be shown again" in out
    assert "acme" in out and "(ci)" in out
    store = await open_key_store(store_url)
    try:
        principal = await store.verify(key)
        assert principal is not None and principal.tenant == "acme"
    finally:
        await store.aclose()
    code, listed = await _run(store_url, "list")
    assert code == 0
    assert key.split("_", 2)[2] not in listed


async def test_create_json(sqlite_url: str) -> None:
    code, out = await _run(sqlite_url, "create", tenant="acme", json_output=True)
    assert code == 0
    body = json.loads(out)
    assert body["key"].startswith(f"llm_{body['key_id']}_")
    assert body["tenant"] == "acme" and body["active"] is True
    assert body["warning"] == WARNING


async def test_create_needs_a_valid_tenant(sqlite_url: str) -> None:
    assert await _run(sqlite_url, "create") == (2, "llmesh keys create: --tenant is required")
    code, out = await _run(sqlite_url, "create", tenant="bad tenant")
    assert code == 2 and "tenant" in out
    code, out = await _run(sqlite_url, "list")
    assert (code, out) == (0, "No API keys.")


async def test_list_table_filter_and_json(sqlite_url: str) -> None:
    _, out_a = await _run(sqlite_url, "create", tenant="acme", name="laptop")
    _, out_b = await _run(sqlite_url, "create", tenant="beta")
    id_a = _key_in(out_a).split("_")[1]
    id_b = _key_in(out_b).split("_")[1]
    await _run(sqlite_url, "revoke", key_id=id_b)

    code, table = await _run(sqlite_url, "list")
    assert code == 0
    lines = table.splitlines()
    assert lines[0].split() == ["KEY", "ID", "TENANT", "NAME", "PRIORITY", "CREATED", "STATUS"]
    assert lines[1].split()[:3] == [id_a, "acme", "laptop"] and lines[1].endswith("active")
    assert lines[2].split()[:3] == [id_b, "beta", "-"] and "revoked" in lines[2]

    code, only_acme = await _run(sqlite_url, "list", tenant="acme")
    assert code == 0 and id_a in only_acme and id_b not in only_acme

    code, raw = await _run(sqlite_url, "list", json_output=True)
    assert code == 0
    rows = json.loads(raw)
    assert [r["key_id"] for r in rows] == [id_a, id_b]
    assert rows[0]["revoked_at"] is None and rows[1]["revoked_at"] is not None
    assert rows[1]["active"] is False
    assert all("key" not in r and "secret_hash" not in r for r in rows)


async def test_revoke(store_url: str) -> None:
    _, out = await _run(store_url, "create", tenant="acme")
    key = _key_in(out)
    key_id = key.split("_")[1]
    code, msg = await _run(store_url, "revoke", key_id=key_id)
    assert code == 0 and f"Revoked API key {key_id}" in msg
    code, msg = await _run(store_url, "revoke", key_id=key_id)
    assert code == 1 and "already revoked" in msg
    code, msg = await _run(store_url, "revoke", key_id="0123456789ab", json_output=True)
    assert code == 1
    assert json.loads(msg) == {"key_id": "0123456789ab", "revoked": False, "active_keys": 0}


async def test_create_says_whether_authentication_just_switched_on(sqlite_url: str) -> None:
    code, first = await _run(sqlite_url, "create", tenant="acme")
    assert code == 0
    assert "first API key" in first and "authentication is now on" in first
    assert "no restart needed" in first and "--api-key" in first
    code, second = await _run(sqlite_url, "create", tenant="beta")
    assert code == 0
    assert "already on" in second and "no restart needed" in second
    assert "first API key" not in second
    _, as_json = await _run(sqlite_url, "create", tenant="beta", json_output=True)
    assert json.loads(as_json)["first_key"] is False


async def test_revoking_the_last_active_key_says_every_call_is_refused(sqlite_url: str) -> None:
    _, out_a = await _run(sqlite_url, "create", tenant="acme")
    _, out_b = await _run(sqlite_url, "create", tenant="beta")
    code, msg = await _run(sqlite_url, "revoke", key_id=_key_in(out_a).split("_")[1])
    assert code == 0 and "No active API key is left" not in msg
    code, msg = await _run(sqlite_url, "revoke", key_id=_key_in(out_b).split("_")[1])
    assert code == 0
    assert "No active API key is left" in msg
    assert "Authentication stays on" in msg and "every call is refused" in msg


async def test_revoke_accepts_a_full_key_without_echoing_its_secret(sqlite_url: str) -> None:
    _, out = await _run(sqlite_url, "create", tenant="acme")
    key = _key_in(out)
    code, msg = await _run(sqlite_url, "revoke", key_id=key)
    assert code == 0 and key.split("_")[1] in msg
    assert key.split("_", 2)[2] not in msg


async def test_usage_errors(sqlite_url: str) -> None:
    code, msg = await _run(sqlite_url, "revoke")
    assert code == 2 and "KEY_ID" in msg
    code, msg = await _run(sqlite_url, "revoke", key_id="xyz")
    assert code == 2
    code, msg = await _run(sqlite_url, "rotate")
    assert code == 2 and "create, list, revoke" in msg
    code, msg = await _run("mysql://db/keys", "list")
    assert code == 2 and "unsupported key store URL" in msg


async def test_an_unreachable_store_hides_its_password() -> None:
    code, msg = await _run("postgresql://llmesh:hunter2@127.0.0.1:1/keys", "list")
    assert code == 1
    assert "cannot open the key store postgresql://llmesh:***@127.0.0.1:1/keys" in msg
    assert "hunter2" not in msg


async def test_list_and_revoke_on_a_missing_store_say_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'absent' / 'llmesh.db'}"
    for action in ("list", "revoke"):
        code, msg = await _run(url, action, key_id="0123456789ab")
        assert code == 1
        assert f"no key store at {tmp_path / 'absent' / 'llmesh.db'}" in msg
    assert not (tmp_path / "absent").exists()
    code, _ = await _run(url, "create", tenant="acme")  # the first key creates it
    assert code == 0 and (tmp_path / "absent" / "llmesh.db").exists()


def test_keys_main_prints_the_text_and_returns_the_exit_code(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    create = argparse.Namespace(
        action="create", tenant="acme", name="ci", priority=None, max_priority=None, json=False
    )
    assert keys_main(sqlite_url, create) == 0
    assert WARNING in capsys.readouterr().out
    listing = argparse.Namespace(action="list", tenant=None, json=True)
    assert keys_main(sqlite_url, listing) == 0
    assert [k["tenant"] for k in json.loads(capsys.readouterr().out)] == ["acme"]
    assert keys_main(sqlite_url, argparse.Namespace(action="revoke", key_id="nope")) == 2
    assert "KEY_ID" in capsys.readouterr().out
