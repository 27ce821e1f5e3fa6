"""The objects holding secrets show none in their repr, the form a debugging log line takes."""

from __future__ import annotations

from pathlib import Path

from llmesh.services.auth import Authenticator, TokenVerifier, open_key_store
from llmesh.services.common.auth_settings import JwtIssuer
from llmesh.services.common.config import EmulatorConfig, load_config
from llmesh.services.common.provider_settings import resolve_provider

FILE_KEY = "sk-file-0123456789abcdefghij"
HEADER_SECRET = "hdr-secret-0123456789abcdef"
ENV_KEY = "sk-env-0123456789abcdefghijk"


def test_configured_and_resolved_providers_show_no_key(tmp_path: Path) -> None:
    path = tmp_path / "llmesh.yaml"
    path.write_text(
        "providers:\n"
        "  compat:\n"
        "    kind: openai-compatible\n"
        "    base_url: https://llm.example.com/v1\n"
        f"    api_key: {FILE_KEY}\n"
        f"    headers: {{x-api-key: {HEADER_SECRET}}}\n"
    )
    config = load_config(path, env={"OPENAI_API_KEY": ENV_KEY})
    emulator = EmulatorConfig("127.0.0.1", 1)
    resolved = [
        resolve_provider(config.providers["compat"], emulator, {}),
        resolve_provider(config.providers["openai"], emulator, {"OPENAI_API_KEY": ENV_KEY}),
    ]
    assert resolved[0].api_key == FILE_KEY and resolved[1].api_key == ENV_KEY
    shown = repr(config) + repr(resolved)
    assert "llm.example.com" in shown  # the rest is still there to debug with
    for secret in (FILE_KEY, HEADER_SECRET, ENV_KEY):
        assert secret not in shown


async def test_authenticators_show_no_secret(tmp_path: Path) -> None:
    store = await open_key_store(f"sqlite:///{tmp_path}/keys.db")
    try:
        _, key = await store.create("acme")
        issuer = JwtIssuer(
            issuer="https://issuer.test/", audience="a", jwks_file=str(tmp_path / "jwks.json")
        )
        auth = Authenticator(store, required=True, tokens=TokenVerifier([issuer]))
        shown = repr(auth)
        assert "issuer.test" in shown
        assert key not in shown and key.split("_", 2)[2] not in shown
    finally:
        await store.aclose()
