"""The ``tls`` section: shared keys, per-service overrides, environment variables, pairs."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmesh.services.common.config import ConfigError, load_config
from llmesh.services.common.tls_settings import TlsSettings, parse_tls


def _config(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> object:
    path = tmp_path / "llmesh.yaml"
    path.write_text(text)
    return load_config(path, env=env or {})


def test_plaintext_is_the_default() -> None:
    tls = load_config(None, env={}).tls
    for name in ("orchestrator", "processor", "gateway", "cli"):
        settings = tls.service(name)
        assert settings == TlsSettings()
        assert not settings.serves_tls and not settings.dials_tls and not settings.mutual


def test_shared_keys_apply_to_every_service_and_a_service_overrides_some() -> None:
    raw = {
        "cert": "/pki/server.pem",
        "key": "/pki/server.key",
        "ca": "/pki/ca.pem",
        "gateway": {"client_ca": "/pki/ca.pem", "cert": "/pki/gw.pem", "key": "/pki/gw.key"},
        "processor": {"cert": None, "key": None},
    }
    tls = parse_tls(raw, {})
    orch = tls.service("orchestrator")
    assert (orch.cert, orch.key, orch.ca, orch.client_ca) == (
        "/pki/server.pem",
        "/pki/server.key",
        "/pki/ca.pem",
        None,
    )
    gw = tls.service("gateway")
    assert (gw.cert, gw.client_ca, gw.ca) == ("/pki/gw.pem", "/pki/ca.pem", "/pki/ca.pem")
    assert gw.mutual and gw.serves_tls and gw.dials_tls
    proc = tls.service("processor")
    assert not proc.serves_tls and proc.dials_tls  # turned off for the processor alone
    assert (orch.label, gw.label, proc.label) == (" (TLS)", " (mTLS)", "")  # llmesh up's banner


def test_environment_wins_over_the_file_at_its_level() -> None:
    raw = {"cert": "/file.pem", "key": "/file.key", "gateway": {"ca": "/file-ca.pem"}}
    env = {
        "LLMESH_TLS_CERT": "/env.pem",
        "LLMESH_GATEWAY_TLS_CA": "/env-ca.pem",
        "LLMESH_CLI_TLS_CA": "~/ca.pem",
        "LLMESH_PROCESSOR_TLS_CERT": "",
        "LLMESH_PROCESSOR_TLS_KEY": "",
    }
    tls = parse_tls(raw, env)
    assert tls.service("orchestrator").cert == "/env.pem"
    assert tls.service("orchestrator").key == "/file.key"
    assert tls.service("gateway").ca == "/env-ca.pem"
    assert tls.service("cli").ca == str(Path.home() / "ca.pem")
    assert not tls.service("processor").serves_tls  # an empty variable turns a key off


def test_loaded_from_the_file_and_the_environment(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        "tls:\n  cert: /a.pem\n  key: /a.key\n  orchestrator: {client_ca: /ca.pem}\n",
        {"LLMESH_TLS_CA": "/ca.pem"},
    )
    orch = config.tls.service("orchestrator")  # type: ignore[attr-defined]
    assert orch.mutual and orch.dials_tls and orch.cert == "/a.pem"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"cert": "/a.pem"}, "tls: cert and key go together"),
        ({"key": "/a.key"}, "tls: cert and key go together"),
        ({"ca": "/ca.pem", "client_cert": "/c.pem"}, "tls: client_cert and client_key go"),
        ({"client_ca": "/ca.pem"}, "tls: client_ca needs cert and key"),
        ({"client_cert": "/c.pem", "client_key": "/c.key"}, "tls: client_cert needs ca"),
        ({"cert": 3, "key": "/a.key"}, "tls.cert: expected a file path, got 3"),
        ({"certificate": "/a.pem"}, "tls: unknown keys ['certificate']"),
        ({"gateway": {"orchestrator": {}}}, "tls.gateway: unknown keys ['orchestrator']"),
        ({"gateway": ["x"]}, "tls.gateway: expected a mapping"),
        ({"gateway": {"cert": "/g.pem"}}, "tls.gateway: cert and key go together"),
        ("on", "tls: expected a mapping"),
    ],
)
def test_bad_sections_name_the_key(raw: object, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_tls(raw, {})
    assert str(err.value).startswith(problem), str(err.value)


def test_unknown_top_level_keys_still_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown top-level keys"):
        _config(tmp_path, "tsl: {}\n")
